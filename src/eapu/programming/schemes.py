"""Programming schemes: turn target conductances into pulses on a device, whole tensors at once.

Every scheme has one signature::

    fn(state, target_us, mask, device, params, *, generator, **options) -> ProgramResult

``state`` holds the present conductances and gate positions, ``target_us`` the wanted
conductances and ``mask`` the cells to write. Cells outside the mask come back bit-exact,
with 0 pulses and 0 reads. Targets outside the window are clamped to it (a cell cannot be
programmed beyond its window, so that is the physical outcome); NaN or Inf targets raise
``ValueError``. Iterative schemes loop over pulse *rounds* (every cell of a round in
parallel) and stop when all cells are done or the budget is spent.

A new scheme starts with `prepare_write` (the checks above, the clamped target), drives the
cells with the device's pure functions (`eapu.devices.pulse`, `gate_set`, `read`), ends with
`finish_write` (relaxation of the pulsed cells, the result), and is registered with
`register_scheme`; `check_tolerance` and `check_budget` validate the usual options.
`characterize` measures SD(εcell) of a device under a scheme by a write/read sweep.

>>> import torch
>>> from eapu.devices import get_device
>>> from eapu.programming import CellState, get_scheme
>>> dev = get_device("taox_1t1r")
>>> gen = torch.Generator().manual_seed(0)
>>> params = dev.sample((8,), generator=gen)
>>> state = CellState.initial(dev, params)
>>> res = get_scheme("write_verify")(state, torch.full((8,), 50.0), torch.ones(8, dtype=torch.bool),
...                                   dev, params, generator=gen)
>>> bool((res.pulses > 0).all())
True
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import torch
from torch import Tensor

from .. import validate
from ..devices import (
    CellParams,
    Device,
    SoftBound,
    gate_curve,
    land,
    pick,
    pulse,
    pulse_rounds,
    read,
)
from ..runtime import round_done, sync_free
from .core import (
    CellState,
    ProgramResult,
    WorkingSet,
    check_budget,
    check_tolerance,
    finish_write,
    prepare_write,
    register_scheme,
    zero_counts,
)

__all__ = [
    "RESET_RAMP_STEP_SCALE",
    "gaussian",
    "memorial",
    "pulse_train",
    "sign",
    "two_pulse",
    "write_verify",
    "write_verify_reset",
]


@functools.lru_cache(maxsize=64)
def _nominal_linear(device: Device) -> tuple[float, float]:
    """G at level 0 and the slope per level of the nominal curve taken as linear (computed
    once per device, on the CPU: a step never waits for it)."""
    ends = gate_curve(torch.tensor([0, device.gate_levels - 1]), device).tolist()
    return ends[0], (ends[1] - ends[0]) / (device.gate_levels - 1)


def _local_slope(level: Tensor, device: Device, dtype: torch.dtype) -> Tensor:
    """Nominal dG/dlevel around each level (in range; an integer, or a float holding one),
    floored at a quarter of the mean slope: looked up in a per-level table computed once per
    device (memorial's retries)."""
    return _slope_table(device, dtype, level.device)[level.long()]


@functools.lru_cache(maxsize=64)
def _slope_table(device: Device, dtype: torch.dtype, on: torch.device) -> Tensor:
    top = device.gate_levels - 1
    level = torch.arange(device.gate_levels, device=on)
    lo = (level - 1).clamp(0, top)
    hi = (level + 1).clamp(0, top)
    g_lo = gate_curve(lo, device).to(dtype)
    g_hi = gate_curve(hi, device).to(dtype)
    slope = (g_hi - g_lo) / (hi - lo).clamp(min=1).to(dtype)
    return slope.clamp(min=0.25 * max(_mean_slope(device), 1e-12))


@functools.lru_cache(maxsize=64)
def _mean_slope(device: Device) -> float:
    """Mean nominal dG/dlevel over the whole gate range (a device is frozen: cached)."""
    top = device.gate_levels - 1
    ends = gate_curve(torch.tensor([top]), device) - gate_curve(torch.tensor([0]), device)
    return float(ends) / top


# --------------------------------------------------------------------------------------
# schemes
# --------------------------------------------------------------------------------------


@register_scheme(description="abstract εcell write: target + N(0, relaxation SD)")
def gaussian(
    state: CellState,
    target_us: Tensor,
    mask: Tensor,
    device: Device,
    params: CellParams,
    *,
    generator: torch.Generator,
) -> ProgramResult:
    """Abstract εcell write: a written cell lands at target + N(0, relaxation_sd_us).

    One pulse per written cell whose target differs from its conductance (a zero change is
    not written); no verify, never fails. Stuck cells take the pulse and do not move. The
    gate position of a written cell becomes unknown (-1).
    """
    target = prepare_write(state, target_us, mask, device, params)
    written = mask & (target != state.g_us)
    g_prog = torch.where(written & params.free, target, state.g_us)
    pulses = written.to(torch.int32)
    gate = torch.where(written, torch.full_like(state.gate, -1), state.gate)
    return finish_write(g_prog, gate, pulses, device, params, generator=generator)


@register_scheme(description="sign-based update: one identical pulse of sign(ΔG)")
def sign(
    state: CellState,
    target_us: Tensor,
    mask: Tensor,
    device: Device,
    params: CellParams,
    *,
    generator: torch.Generator,
) -> ProgramResult:
    """Sign-based update: one identical pulse of polarity sign(target - g) per written cell.

    A zero change gets no pulse; no verify, never fails; the gate position of a pulsed cell
    becomes unknown (-1).
    """
    target = prepare_write(state, target_us, mask, device, params)
    pol = torch.where(mask, torch.sign(target - state.g_us), torch.zeros_like(target))
    g_prog = pulse(state.g_us, pol, device, params, generator=generator)
    pulses = (pol != 0).to(torch.int32)
    gate = torch.where(pulses > 0, torch.full_like(state.gate, -1), state.gate)
    return finish_write(g_prog, gate, pulses, device, params, generator=generator)


@register_scheme(description="open-loop pulse train: round(|ΔG| / SET step) identical pulses")
def pulse_train(
    state: CellState,
    target_us: Tensor,
    mask: Tensor,
    device: Device,
    params: CellParams,
    *,
    generator: torch.Generator,
) -> ProgramResult:
    """Open-loop pulse train: n identical pulses of polarity sign(target - g), no verify.

    n = round(|target - g| / ``device.step_up_us``): the change is counted in the device's
    nominal SET step for both polarities (the granularity ε in which Tiki-Taka's fast array
    and mixed precision's accumulator are written), from the requested change even where the
    target lies beyond the window (the pulses are sent; the cell saturates at the edge). The
    pulses of a cell follow one another, each with its own cycle-to-cycle draw and the soft
    bound at the cell's present conductance (`eapu.devices.pulse`); the cell relaxes once,
    after its last pulse, as after every scheme's write: a train is one write (modelled, no
    source measures relaxation between the pulses of a train). With n <= 1 it is `sign`.
    Never fails; the gate position of a pulsed cell becomes unknown (-1).
    """
    prepare_write(state, target_us, mask, device, params)
    dg = torch.where(mask, target_us.to(state.g_us.dtype) - state.g_us, 0.0)
    n = torch.round(dg.abs() / device.step_up_us).to(torch.int32)
    if sync_free(n):
        g_prog = _train_masked(state.g_us, torch.sign(dg), n, device, params, generator)
        gate = torch.where(n > 0, torch.full_like(state.gate, -1), state.gate)
        return finish_write(g_prog, gate, n, device, params, generator=generator)
    flat = n.reshape(-1)
    # Cells by decreasing n: the cells still pulsed in round k are a prefix of `order`.
    order = _longest_first(flat)
    alive = (flat.numel() - torch.bincount(flat, minlength=1).cumsum(0)).tolist()
    busy = order[: alive[0]]
    g = state.g_us.reshape(-1).index_select(0, busy)
    pol = torch.sign(dg).reshape(-1).index_select(0, busy)
    cells = _take(params, busy)
    rounds = alive[: int(flat.max()) if flat.numel() else 0]
    g = pulse_rounds(g, pol, device, cells, rounds, generator=generator)
    g_prog = state.g_us.clone()
    g_prog.view(-1)[busy] = g
    gate = torch.where(n > 0, torch.full_like(state.gate, -1), state.gate)
    return finish_write(g_prog, gate, n, device, params, generator=generator)


def _longest_first(n: Tensor) -> Tensor:
    """The positions of ``n`` (int, >= 0) by decreasing value, ties in order: numpy's stable
    sort, a radix sort below 2**15 (a tenth of torch's CPU argsort on a network's cells)."""
    if n.device.type == "cpu" and n.numel() and int(n.max()) < 2**15:
        key = (2**15 - 1 - n).to(torch.int16).numpy()
        return torch.from_numpy(np.argsort(key, kind="stable"))
    return torch.argsort(n, descending=True, stable=True)


def _take(params: CellParams, idx: Tensor) -> CellParams:
    """``params`` at the flat cells ``idx`` (``index_select``: a quarter of the time of
    advanced indexing on the CPU)."""

    def take(t: Tensor) -> Tensor:
        return t.reshape(-1).index_select(0, idx)

    std = {f: take(getattr(params, f)) for f in CellParams.FIELDS}
    return CellParams(**std, extra={k: take(v) for k, v in params.extra.items()})


def _train_masked(
    g_us: Tensor,
    polarity: Tensor,
    n: Tensor,
    device: Device,
    params: CellParams,
    generator: torch.Generator,
) -> Tensor:
    """`pulse_train`'s pulses on the sync-free path: round k pulses every cell with n > k,
    over the whole tensor (a mask, no gathered subset); one synchronisation, for max n."""
    g = g_us.clone()
    rounds = int(n.max()) if n.numel() else 0
    lin = device.pulse_step_linear(polarity, params)
    if lin is not None:
        step, a, b = (t.to(g.dtype) for t in lin)
        step = torch.where(params.free, step, 0.0)
    for k in range(rounds):
        on = n > k
        if lin is None:
            g = pulse(g, polarity * on.to(g.dtype), device, params, generator=generator)
            continue
        z = torch.randn(g.shape, generator=generator, dtype=g.dtype, device=g.device)
        soft = torch.addcmul(a, g, b).clamp_(min=0).mul_(step)
        noise = torch.add(1, z, alpha=device.c2c_sd).clamp_(min=0)
        moved = torch.addcmul(g, soft, noise).clamp_(device.g_min_us, device.g_max_us)
        g = torch.where(on, moved, g)
    return g


@register_scheme(description="two-pulse: RESET + gated SET, linear response assumed")
def two_pulse(
    state: CellState,
    target_us: Tensor,
    mask: Tensor,
    device: Device,
    params: CellParams,
    *,
    generator: torch.Generator,
) -> ProgramResult:
    """Two-pulse scheme (Li et al., Nat. Commun. 9, 2385 (2018)): RESET + one gated SET.

    The new gate level is ``level + round((target - g) / slope)`` with the slope of the
    nominal curve taken as linear between its end levels (no device-to-device spread, no
    nonlinearity); a cell of unknown level (-1) starts from the level that linear map gives
    for its conductance. 2 pulses per written cell (a zero change is not written), no verify.
    """
    target = prepare_write(state, target_us, mask, device, params)
    written = mask & (target != state.g_us)
    g0, slope = _nominal_linear(device)
    top = device.gate_levels - 1
    guess = torch.round((state.g_us - g0) / slope).clamp(0, top).to(torch.int64)
    present = torch.where(state.gate >= 0, state.gate.to(torch.int64), guess)
    new = (present + torch.round((target - state.g_us) / slope).to(torch.int64)).clamp(0, top)
    landed = land(new, device, params, generator=generator, dtype=state.g_us.dtype)
    g_prog = torch.where(written & params.free, landed, state.g_us)
    pulses = 2 * written.to(torch.int32)
    gate = torch.where(written, new.to(state.gate.dtype), state.gate)
    return finish_write(g_prog, gate, pulses, device, params, generator=generator)


@register_scheme(verified=True, description="write-verify with identical pulses to tolerance")
def write_verify(
    state: CellState,
    target_us: Tensor,
    mask: Tensor,
    device: Device,
    params: CellParams,
    *,
    generator: torch.Generator,
    tolerance_us: float | None = None,
    max_pulses: int | None = None,
) -> ProgramResult:
    """Write-verify with identical pulses: read, pulse towards the target, read; repeat
    while outside ``target ± tol`` and within ``max_pulses``; then relax.

    A requested cell (in ``mask`` with a target other than its present conductance) always
    takes its first pulse: an update is a write, as in the paper's pulse counts (write-verify
    ~66 pulses per update), so the write error is paid on every update. ``failed`` marks
    written cells whose programmed conductance (before relaxation, without read noise) is
    outside the tolerance at the end; read noise can make a cell stop early and fail, and
    stuck cells spend the budget and fail. The gate position of a pulsed cell becomes
    unknown (-1).

    Args:
        tolerance_us: verify tolerance (µS); default ``device.program_tolerance_us``.
        max_pulses: pulse budget per cell (>= 0); default the device's `default_budget`
            (1.2 full swings, at least 100).
    """
    target = prepare_write(state, target_us, mask, device, params)
    tol = check_tolerance(tolerance_us, device)
    budget = check_budget(max_pulses, device)
    active = mask & (target != state.g_us)
    loop = WorkingSet(
        _Verify(
            g=state.g_us.clone(),
            target=target,
            pulses=zero_counts(mask),
            reads=mask.to(torch.int32),  # the first read, of every requested cell
            active=active,
            high=torch.zeros_like(active),
            params=params,
            bound=SoftBound.of(device, params, state.g_us.dtype),
        ),
        cells=active,
        results=("g", "pulses", "reads"),
    )
    c = loop.cells
    r = read(c.g, device, generator=generator)
    c.high = c.active & (r >= c.target)  # the update's first pulse, towards the target as read
    for rnd in range(budget):
        if loop.done(rnd):
            break
        c.g = _pulse(c, c.params, device, generator)
        c.pulses.add_(c.active)
        r = read(c.g, device, generator=generator)
        c.reads.add_(c.active)
        low = c.active & (r < c.target - tol)
        c.high = c.active & (r > c.target + tol)
        c.active = low | c.high
    out = loop.result()
    g, pulses = out.g, out.pulses
    failed = mask & ((g - target).abs() > tol)
    gate = torch.where(pulses > 0, torch.full_like(state.gate, -1), state.gate)
    return finish_write(
        g, gate, pulses, device, params, generator=generator, reads=out.reads, failed=failed
    )


@dataclasses.dataclass
class _Verify:
    """Per-cell state of a write-verify loop (`WorkingSet`)."""

    g: Tensor
    target: Tensor
    pulses: Tensor
    reads: Tensor
    active: Tensor
    high: Tensor  # of the active cells, those above the target (the next pulse: RESET)
    params: CellParams
    bound: SoftBound | None  # the cells' soft bound (None: the device's own pulse)


def _pulse(
    c: _Verify | _Ramp, params: CellParams, device: Device, generator: torch.Generator
) -> Tensor:
    """One identical pulse of the active cells of a write-verify loop, towards the target:
    RESET the high ones, SET the others (`SoftBound.pulse` where the device has one)."""
    if c.bound is not None:
        return c.bound.pulse(c.g, c.active, c.high, device, generator=generator)
    pol = c.active.to(c.g.dtype) - 2 * c.high.to(c.g.dtype)  # +1 SET, -1 RESET, 0 none
    return pulse(c.g, pol, device, params, generator=generator)


@register_scheme(
    verified=True, description="memorial programming: binary search, then step-to-step"
)
def memorial(
    state: CellState,
    target_us: Tensor,
    mask: Tensor,
    device: Device,
    params: CellParams,
    *,
    generator: torch.Generator,
    tolerance_us: float | None = None,
    max_pulses: int = 100,
    step: str = "one",
) -> ProgramResult:
    """Memorial programming (MP) of Liu et al. (2025): binary search once, then step-to-step.

    A verify read first: a cell of unknown gate position (-1) already within tolerance takes
    no pulse; a cell of known position always takes at least one RESET + SET (an update is
    a write, as in the paper's pulse counts). A cell of unknown gate position gets a binary
    search over the gate levels: each probe is a RESET + SET
    at the middle level (2 pulses) and a read; it needs only G monotone in the gate voltage.
    The search ends early within tolerance, otherwise at the probe closest to the target.
    Then (and directly for cells of known position) step-to-step: start from the last level
    moved by the error over the local nominal slope, RESET + SET, read; within tolerance
    stops, else move the level towards the target and repeat until ``max_pulses``. The
    returned state carries the new gate positions. Failure is judged as in `write_verify`.

    Args:
        tolerance_us: verify tolerance (µS); default ``device.program_tolerance_us``.
        max_pulses: pulse budget per cell (>= 0), binary search included.
        step: ``"one"`` moves one level per retry, ``"slope"`` by the error over the local
            nominal slope (at least one level).
    """
    validate.choice("step", step, ("one", "slope"))
    target = prepare_write(state, target_us, mask, device, params)
    tol = check_tolerance(tolerance_us, device)
    budget = check_budget(max_pulses)
    dtype = state.g_us.dtype
    top = device.gate_levels - 1
    i32 = torch.int32

    g = state.g_us.clone()
    gate = state.gate.to(dtype)  # the loops count gate levels in floats (exact integers)
    pulses, reads = zero_counts(mask), zero_counts(mask)
    any_stuck = sync_free(params.free) or not bool(params.free.all())  # (sync-free: always)

    def probe(c: _Search | _Steps, levels: Tensor) -> Tensor:
        """RESET + SET the active cells at ``levels``; returns their read values."""
        landed = land(  # levels are in range: the search's midpoints, the clamped steps
            levels,
            device,
            c.params,
            generator=generator,
            dtype=dtype,
            any_stuck=any_stuck,
        )
        sel = c.active & c.params.free if any_stuck else c.active
        c.g = pick(sel, landed, c.g)
        c.pulses.add_(c.active, alpha=2)
        c.reads.add_(c.active)
        return read(c.g, device, generator=generator)

    r = read(g, device, generator=generator)
    reads += mask.to(i32)
    # A cell of unknown position is searched only if its read is off target; a cell of known
    # position is always updated (an update is a write: RESET + SET at least once).
    todo = mask & pick(gate < 0, (r - target).abs() > tol, target != g)
    if budget < 2:
        todo = torch.zeros_like(todo)
    last_read = r  # read value that belongs to the level in `gate`

    # Binary search for the cells of unknown position.
    search = todo & (gate < 0)
    if not round_done(search, 0):
        loop = WorkingSet(
            _Search(
                g=g,
                target=target,
                pulses=pulses,
                reads=reads,
                todo=todo,
                active=search.clone(),
                params=params,
                lo=torch.zeros_like(g),
                hi=torch.full_like(g, top),
                best_level=torch.zeros_like(g),
                best_err=torch.full_like(g, torch.finfo(dtype).max),  # (pick: finite)
                best_read=g.clone(),
            ),
            cells=search,
            results=("g", "pulses", "reads", "todo", "best_level", "best_read"),
        )
        for probe_k in range(device.gate_levels.bit_length() + 1):  # log2 levels + 1 at most
            c = loop.cells
            mid = torch.floor((c.lo + c.hi) * 0.5)
            r = probe(c, mid)
            err = r - c.target
            aerr = err.abs()
            better = c.active & (aerr < c.best_err)
            c.best_level = pick(better, mid, c.best_level)
            c.best_err = pick(better, aerr, c.best_err)
            c.best_read = pick(better, r, c.best_read)
            ok = c.active & (aerr <= tol)
            c.todo = c.todo & ~ok
            c.lo = pick(c.active & (err < 0), mid + 1, c.lo)
            c.hi = pick(c.active & ~(err < 0), mid - 1, c.hi)
            c.active = c.active & ~ok & (c.lo <= c.hi) & (c.pulses <= budget - 2)
            if loop.done(probe_k):
                break
        out = loop.result()
        g, pulses, reads, todo = out.g, out.pulses, out.reads, out.todo
        # Continue from the best probe (the controller remembers it): a cell that ended
        # within tolerance did so at its best probe, the last one.
        gate = pick(search, out.best_level, gate)
        last_read = pick(search, out.best_read, last_read)

    # Step-to-step from the remembered level.
    active = todo & (pulses <= budget - 2)
    if not round_done(active, 0):
        slope = _local_slope(gate.clamp(0, top), device, dtype)
        level = (gate + torch.round((target - last_read) / slope)).clamp(0, top)
        steps = WorkingSet(
            _Steps(
                g=g,
                target=target,
                pulses=pulses,
                reads=reads,
                active=active,
                params=params,
                level=pick(active, level, gate),
            ),
            cells=active,
            results=("g", "pulses", "reads", "level"),
        )
        # Host path: no cell's budget runs out before this retry (each retry costs 2 pulses).
        safe = -1 if sync_free(pulses) else (budget - 4 - int(pulses.max())) // 2
        for retry in range(budget):
            t = steps.cells
            r = probe(t, t.level)
            err = t.target - r
            t.active = t.active & (err.abs() > tol)
            if retry >= safe:
                t.active &= t.pulses <= budget - 2
            if step == "one":
                move = torch.sign(err)
            else:
                slope = _local_slope(t.level, device, dtype)
                move = torch.sign(err) * torch.trunc(err.abs() / slope).clamp(min=1)
            # A cell that is done keeps the level it was probed at: its gate position.
            t.level = pick(t.active, (t.level + move).clamp(0, top), t.level)
            if steps.done(retry):
                break
        done = steps.result()
        g, pulses, reads = done.g, done.pulses, done.reads
        gate = pick(active, done.level, gate)

    failed = mask & ((g - target).abs() > tol)
    gate_out = torch.where(pulses > 0, gate.to(state.gate.dtype), state.gate)
    return finish_write(
        g, gate_out, pulses, device, params, generator=generator, reads=reads, failed=failed
    )


@dataclasses.dataclass
class _Search:
    """Per-cell state of memorial's binary search (`WorkingSet`); levels in floats."""

    g: Tensor
    target: Tensor
    pulses: Tensor
    reads: Tensor
    todo: Tensor
    active: Tensor
    params: CellParams
    lo: Tensor
    hi: Tensor
    best_level: Tensor
    best_err: Tensor
    best_read: Tensor


@dataclasses.dataclass
class _Steps:
    """Per-cell state of memorial's step-to-step retries (`WorkingSet`); the level in a
    float."""

    g: Tensor
    target: Tensor
    pulses: Tensor
    reads: Tensor
    active: Tensor
    params: CellParams
    level: Tensor


# --------------------------------------------------------------------------------------
# write-verify without memory (the paper's WU pulse count)
# --------------------------------------------------------------------------------------

RESET_RAMP_STEP_SCALE = 0.5
"""Default pulse amplitude of `write_verify_reset`, as a fraction of the device's identical
step. Fitted, not measured: the paper does not describe its write-verify controller, only its
cost, 66 pulses per update (Liu et al. 2025, Fig. 4h). On ``taox_1t1r`` half steps (about
1 µS) make BP over this scheme cost about that on the denoise task (see the README)."""


@register_scheme(
    verified=True,
    description="write-verify without memory: RESET, then a verified ramp of half pulses "
    "(fitted to the paper's 66 pulses per update)",
)
def write_verify_reset(
    state: CellState,
    target_us: Tensor,
    mask: Tensor,
    device: Device,
    params: CellParams,
    *,
    generator: torch.Generator,
    tolerance_us: float | None = None,
    max_pulses: int = 400,
    step_scale: float = RESET_RAMP_STEP_SCALE,
) -> ProgramResult:
    """Write-verify without memory: full RESET, then a verified ramp of small identical pulses.

    A verify read first; a requested cell (in ``mask`` with a target other than its present
    conductance) is always written. The controller keeps nothing from earlier writes: one
    full RESET pulse takes the cell to ``g_reset_us``; then it pulses towards the target as
    read (SET below, RESET above) with identical pulses of ``step_scale`` times the device's
    steps (soft bounds and cycle-to-cycle noise as `eapu.devices.pulse`), reads after every
    pulse, and stops within ``target ± tol`` or when ``max_pulses`` (the RESET included) is
    spent. Its cost grows with the distance from the reset level: tens of pulses per update
    (the paper's WU, Fig. 4h: 66), against one or two for `write_verify`, which starts from
    the present conductance. ``failed`` and stuck cells as in `write_verify`; the gate
    position of a pulsed cell becomes unknown (-1). The ramp stops within half a nominal step
    of the target (at most ``tol``), so that the landed conductance is not biased towards the
    side it approaches from.

    Args:
        tolerance_us: verify tolerance (µS); default ``device.program_tolerance_us``.
        max_pulses: pulse budget per cell (>= 0), the RESET included.
        step_scale: pulse amplitude as a fraction of ``step_up_us`` / ``step_down_us``, in
            (0, 1]; the default `RESET_RAMP_STEP_SCALE` is fitted to the paper's 66 pulses.
    """
    validate.fraction("step_scale", step_scale, low_open=True)
    target = prepare_write(state, target_us, mask, device, params)
    tol = check_tolerance(tolerance_us, device)
    budget = check_budget(max_pulses)
    # Smaller identical pulses: every cell's step scaled, whatever kind of device computes
    # it (the soft-bound formula or a measured table, `Device.pulse_step_us`).
    fine = dataclasses.replace(
        params,
        step_up_scale=params.step_up_scale * step_scale,
        step_down_scale=params.step_down_scale * step_scale,
    )
    active = mask & (target != state.g_us) if budget > 0 else torch.zeros_like(mask)
    # One full RESET: the cell forgets where it was (stuck cells take it and stay put).
    reset_g = torch.full_like(state.g_us, device.g_reset_us)
    loop = WorkingSet(
        _Ramp(
            g=torch.where(active & params.free, reset_g, state.g_us),
            target=target,
            pulses=active.to(torch.int32),
            reads=mask.to(torch.int32),  # the verify read that finds the cells to write
            active=active,
            high=torch.zeros_like(active),
            fine=fine,
            bound=SoftBound.of(device, fine, state.g_us.dtype),
        ),
        cells=active,
        results=("g", "pulses", "reads"),
    )
    # The controller stops half a nominal step short of the target, not at the edge of the
    # tolerance: a ramp that always approaches from below would otherwise land low, on
    # average by half a step, and BP would add that bias at every update.
    half_up = min(0.5 * step_scale * device.step_up_us, tol)
    half_down = min(0.5 * step_scale * device.step_down_us, tol)
    c = loop.cells
    rnd = 0
    while True:
        r = read(c.g, device, generator=generator)
        c.reads.add_(c.active)
        low = c.active & (r < c.target - half_up)
        high = c.active & (r > c.target + half_down)
        c.active = (low | high) & (c.pulses < budget)
        c.high = high & c.active
        if loop.done(rnd):
            break
        rnd += 1
        c.g = _pulse(c, c.fine, device, generator)
        c.pulses.add_(c.active)
    out = loop.result()
    g, pulses, reads = out.g, out.pulses, out.reads
    failed = mask & ((g - target).abs() > tol)
    gate = torch.where(pulses > 0, torch.full_like(state.gate, -1), state.gate)
    return finish_write(
        g, gate, pulses, device, params, generator=generator, reads=reads, failed=failed
    )


@dataclasses.dataclass
class _Ramp:
    """Per-cell state of `write_verify_reset`'s ramp (`WorkingSet`); ``fine``: the cells'
    draw with the scaled steps."""

    g: Tensor
    target: Tensor
    pulses: Tensor
    reads: Tensor
    active: Tensor
    high: Tensor  # of the active cells, those above the target (the next pulse: RESET)
    fine: CellParams
    bound: SoftBound | None  # the scaled cells' soft bound (None: the device's own pulse)
