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
- `hwa_noise` (Rasch et al. 2023): weight noise in the forward pass of software training, so
  the trained network tolerates being programmed once (ex-situ).

Common contract. Analog parameters are those backed by a tile (``_tile_of(p)``, set by
`eapu.nn.convert`); every other parameter (biases, norms, undigitised layers) is updated
digitally by the base optimizer (``torch.optim.SGD`` with the same ``lr`` by default). The
base optimizer proposes ΔW for the analog parameters too (ΔW = -lr·grad for SGD; any torch
optimizer, e.g. momentum, may be given); the algorithm decides what reaches the cells. Each
optimizer owns a CPU ``torch.Generator`` (``seed``) kept in ``state_dict`` together with all
digital state (accumulators, buffers, choppers, counters, the ledger) and the state of any
extra array it placed on the crossbar, so that saving ``model``, ``crossbar`` and optimizer
state and resuming reproduces the uninterrupted run bit for bit. A resumed optimizer must be
built on a fresh converted model *before* the crossbar state is loaded (it places its
extra arrays in ``__init__``, which draws from the crossbar's generator).

Ledger. One row per analog parameter and step, fields ``written, pulses, reads, failed,
skipped`` (`eapu.ledger.FIELDS`), as `InSituOptimizer` records them. ``cells`` of a
parameter is ``_tile_of(p).cells`` plus, for Tiki-Taka, the cells of its fast array A
(``tileA.cells``: A's weight cells and the reference cells A's placement added). ``written``
counts distinct cells of the parameter (C and A) that took at least one pulse in the step,
``pulses`` every pulse, ``reads`` verify reads of the scheme plus, for Tiki-Taka, one read
per cell of each transferred line of A.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from .ledger import FIELDS, Ledger
from .optim import check_params, materialize
from .programming import get_scheme
from .tiles import Tile, matrix_shape

__all__ = [
    "ALGORITHMS",
    "ChoppedTTv2",
    "HWANoise",
    "MixedPrecision",
    "TikiTakaV2",
    "TileAlgorithm",
    "get_algorithm",
    "hwa_noise",
    "list_algorithms",
]

_W, _P, _R, _F, _S = (FIELDS.index(f) for f in ("written", "pulses", "reads", "failed", "skipped"))


# ------------------------------------------------------------------------------ validation
def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _positive(name: str, value: Any) -> None:
    if not _is_number(value) or value <= 0:
        raise ValueError(f"Invalid {name}: {value!r}; allowed: a finite number > 0")


def _nonneg(name: str, value: Any) -> None:
    if not _is_number(value) or value < 0:
        raise ValueError(f"Invalid {name}: {value!r}; allowed: a finite number >= 0")


def _int_at_least(name: str, value: Any, low: int, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        none = "None or " if allow_none else ""
        raise ValueError(f"Invalid {name}: {value!r}; allowed: {none}an integer >= {low}")


def _probability(name: str, value: Any) -> None:
    if not _is_number(value) or not 0 <= value <= 1:
        raise ValueError(f"Invalid {name}: {value!r}; allowed: a number in [0, 1]")


# ---------------------------------------------------------------------- writing to a tile
def _program_with(tile: Tile, dw: Tensor, scheme: str) -> Tensor:
    """Write ΔW (weight units; 0 = untouched) to ``tile`` with ``scheme``; the ledger row."""
    return tile.program(dw, scheme=scheme).clone()


def _pulse_train(tile: Tile, n: Tensor, eps: float, scheme: str) -> Tensor:
    """Move every cell by ``n`` (signed integer tensor) steps of ``eps`` weight units.

    With the ``sign`` scheme (one identical pulse per write) the n steps are n pulses, applied
    in rounds; any other scheme is asked once for the target ``n·eps`` and spends the pulses
    it needs. ``written`` counts distinct cells pulsed, whatever the number of rounds.
    """
    row = torch.zeros(len(FIELDS), dtype=torch.int64)
    n = n.detach().cpu()
    if not bool(n.any()):
        return row
    before = tile.writes.clone()
    if scheme == "sign":
        mag, sgn = n.abs(), torch.sign(n).to(torch.float32)
        for k in range(int(mag.max())):
            row += _program_with(tile, torch.where(mag > k, sgn * eps, 0.0), scheme)
    else:
        row += _program_with(tile, n.to(torch.float32) * eps, scheme)
    row[_W] = int(((tile.writes - before) > 0).sum())  # cells, as Tile.program counts them
    return row


def _tile_of(p: Tensor) -> Tile:
    """The tile behind an analog parameter (set by `eapu.nn`)."""
    return getattr(p, "eapu_tile")  # noqa: B009 (a dynamic attribute: keeps mypy honest)


def _granularity(tile: Tile) -> float:
    """One SET pulse's mean step at the window centre, in weight units."""
    return tile.rwg_per_us * tile.crossbar.device_model.step_up_us


def _line_index(tile: Tile) -> Tensor:
    """For each weight, the index of its input line (a row of the crossbar matrix).

    Reading line ``i`` is one forward read with the one-hot input e_i: for an ``nn.Linear``
    weight (out, in) it is the column W[:, i].
    """
    rows, cols = matrix_shape(tile.shape, tile.transposed)
    idx = torch.arange(rows).unsqueeze(1).expand(rows, cols)
    return idx.reshape(tile.shape) if tile.transposed else idx.t().reshape(tile.shape)


# ------------------------------------------------------------------------- the shared base
class TileAlgorithm(Optimizer):
    """A base optimizer proposes ΔW; subclasses decide how tile-backed parameters change.

    Shares ``param_groups`` and ``state`` with the base optimizer (LR schedulers work), keeps
    ``self.ledger`` and ``self.generator``; see the module docstring for the contract.
    """

    _OWN_KEYS: tuple[str, ...] = ()

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base: type[Optimizer],
        *,
        seed: int,
        defaults: dict[str, Any],
        base_kwargs: dict[str, Any],
    ) -> None:
        if not (isinstance(base, type) and issubclass(base, Optimizer)):
            raise TypeError(f"Invalid base: {base!r}; allowed: a torch.optim.Optimizer subclass")
        _int_at_least("seed", seed, 0)
        params = materialize(params)
        if not params:
            raise ValueError("Invalid params: the parameter list is empty; give at least one")
        self._base: Optimizer | None = None
        self._seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.ledger = Ledger()
        self._layout: list[int] | None = None
        self._steps = 0
        self._slots: dict[int, dict[str, Any]] = {}  # id(param) -> algorithm state
        super().__init__(params, defaults)
        self._base = base(self.param_groups, **base_kwargs)
        # One list of groups and one state for both: schedulers see what the base uses.
        self.param_groups = self._base.param_groups
        self.state = self._base.state
        self.defaults = {**self._base.defaults, **self.defaults}
        for p in self.analog_parameters():
            self._slot(p)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        ps = param_group["params"]
        param_group["params"] = ps = [ps] if isinstance(ps, Tensor) else list(ps)
        check_params(ps)
        if self._base is None:
            super().add_param_group(param_group)
            return
        for key in self._OWN_KEYS:
            param_group.setdefault(key, self.defaults[key])
        self._base.add_param_group(param_group)
        for p in param_group["params"]:
            if getattr(p, "eapu_tile", None) is not None:
                self._slot(p)
        self._layout = None

    @property
    def base(self) -> Optimizer:
        """The wrapped optimizer that proposes ΔW."""
        assert self._base is not None
        return self._base

    def analog_parameters(self) -> list[Tensor]:
        """The tile-backed parameters, in the order the ledger records them."""
        return [
            p
            for g in self.param_groups
            for p in g["params"]
            if getattr(p, "eapu_tile", None) is not None
        ]

    def _group_of(self, p: Tensor) -> dict[str, Any]:
        return next(g for g in self.param_groups if any(q is p for q in g["params"]))

    # -- to implement
    def _slot(self, p: Tensor) -> dict[str, Any]:
        raise NotImplementedError

    def _cells(self, p: Tensor) -> int:
        return int(_tile_of(p).cells)

    def _update(self, p: Tensor, dw: Tensor | None, group: dict[str, Any]) -> Tensor:
        raise NotImplementedError

    def _slot_state(self, slot: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _load_slot_state(self, slot: dict[str, Any], state: dict[str, Any]) -> None:
        raise NotImplementedError

    # -- the step
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Take one step; returns the closure's loss if a closure was given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        analog = self.analog_parameters()
        if self._layout != [id(p) for p in analog]:
            self.ledger.set_layout(
                [f"param{i}:{tuple(p.shape)}" for i, p in enumerate(analog)],
                [self._cells(p) for p in analog],
            )
            self._layout = [id(p) for p in analog]
        with_grad = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        bad: dict[int, Tensor] = {}
        for p in with_grad:
            if p.grad.is_sparse:
                raise RuntimeError("in-situ algorithms do not support sparse gradients")
            mask = ~p.grad.isfinite()
            if bool(mask.any()):  # such a cell keeps its value, counted as skipped if analog
                p.grad.masked_fill_(mask, 0)
                bad[id(p)] = mask
        olds = {id(p): p.clone() for p in with_grad}
        self.base.step()
        self._steps += 1
        rows = []
        for p in analog:
            dw, skipped = None, 0
            if id(p) in olds:
                old = olds[id(p)]
                dw = p.sub(old)
                skip = ~dw.isfinite()
                if id(p) in bad:
                    skip |= bad[id(p)]
                dw.masked_fill_(skip, 0)
                skipped = int(skip.sum())
                p.copy_(old)
            row = self._update(p, dw, self._group_of(p))
            row[_S] += skipped
            rows.append(row)
        for p in with_grad:  # digital cells with a non-finite gradient or proposal stay put
            if getattr(p, "eapu_tile", None) is None:
                keep = ~p.isfinite()
                if id(p) in bad:
                    keep |= bad[id(p)]
                if bool(keep.any()):
                    torch.where(keep, olds[id(p)], p, out=p)
        if analog:
            self.ledger.record(torch.stack(rows).to(analog[0].device))
        return loss

    # -- state_dict
    def state_dict(self) -> dict[str, Any]:
        sd = self.base.state_dict()
        sd["algorithm"] = {
            "seed": self._seed,
            "generator": self.generator.get_state(),
            "steps": self._steps,
            "ledger": self.ledger.state_dict(),
            "slots": [self._slot_state(self._slots[id(p)]) for p in self.analog_parameters()],
        }
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        algo = state_dict.pop("algorithm", None)
        self.base.load_state_dict(state_dict)
        self.param_groups = self.base.param_groups
        self.state = self.base.state
        self._layout = None
        if algo is None:
            return
        analog = self.analog_parameters()
        if len(algo["slots"]) != len(analog):
            raise ValueError(
                f"state_dict holds {len(algo['slots'])} analog parameters, this "
                f"optimizer has {len(analog)}"
            )
        self._seed = int(algo["seed"])
        self.generator.set_state(algo["generator"])
        self._steps = int(algo["steps"])
        self.ledger.load_state_dict(algo["ledger"])
        for p, st in zip(analog, algo["slots"], strict=True):
            self._load_slot_state(self._slot(p), st)


# ------------------------------------------------------------------------ mixed precision
class MixedPrecision(TileAlgorithm):
    """Mixed-precision in-situ training (Nandakumar et al., Front. Neurosci. 14, 406, 2020).

    A digital accumulator χ per analog weight gathers the proposed updates; the device is
    written only in whole multiples of its granularity ε (one pulse's mean step)::

        χ ← χ + ΔW                                  (ΔW = -lr·grad, or the base's proposal)
        n = min(floor(|χ| / ε), max_pulses)
        program ΔWn = n·ε·sign(χ) onto the tile     (cells with n = 0 are not written)
        χ ← χ - n·ε·sign(χ)

    The deterministic cousin of EaPU: EaPU writes ΔWth·sign(ΔW) with probability |ΔW|/ΔWth,
    mixed precision writes when the accumulated update reaches ε. χ subtracts the *intended*
    update; the device's actual error is not fed back (as in the paper).

    Writing: with the crossbar's ``sign`` scheme the n steps are n identical pulses (applied
    in rounds); any other scheme (``gaussian``, ``two_pulse``, ``write_verify``,
    ``memorial``) is asked once for the target n·ε and spends what it needs (Nandakumar et al.
    apply n pulses without verify: the ``sign`` scheme is the faithful choice).

    Args:
        params: parameters or groups; tile-backed ones are analog, the rest digital.
        lr: learning rate of the base optimizer (> 0).
        granularity_us: ε in µS (ε in weight units = granularity_us · Rwg); default the
            device's ``step_up_us``.
        max_pulses: at most this many steps of ε per cell and step (the rest stays in χ).
        base: the optimizer that proposes ΔW (default ``torch.optim.SGD``).
        seed: seeds the optimizer's generator (unused by this deterministic rule, kept for a
            uniform interface and state).
        **base_kwargs: passed to ``base`` (``momentum``, ...).
    """

    _OWN_KEYS = ("granularity_us", "max_pulses")

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.01,
        *,
        granularity_us: float | None = None,
        max_pulses: int = 100,
        base: type[Optimizer] = torch.optim.SGD,
        seed: int = 0,
        **base_kwargs: Any,
    ) -> None:
        _positive("lr", lr)
        if granularity_us is not None:
            _positive("granularity_us", granularity_us)
        _int_at_least("max_pulses", max_pulses, 1)
        super().__init__(
            params,
            base,
            seed=seed,
            defaults=dict(granularity_us=granularity_us, max_pulses=max_pulses),
            base_kwargs=dict(lr=lr, **base_kwargs),
        )

    def epsilon(self, p: Tensor) -> float:
        """ε of analog parameter ``p`` in weight units."""
        tile = _tile_of(p)
        g_us = self._group_of(p)["granularity_us"]
        return _granularity(tile) if g_us is None else float(g_us) * tile.rwg_per_us

    def _slot(self, p: Tensor) -> dict[str, Any]:
        slot = self._slots.get(id(p))
        if slot is None:
            slot = self._slots[id(p)] = {
                "chi": torch.zeros_like(p, memory_format=torch.contiguous_format)
            }
        return slot

    def _update(self, p: Tensor, dw: Tensor | None, group: dict[str, Any]) -> Tensor:
        if dw is None:
            return torch.zeros(len(FIELDS), dtype=torch.int64)
        tile = _tile_of(p)
        chi = self._slot(p)["chi"]
        chi.add_(dw)
        eps = self.epsilon(p)
        n = torch.floor(chi.abs() / eps).clamp(max=group["max_pulses"])
        n = (n * torch.sign(chi)).to(torch.int64)
        row = _pulse_train(tile, n, eps, tile.crossbar.scheme)
        chi.sub_(n.to(chi.dtype) * eps)
        p.copy_(tile.weight())
        return row

    def _slot_state(self, slot: dict[str, Any]) -> dict[str, Any]:
        return {"chi": slot["chi"].clone()}

    def _load_slot_state(self, slot: dict[str, Any], state: dict[str, Any]) -> None:
        slot["chi"].copy_(state["chi"])


# ---------------------------------------------------------------------------- Tiki-Taka v2
_FAST_SCHEMES = ("pulsed",)


class TikiTakaV2(TileAlgorithm):
    """Tiki-Taka v2 (Gokmen, Front. Artif. Intell. 4, 699148, 2021), optionally chopped.

    Every analog weight W gets a fast array A, placed as an extra tile on the same crossbar
    (``<layer>.A``, loaded to zero); the layer's own tile is the slow array C; a digital
    buffer H (one float per weight) sits between them::

        A ← A + c·ΔW                              every step (ΔW = -lr·grad: the base's ΔW)
        every ``transfer_every`` steps, for the next input line j (cycling):
            v = c_j · read(A[:, j])                  (a noisy forward read with input e_j)
            H[:, j] ← H[:, j] + transfer_lr · v
            n = min(trunc(|H| / h_threshold), transfer_pulses)      where |H| ≥ h_threshold
            C ← C + sign(H)·n·ε_C                    (n pulse-sized steps, ε_C = one pulse)
            H ← H - sign(H)·n·h_threshold            (or H ← 0 with ``forget_buffer``)
            c_j flips (chopped: with ``chopper_probability``, or every ``chopper_every``-th
            read of line j)
        W = C + gamma · c·A                          (the layer's parameter; gamma 0 = TTv2)

    This is aihwkit's ``BufferedTransferCompound`` (``ChoppedTransferCompound`` with
    choppers, Rasch et al., Nat. Commun. 15, 7133, 2024), with threshold ``h_threshold``
    (``thres_scale`` · ε_C there), momentum 0 and ``n_reads_per_transfer = 1``; the choppers
    are the input choppers c_j ∈ {±1}, one per input line, which flip only right after their
    line is read (so each read sees a single chopper sign). With c ≡ 1 it is plain TTv2.

    Simplifications against the papers:
    - The rank-one stochastic pulse trains onto A (x and δ coded as pulse streams, their
      coincidences as pulses) are replaced by a write of the full mini-batch update ΔW:
      ``fast_scheme="pulsed"`` (default) turns each cell's |ΔA| into
      floor(|ΔA|/ε_A) + Bernoulli(frac) identical pulses (at most ``fast_max_pulses``),
      which has the pulse trains' expectation E[n·ε_A] = |ΔA|; any registered scheme name
      instead writes ΔA with that scheme in one go (``"sign"``: one pulse of sign(ΔA) per
      cell with a non-zero gradient, whatever its size; ``"gaussian"``: the abstract write).
    - Reading a line reads the whole of A with the tile's read noise and keeps line j.
    - The forward pass sees C with its read noise (the analog layer) plus gamma·c·A
      noise-free.
    - H and the choppers are per weight / per input line of each parameter, not per array.

    Args:
        params: parameters or groups; tile-backed ones are analog, the rest digital.
        lr: learning rate (> 0): of the base optimizer, hence of the update written to A,
            and of the digital parameters.
        transfer_every: steps between transfers (each transfer reads one input line).
        transfer_lr: gain from a read of A into H (> 0).
        h_threshold: the threshold of |H| in weight units; default ε_C (aihwkit's
            ``thres_scale = 1``). C moves by ε_C per ``h_threshold`` of H.
        transfer_pulses: at most this many pulse-sized steps onto C per weight and transfer
            (aihwkit's transfer ``desired_bl``, default 1).
        forget_buffer: reset H to 0 after a transfer instead of subtracting what was moved.
        gamma: weight of A in the forward pass, in [0, 1].
        chopper_probability: probability that c_j flips after a read of line j, in [0, 1].
        chopper_every: flip c_j deterministically after every ``chopper_every``-th read of
            line j (None: random switching); give one of the two.
        fast_scheme: ``"pulsed"`` or a registered programming scheme, for writes onto A.
        fast_max_pulses: pulse budget per cell and step of the ``"pulsed"`` A update.
        base: the optimizer that proposes ΔW (default ``torch.optim.SGD``).
        seed: seeds the optimizer's generator (pulse rounding, chopper flips).
        **base_kwargs: passed to ``base``.
    """

    _OWN_KEYS = ()

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.01,
        *,
        transfer_every: int = 1,
        transfer_lr: float = 1.0,
        h_threshold: float | None = None,
        transfer_pulses: int = 1,
        forget_buffer: bool = False,
        gamma: float = 0.0,
        chopper_probability: float = 0.0,
        chopper_every: int | None = None,
        fast_scheme: str = "pulsed",
        fast_max_pulses: int = 31,
        base: type[Optimizer] = torch.optim.SGD,
        seed: int = 0,
        **base_kwargs: Any,
    ) -> None:
        _positive("lr", lr)
        _int_at_least("transfer_every", transfer_every, 1)
        _positive("transfer_lr", transfer_lr)
        if h_threshold is not None:
            _positive("h_threshold", h_threshold)
        _int_at_least("transfer_pulses", transfer_pulses, 1)
        if not isinstance(forget_buffer, bool):
            raise ValueError(f"Invalid forget_buffer: {forget_buffer!r}; allowed: True or False")
        _probability("gamma", gamma)
        _probability("chopper_probability", chopper_probability)
        _int_at_least("chopper_every", chopper_every, 1, allow_none=True)
        if chopper_every is not None and chopper_probability > 0:
            raise ValueError(
                f"Invalid chopper_every: {chopper_every!r} with chopper_probability "
                f"{chopper_probability!r}; allowed: one of the two (random or regular flips)"
            )
        if fast_scheme not in _FAST_SCHEMES:
            try:
                get_scheme(fast_scheme)
            except ValueError:
                raise ValueError(
                    f"Invalid fast_scheme: {fast_scheme!r}; allowed: 'pulsed' or a "
                    "registered programming scheme"
                ) from None
        _int_at_least("fast_max_pulses", fast_max_pulses, 1)
        self.transfer_every = transfer_every
        self.transfer_lr = float(transfer_lr)
        self.h_threshold = h_threshold
        self.transfer_pulses = transfer_pulses
        self.forget_buffer = forget_buffer
        self.gamma = float(gamma)
        self.chopper_probability = float(chopper_probability)
        self.chopper_every = chopper_every
        self.fast_scheme = fast_scheme
        self.fast_max_pulses = fast_max_pulses
        super().__init__(
            params, base, seed=seed, defaults={}, base_kwargs=dict(lr=lr, **base_kwargs)
        )

    @property
    def chopped(self) -> bool:
        return self.chopper_probability > 0 or self.chopper_every is not None

    def fast_tile(self, p: Tensor) -> Tile:
        """The fast array A of analog parameter ``p``."""
        return self._slot(p)["A"]  # type: ignore[no-any-return]

    def buffer(self, p: Tensor) -> Tensor:
        """The digital buffer H of ``p`` (weight units)."""
        return self._slot(p)["H"]  # type: ignore[no-any-return]

    def chopper(self, p: Tensor) -> Tensor:
        """The choppers c_j ∈ {±1} of ``p``'s input lines (float tensor)."""
        return self._slot(p)["c"]  # type: ignore[no-any-return]

    def threshold_for(self, p: Tensor) -> float:
        """|H| threshold of ``p`` in weight units."""
        return _granularity(_tile_of(p)) if self.h_threshold is None else float(self.h_threshold)

    def _slot(self, p: Tensor) -> dict[str, Any]:
        slot = self._slots.get(id(p))
        if slot is None:
            tile = _tile_of(p)
            fast = tile.crossbar.add_tile(
                tile.name + ".A", torch.zeros(tile.shape), transposed=tile.transposed
            )
            line = _line_index(tile)
            lines = int(line.max()) + 1
            slot = self._slots[id(p)] = {
                "A": fast,
                "line_of": line,
                "H": torch.zeros(tile.shape, dtype=torch.float32),
                "c": torch.ones(lines),
                "reads": torch.zeros(lines, dtype=torch.int64),
                "next": 0,
            }
            with torch.no_grad():
                p.copy_(self._forward_weight(p, slot))
        return slot

    def _cells(self, p: Tensor) -> int:
        return int(_tile_of(p).cells) + int(self._slot(p)["A"].cells)

    def _forward_weight(self, p: Tensor, slot: dict[str, Any]) -> Tensor:
        w = _tile_of(p).weight()
        if self.gamma:
            w = w + self.gamma * slot["c"][slot["line_of"]] * slot["A"].weight()
        return w

    def _update(self, p: Tensor, dw: Tensor | None, group: dict[str, Any]) -> Tensor:
        slot = self._slot(p)
        tile = _tile_of(p)
        fast: Tile = slot["A"]
        cvec = slot["c"][slot["line_of"]]
        row = torch.zeros(len(FIELDS), dtype=torch.int64)
        if dw is not None:  # 1. the gradient goes onto A, chopped
            da = cvec * dw.detach().cpu().to(torch.float32)
            if self.fast_scheme == "pulsed":
                eps = _granularity(fast)
                ratio = da.abs() / eps
                whole = torch.floor(ratio)
                u = torch.rand(ratio.shape, generator=self.generator)
                n = (whole + (u < ratio - whole).to(whole.dtype)).clamp(max=self.fast_max_pulses)
                r = _pulse_train(fast, (n * torch.sign(da)).to(torch.int64), eps, "sign")
            else:
                before = fast.writes.clone()
                r = _program_with(fast, da, self.fast_scheme)
                r[_W] = int(((fast.writes - before) > 0).sum())
            row += r
        if self._steps % self.transfer_every == 0:  # 2. transfer one line of A into H and C
            j = slot["next"]
            slot["next"] = (j + 1) % slot["c"].numel()
            on = slot["line_of"] == j
            read = fast.read()
            row[_R] += int(on.sum()) * (2 if fast.crossbar.mapping == "differential" else 1)
            h = slot["H"]
            h += torch.where(on, self.transfer_lr * slot["c"][j] * read, 0.0)
            thr = self.threshold_for(p)
            n = torch.trunc(h.abs() / thr).clamp(max=self.transfer_pulses)
            n = torch.where(on, n, 0.0) * torch.sign(h)
            if bool(n.any()):
                row += _pulse_train(
                    tile, n.to(torch.int64), _granularity(tile), tile.crossbar.scheme
                )
                if self.forget_buffer:
                    h.masked_fill_(n != 0, 0.0)
                else:
                    h -= n * thr
            slot["reads"][j] += 1
            if self.chopper_every is not None:
                if slot["reads"][j] % self.chopper_every == 0:
                    slot["c"][j] = -slot["c"][j]
            elif self.chopper_probability > 0:
                if float(torch.rand((), generator=self.generator)) < self.chopper_probability:
                    slot["c"][j] = -slot["c"][j]
        p.copy_(self._forward_weight(p, slot))
        return row

    def _slot_state(self, slot: dict[str, Any]) -> dict[str, Any]:
        return {
            "A": {k: v.clone() for k, v in slot["A"].state_tensors().items()},
            "H": slot["H"].clone(),
            "c": slot["c"].clone(),
            "reads": slot["reads"].clone(),
            "next": int(slot["next"]),
        }

    def _load_slot_state(self, slot: dict[str, Any], state: dict[str, Any]) -> None:
        slot["A"].load_state_tensors(state["A"])
        slot["H"].copy_(state["H"])
        slot["c"].copy_(state["c"])
        slot["reads"].copy_(state["reads"])
        slot["next"] = int(state["next"])


