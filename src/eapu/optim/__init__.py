"""In-situ optimizers: any torch optimizer proposes ΔW, a rule makes ΔWn, the cells are written.

>>> import torch
>>> from eapu.optim import AdamEaPU
>>> model = torch.nn.Linear(4, 2)
>>> opt = AdamEaPU(model.parameters(), lr=1e-3, sd_us=2.0, rwg_per_us=1 / 80)
>>> model(torch.randn(8, 4)).pow(2).mean().backward()
>>> opt.step(); opt.zero_grad()

Analog parameters (by default those with ``dim() > 1``: the weights that sit on crossbars)
go through the rule and a write model; the others (biases, norms) are updated digitally
exactly as the base optimizer says. Two write models share one seam:

- weight level (the paper's simulation): a written cell gets ΔWn + Rwg · N(0, SD εcell);
  a cell the rule leaves at ΔWn = 0 is untouched.
- device level: a parameter backed by a tile (``eapu.nn`` layers set ``param.eapu_tile``)
  is written by ``tile.program(ΔWn)``, and the parameter then reads ``tile.weight()``.

The package's rooms: `base` (`InSituBase`, the skeleton; parameter checks), `insitu`
(`InSituOptimizer`), `named` (`AdamEaPU`, `SGDEaPU`, `AdamNoise`, `SGDNoise`).
"""

from __future__ import annotations

from .base import (
    CLOSURE_BASES,
    InSituBase,
    check_params,
    default_seed,
    ledger_row,
    materialize,
    tile_of,
)
from .insitu import WEIGHT_LEVEL_RWG_PER_US, WEIGHT_LEVEL_SD_US, InSituOptimizer
from .named import AdamEaPU, AdamNoise, NamedInSitu, SGDEaPU, SGDNoise

__all__ = [
    "CLOSURE_BASES",
    "WEIGHT_LEVEL_RWG_PER_US",
    "WEIGHT_LEVEL_SD_US",
    "AdamEaPU",
    "AdamNoise",
    "InSituBase",
    "InSituOptimizer",
    "NamedInSitu",
    "SGDEaPU",
    "SGDNoise",
    "check_params",
    "default_seed",
    "ledger_row",
    "materialize",
    "tile_of",
]
