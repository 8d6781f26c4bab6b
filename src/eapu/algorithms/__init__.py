"""The other in-situ training algorithms, on eapu's tiles and with eapu's ledger.

EaPU is compared in Liu et al. (2025) with Tiki-Taka v2, chopped Tiki-Taka v2 and
hardware-aware training. This module implements them on the same simulated crossbars
(`eapu.nn.convert`), so their pulses, verify reads and written cells land in the same
`eapu.ledger.Ledger` rows as `eapu.optim.InSituOptimizer`'s and Rup / Nup compare directly.

>>> import torch
>>> from eapu.nn import convert
>>> from eapu.algorithms import MixedPrecision
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 2))   # convert swaps child layers
>>> xbar = convert(model, device="ideal", scheme="gaussian", load_scheme="gaussian")
>>> opt = MixedPrecision(model.parameters(), lr=0.1)
>>> model(torch.randn(8, 4)).pow(2).mean().backward()
>>> opt.step(); opt.zero_grad()

- `MixedPrecision` (Nandakumar et al. 2020): a digital accumulator, written in whole pulses.
- `TikiTakaV2` (Gokmen 2021) and `ChoppedTTv2` (Rasch et al. 2024): a fast analog array A
  takes the gradient, a digital buffer H integrates A's columns, and H moves the layer's own
  (slow) array C by single pulses.
- `AGAD` (Rasch et al. 2024): chopped TTv2 whose reads of A are taken against a running mean
  of A's own reads (a dynamic reference), so A's symmetry point needs no calibration.

Common contract. Analog parameters are those backed by a tile (`analog_tile`:
``p.eapu_tile``, set by `eapu.nn.convert`); every other parameter (biases, norms,
undigitised layers) is updated digitally by the base optimizer (``torch.optim.SGD`` with the
same ``lr`` by default). The base optimizer proposes ΔW for the analog parameters too (ΔW =
-lr·grad for SGD; any torch optimizer, e.g. momentum, may be given); the algorithm decides
what reaches the cells. Each optimizer owns a CPU ``torch.Generator`` (``seed``) kept in
``state_dict`` together with all digital state (accumulators, buffers, choppers, counters,
the ledger) and the state of any extra array it placed on the crossbar, so that saving
``model``, ``crossbar`` and optimizer state and resuming reproduces the uninterrupted run
bit for bit. A resumed optimizer must be built on a fresh converted model *before* the
crossbar state is loaded (it places its extra arrays in ``__init__``, which draws from the
crossbar's generator). Tiki-Taka also needs ``opt.watch(model)`` once: it counts samples and
scales A's rate from the layers' data.

Ledger. One row per analog parameter and step, fields ``written, pulses, reads, failed,
skipped`` (`eapu.ledger.FIELDS`), as `InSituOptimizer` records them. ``cells`` of a
parameter is ``analog_tile(p).cells`` plus, for Tiki-Taka, the cells of its fast array A
(``tileA.cells``: A's weight cells and the reference cells A's placement added). ``written``
counts distinct cells of the parameter (C and A) that took at least one pulse in the step,
``pulses`` every pulse, ``reads`` verify reads of the scheme plus, for Tiki-Taka, one read
per cell of each line of A read for a transfer.

Hardware-aware training (`eapu.hwa`) is not an in-situ optimizer and lives beside `eapu.nn`.
Tiki-Taka's and AGAD's options are frozen records (`TikiTakaConfig`, `ChoppedTTv2Config`,
`AGADConfig`: ``opt.config``), saved in ``state_dict`` so that a resume with other options is
refused; each analog parameter's state is a typed record (`FastSlot`, `AGADSlot`).
The package's rooms: `base` (`TileAlgorithm`, the writes onto a tile, the registry),
`mixed_precision`, `tiki_taka_config`, `tiki_taka`, `agad`.
"""

from __future__ import annotations

from .base import (
    ALGORITHMS,
    AlgorithmInfo,
    TileAlgorithm,
    analog_tile,
    get_algorithm,
    granularity,
    line_index,
    list_algorithms,
    program_with,
    pulse_train_on,
    register_algorithm,
)

# isort: off
# (the import order is the registration order, which `list_algorithms` keeps)
from .mixed_precision import MixedPrecision
from .tiki_taka_config import FAST_LR, ChoppedTTv2Config, TikiTakaConfig
from .tiki_taka import ChoppedTTv2, FastSlot, TikiTakaV2
from .agad import AGAD, AGADConfig, AGADSlot

# isort: on

__all__ = [
    "AGAD",
    "ALGORITHMS",
    "FAST_LR",
    "AGADConfig",
    "AGADSlot",
    "AlgorithmInfo",
    "ChoppedTTv2",
    "ChoppedTTv2Config",
    "FastSlot",
    "MixedPrecision",
    "TikiTakaConfig",
    "TikiTakaV2",
    "TileAlgorithm",
    "analog_tile",
    "get_algorithm",
    "granularity",
    "line_index",
    "list_algorithms",
    "program_with",
    "pulse_train_on",
    "register_algorithm",
]