class ChoppedTTv2(TikiTakaV2):
    """Chopped Tiki-Taka v2, c-TTv2 (Rasch et al., Nat. Commun. 15, 7133, 2024).

    `TikiTakaV2` with input choppers c_j ∈ {±1}: A receives c·ΔW, reads of line j are
    multiplied by c_j, and c_j flips after a read of line j with ``chopper_probability``
    (default 0.1, aihwkit's ``in_chop_prob``) or every ``chopper_every``-th read. A device
    bias on A (an offset of its zero, asymmetric steps) is then written with alternating
    sign and averages out of H instead of being transferred onto C.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.01,
        *,
        chopper_probability: float = 0.1,
        chopper_every: int | None = None,
        **kwargs: Any,
    ) -> None:
        if chopper_every is not None and chopper_probability == 0.1:
            chopper_probability = 0.0  # regular switching asked for: drop the random default
        super().__init__(
            params,
            lr,
            chopper_probability=chopper_probability,
            chopper_every=chopper_every,
            **kwargs,
        )
        if not self.chopped:
            raise ValueError(
                f"Invalid chopper_probability: {chopper_probability!r} with chopper_every "
                "None; allowed: a probability in (0, 1] or chopper_every >= 1 (use TikiTakaV2 "
                "for no chopper)"
            )


# ------------------------------------------------------------------ hardware-aware training
class HWANoise:
    """Forward-pass weight noise on a model's layers (see `hwa_noise`). A context manager."""

    def __init__(
        self, model: nn.Module, sd_w: float, generator: torch.Generator, train_only: bool
    ) -> None:
        self.sd_w = sd_w
        self.generator = generator
        self.train_only = train_only
        self.enabled = True
        self.modules: list[nn.Module] = []
        self._handles: list[Any] = []
        for mod in model.modules():
            w = mod._parameters.get("weight")
            if isinstance(w, nn.Parameter) and w.dim() > 1:
                self.modules.append(mod)
                self._handles.append(mod.register_forward_pre_hook(self._pre))
                self._handles.append(mod.register_forward_hook(self._post, always_call=True))

    def _pre(self, mod: nn.Module, args: Any) -> None:
        if not self.enabled or self.sd_w == 0 or (self.train_only and not mod.training):
            return
        w = mod._parameters["weight"]
        assert w is not None
        noise = torch.randn(
            w.shape, generator=self.generator, dtype=w.dtype, device=self.generator.device
        ).to(w.device)
        # An instance attribute shadows the registered parameter for this forward only; the
        # sum is differentiable in w with derivative 1 (straight-through), and autograd keeps
        # the noisy weight for the backward pass.
        mod.__dict__["weight"] = w + self.sd_w * noise

    @staticmethod
    def _post(mod: nn.Module, args: Any, output: Any) -> None:
        mod.__dict__.pop("weight", None)

    def remove(self) -> None:
        """Remove the hooks: the model is exactly as before."""
        for h in self._handles:
            h.remove()
        self._handles = []
        for mod in self.modules:
            mod.__dict__.pop("weight", None)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def __enter__(self) -> HWANoise:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def hwa_noise(
    model: nn.Module,
    sd_us: float,
    rwg_per_us: float = 1 / 80,
    generator: torch.Generator | None = None,
    *,
    train_only: bool = True,
) -> HWANoise:
    """Hardware-aware training (Rasch et al., Nat. Commun. 14, 5282, 2023), reduced to its core.

    While the returned handle is active, every forward pass of each layer with a weight of
    dim > 1 (Linear, Conv, ConvTranspose, analog layers) uses W + N(0, (sd_us·Rwg)²), fresh
    noise each forward, drawn from ``generator``; the gradient flows to W unchanged
    (straight-through: it is the gradient at the perturbed weights). Parameters, state_dict
    and optimizer see only the clean W. Train in software with it, then program the result
    once (ex-situ). With ``train_only`` (default) layers in ``eval()`` mode run noise-free.

    >>> import torch
    >>> model = torch.nn.Linear(4, 2)
    >>> with hwa_noise(model, sd_us=2.0, generator=torch.Generator().manual_seed(0)):
    ...     model(torch.randn(8, 4)).pow(2).mean().backward()

    Simplifications: absolute Gaussian weight noise in µS (the device's εcell), not aihwkit's
    relative, per-channel noise with output noise, clipping and learned ranges.

    Args:
        model: the network (hooks are added to its layers).
        sd_us: SD of the write error to emulate, µS (e.g. SD(εcell) = 2 µS).
        rwg_per_us: Rwg = Wmax / Gmax (µS⁻¹): noise SD in weight units is sd_us · Rwg.
        generator: the noise's generator (a fresh one seeded 0 if None); its state is in
            the handle's ``state_dict`` for resume.
        train_only: skip the noise for modules in eval mode.

    Returns:
        A handle; ``remove()`` it (or use it as a context manager) to stop the noise.
    """
    _nonneg("sd_us", sd_us)
    _positive("rwg_per_us", rwg_per_us)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"Invalid generator: {generator!r}; allowed: a torch.Generator or None")
    return HWANoise(model, float(sd_us) * float(rwg_per_us), generator, train_only)


# ------------------------------------------------------------------------------ registry
ALGORITHMS: dict[str, tuple[type[TileAlgorithm], str]] = {
    "mixed-precision": (
        MixedPrecision,
        "mixed-precision accumulator, written in whole pulses (Nandakumar et al. 2020)",
    ),
    "ttv2": (
        TikiTakaV2,
        "Tiki-Taka v2: fast array A, digital buffer H, slow array C (Gokmen 2021)",
    ),
    "cttv2": (ChoppedTTv2, "chopped Tiki-Taka v2 (Rasch et al. 2024)"),
}


def get_algorithm(name: str) -> type[TileAlgorithm]:
    """The optimizer class registered as ``name``."""
    try:
        return ALGORITHMS[name][0]
    except KeyError:
        raise ValueError(
            f"unknown algorithm {name!r}; available: {', '.join(ALGORITHMS)}"
        ) from None


def list_algorithms() -> list[str]:
    return list(ALGORITHMS)
