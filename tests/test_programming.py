"""Tests of eapu.programming: a conformance suite over every device x scheme, then per scheme."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch

from eapu.devices import (
    CellParams,
    Device,
    MeasuredDevice,
    get_device,
    initial_conductance,
    list_devices,
    save_device,
)
from eapu.programming import (
    CellState,
    ProgramResult,
    get_scheme,
    list_schemes,
)

# Every preset, and the paper's cell in the measured (table) kind read from a device file.
_FILES = Path(tempfile.mkdtemp(prefix="eapu-devices-"))
save_device(MeasuredDevice.from_device(get_device("taox_1t1r")), _FILES / "taox_table.toml")
ALL_DEVICES = [*list_devices(), str(_FILES / "taox_table.toml")]
ALL_SCHEMES = list_schemes()
SHAPE = (24, 16)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _setup(
    name: str, seed: int = 0, faulty: bool = True
) -> tuple[Device, CellParams, CellState, torch.Tensor, torch.Tensor]:
    """A device with faults, its cells at random conductances, targets (some outside the
    window), and a mask writing about two thirds of the cells."""
    dev = get_device(name)
    if faulty:
        dev = dataclasses.replace(dev, stuck_off_fraction=0.1, stuck_on_fraction=0.05)
    gen = _gen(100 + seed)
    params = dev.sample(SHAPE, generator=gen)
    g = dev.g_min_us + dev.span_us * torch.rand(SHAPE, generator=gen)
    g = torch.where(params.free, g, initial_conductance(SHAPE, dev, params))
    # Small moves (as in training) plus a few targets beyond the window edges.
    target = g + 0.02 * dev.span_us * torch.randn(SHAPE, generator=gen)
    target[0, :4] = dev.g_max_us + 10.0
    target[1, :4] = dev.g_min_us - 10.0
    mask = torch.rand(SHAPE, generator=gen) < 2 / 3
    gate = torch.full(SHAPE, -1, dtype=torch.int32)
    return dev, params, CellState(g_us=g, gate=gate), target, mask


def _run(scheme: str, name: str, seed: int = 0, faulty: bool = True) -> ProgramResult:
    dev, params, state, target, mask = _setup(name, faulty=faulty)
    return get_scheme(scheme)(state, target, mask, dev, params, generator=_gen(seed))


CASES = [(s, d) for s in ALL_SCHEMES for d in ALL_DEVICES]


@pytest.mark.parametrize(("scheme", "name"), CASES)
def test_conformance(scheme: str, name: str) -> None:
    dev, params, state, target, mask = _setup(name)
    before = state.clone()
    res = get_scheme(scheme)(state, target, mask, dev, params, generator=_gen(1))
    g, gate = res.state.g_us, res.state.gate
    # inputs are not mutated
    assert torch.equal(state.g_us, before.g_us) and torch.equal(state.gate, before.gate)
    # conductances never leave the window
    for t in (g, res.g_programmed_us):
        assert torch.all((t >= dev.g_min_us) & (t <= dev.g_max_us))
    # stuck cells never change
    assert torch.equal(g[~params.free], state.g_us[~params.free])
    # masked-out cells: bit-exact, no pulse, no read, no failure
    out = ~mask
    assert torch.equal(g[out], state.g_us[out])
    assert torch.equal(gate[out], state.gate[out])
    assert torch.all(res.pulses[out] == 0) and torch.all(res.reads[out] == 0)
    assert not res.failed[out].any()
    # counters: non-negative int32, failures are bool
    assert res.pulses.dtype == torch.int32 and res.reads.dtype == torch.int32
    assert res.pulses.min() >= 0 and res.reads.min() >= 0
    assert res.failed.dtype == torch.bool and gate.dtype == torch.int32
    # a cell that got no pulse did not move
    idle = res.pulses == 0
    assert torch.equal(g[idle], state.g_us[idle])
    # gate positions are -1 or a valid level
    assert torch.all((gate >= -1) & (gate < dev.gate_levels))
    info = get_scheme(scheme)
    if not info.verified:
        assert not res.failed.any() and torch.all(res.reads == 0)
    else:
        assert torch.all(res.reads[mask] >= 1)
        # a cell reported fine is within tolerance (before relaxation)
        t = target.clamp(dev.g_min_us, dev.g_max_us)
        ok = mask & ~res.failed
        assert torch.all((res.g_programmed_us - t)[ok].abs() <= dev.program_tolerance_us)


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_zero_change_costs_no_pulse_on_ideal(scheme: str) -> None:
    dev = get_device("ideal")
    params = dev.sample(SHAPE, generator=_gen())
    g = dev.g_max_us * torch.rand(SHAPE, generator=_gen(1))
    state = CellState(g_us=g, gate=torch.full(SHAPE, -1, dtype=torch.int32))
    mask = torch.ones(SHAPE, dtype=torch.bool)
    res = get_scheme(scheme)(state, g.clone(), mask, dev, params, generator=_gen(2))
    assert torch.all(res.pulses == 0)
    assert torch.equal(res.state.g_us, g)


@pytest.mark.parametrize(("scheme", "name"), CASES)
def test_seed_reproducibility(scheme: str, name: str) -> None:
    a = _run(scheme, name, seed=5)
    b = _run(scheme, name, seed=5)
    assert torch.equal(a.state.g_us, b.state.g_us)
    assert torch.equal(a.pulses, b.pulses) and torch.equal(a.reads, b.reads)
    assert torch.equal(a.state.gate, b.state.gate)
    if name != "ideal" and not _noise_free(scheme, name):  # no randomness to seed
        c = _run(scheme, name, seed=6)
        assert not torch.equal(a.state.g_us, c.state.g_us)


def _noise_free(scheme: str, name: str) -> bool:
    """Whether ``scheme`` draws nothing on device ``name``: a gate-controlled or abstract
    write on a device without gate, relaxation or read noise (aihwkit's presets, whose
    noise is per pulse)."""
    dev = get_device(name)
    quiet = dev.gate_c2c_sd_us == 0 and dev.relaxation_sd_us == 0 and dev.read_noise_sd_us == 0
    return quiet and scheme in ("gaussian", "two_pulse", "memorial")


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_bad_targets_and_shapes_raise(scheme: str) -> None:
    dev, params, state, target, mask = _setup("taox_1t1r")
    fn = get_scheme(scheme)
    bad = target.clone()
    bad[tuple(mask.nonzero()[0].tolist())] = math.nan
    with pytest.raises(ValueError, match="target_us must be finite"):
        fn(state, bad, mask, dev, params, generator=_gen())
    # NaN where the mask is off is never looked at
    ok = target.clone()
    ok[tuple((~mask).nonzero()[0].tolist())] = math.nan
    fn(state, ok, mask, dev, params, generator=_gen())
    with pytest.raises(ValueError, match="target_us has shape"):
        fn(state, target[:2], mask, dev, params, generator=_gen())
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        fn(state, target, mask.int(), dev, params, generator=_gen())


def test_targets_outside_window_clamp_on_ideal() -> None:
    dev = get_device("ideal")
    params = dev.sample((2,), generator=_gen())
    state = CellState(g_us=torch.tensor([500.0, 500.0]), gate=torch.tensor([-1, -1]).int())
    res = get_scheme("two_pulse")(
        state,
        torch.tensor([2000.0, -50.0]),
        torch.ones(2, dtype=torch.bool),
        dev,
        params,
        generator=_gen(),
    )
    assert torch.allclose(res.state.g_us, torch.tensor([dev.g_max_us, dev.g_min_us]))


def test_registry() -> None:
    assert set(ALL_SCHEMES) == {
        "gaussian",
        "pulse_train",
        "sign",
        "two_pulse",
        "write_verify",
        "write_verify_reset",
        "memorial",
    }
    verified = {"write_verify", "write_verify_reset", "memorial"}
    assert {s for s in ALL_SCHEMES if get_scheme(s).verified} == verified
    assert list_schemes("*pulse*") == ["pulse_train", "two_pulse"]
    with pytest.raises(ValueError, match=r"unknown scheme 'wv'; available: .*write_verify"):
        get_scheme("wv")


def test_bad_options_raise() -> None:
    dev, params, state, target, mask = _setup("taox_1t1r")
    with pytest.raises(
        ValueError, match=r"Invalid tolerance_us: -1\.0; allowed: a finite number > 0"
    ):
        get_scheme("write_verify")(
            state, target, mask, dev, params, generator=_gen(), tolerance_us=-1.0
        )
    with pytest.raises(ValueError, match="Invalid max_pulses: -3; allowed: an integer >= 0"):
        get_scheme("memorial")(state, target, mask, dev, params, generator=_gen(), max_pulses=-3)
    with pytest.raises(ValueError, match="Invalid step: 'two'; allowed: 'one', 'slope'"):
        get_scheme("memorial")(state, target, mask, dev, params, generator=_gen(), step="two")


def test_cell_state_round_trip() -> None:
    dev = get_device("taox_1t1r")
    params = dev.sample((5,), generator=_gen())
    s = CellState.initial(dev, params)
    back = CellState.from_state_dict(s.state_dict())
    assert torch.equal(back.g_us, s.g_us) and torch.equal(back.gate, s.gate)
    assert torch.all(s.gate == -1)


# --- per scheme -----------------------------------------------------------------------


def _fresh(name: str, n: int, seed: int = 0, **overrides: float) -> tuple:
    dev = get_device(name, **overrides)
    gen = _gen(seed)
    params = dev.sample((n,), generator=gen)
    g = dev.g_min_us + dev.span_us * torch.rand(n, generator=gen)
    state = CellState(g_us=g, gate=torch.full((n,), -1, dtype=torch.int32))
    margin = 10.0
    target = dev.g_min_us + margin + (dev.span_us - 2 * margin) * torch.rand(n, generator=gen)
    return dev, params, state, target, torch.ones(n, dtype=torch.bool), gen


def test_write_verify_within_tolerance_or_reports_failure() -> None:
    dev, params, state, target, mask, gen = _fresh("taox_1t1r", 2000)
    tol = dev.program_tolerance_us
    for budget in (3, 100):
        res = get_scheme("write_verify")(
            state, target, mask, dev, params, generator=gen, max_pulses=budget
        )
        err = (res.g_programmed_us - target).abs()
        assert torch.equal(res.failed, err > tol)
        assert res.pulses.max() <= budget
        assert torch.all(res.reads <= res.pulses + 1)
    small_fail = (
        get_scheme("write_verify")(
            state, target, mask, dev, params, generator=_gen(1), max_pulses=3
        )
        .failed.float()
        .mean()
    )
    assert small_fail > 0.5  # a 3-pulse budget cannot cross a 160 µS window
    assert res.failed.float().mean() < 0.1


def test_write_verify_stuck_cells_spend_budget_and_fail() -> None:
    dev, params, state, target, mask, gen = _fresh("taox_1t1r", 500, stuck_off_fraction=0.2)
    stuck = ~params.free
    state = CellState(
        torch.where(stuck, initial_conductance((500,), dev, params), state.g_us), state.gate
    )
    target = torch.where(stuck, torch.full_like(target, 100.0), target)
    res = get_scheme("write_verify")(state, target, mask, dev, params, generator=gen, max_pulses=20)
    assert torch.all(res.pulses[stuck] == 20) and torch.all(res.failed[stuck])


def test_memorial_binary_search_then_cheap_steps() -> None:
    dev, params, state, target, mask, gen = _fresh("taox_1t1r", 2000)
    mp = get_scheme("memorial")
    first = mp(state, target, mask, dev, params, generator=gen)
    search_cost = 2 * math.log2(dev.gate_levels)
    mean_first = float(first.pulses.float().mean())
    assert 0.6 * search_cost <= mean_first <= 1.5 * search_cost
    assert torch.all(first.state.gate[first.pulses > 0] >= 0)  # position recorded
    assert first.failed.float().mean() < 0.1
    # later small updates (2 µS, the EaPU threshold) start from the remembered level
    t2 = (first.state.g_us + 2.0 * torch.randn(2000, generator=gen)).clamp(15.0, 155.0)
    second = mp(first.state, t2, mask, dev, params, generator=gen)
    mean_second = float(second.pulses.float().mean())
    assert mean_second < 0.5 * mean_first
    assert second.failed.float().mean() < 0.1
    # without the memory, a cell that must move costs a new search
    forgot = CellState(first.state.g_us, torch.full_like(first.state.gate, -1))
    again = mp(forgot, t2, mask, dev, params, generator=_gen(3))
    searched = again.pulses > 0
    assert float(again.pulses[searched].float().mean()) > 1.5 * mean_second


def test_memorial_slope_steps_also_converge() -> None:
    dev, params, state, target, mask, gen = _fresh("taox_1t1r", 1000)
    res = get_scheme("memorial")(state, target, mask, dev, params, generator=gen, step="slope")
    assert res.failed.float().mean() < 0.1


def test_two_pulse_exact_on_ideal_imprecise_on_taox() -> None:
    dev, params, state, target, mask, gen = _fresh("ideal", 2000)
    res = get_scheme("two_pulse")(state, target, mask, dev, params, generator=gen)
    slope = dev.span_us / (dev.gate_levels - 1)
    assert float((res.state.g_us - target).abs().max()) <= 1.01 * slope
    assert torch.all(res.pulses == 2)
    dev, params, state, target, mask, gen = _fresh("taox_1t1r", 2000)
    res = get_scheme("two_pulse")(state, target, mask, dev, params, generator=gen)
    err = res.state.g_us - target
    assert float(err.pow(2).mean().sqrt()) > 3 * dev.relaxation_sd_us


def test_sign_moves_towards_target_by_one_step() -> None:
    dev, params, state, target, mask, gen = _fresh("taox_1t1r", 2000, relaxation_sd_us=0.0)
    res = get_scheme("sign")(state, target, mask, dev, params, generator=gen)
    moved = res.state.g_us - state.g_us
    want = torch.sign(target - state.g_us)
    assert torch.all(moved * want >= 0)
    assert torch.all(res.pulses == (want != 0).int())
    assert float(moved.abs().max()) < 3 * max(dev.step_up_us, dev.step_down_us) * 2


def test_pulse_train_sends_n_pulses_and_relaxes_once() -> None:
    # A linear device without cycle-to-cycle noise: n pulses move a cell by exactly n steps.
    dev, params, state, _, mask, gen = _fresh(
        "taox_1t1r",
        2000,
        relaxation_sd_us=0.0,
        c2c_sd=0.0,
        dtod_sd=0.0,
        nonlinearity_up=0.0,
        nonlinearity_down=0.0,
        stuck_off_fraction=0.0,
    )
    g0 = torch.full((2000,), 80.0)
    state = CellState(g_us=g0, gate=state.gate)
    n = torch.randint(-12, 13, (2000,), generator=_gen(1))
    # n steps are asked in SET steps; a RESET pulse is the device's RESET step.
    target = g0 + n * dev.step_up_us + 0.3 * (torch.rand(2000, generator=_gen(2)) - 0.5)
    res = get_scheme("pulse_train")(state, target, mask, dev, params, generator=gen)
    assert torch.equal(res.pulses, n.abs().int())
    step = torch.where(n > 0, dev.step_up_us, dev.step_down_us)
    assert torch.allclose(res.state.g_us, g0 + torch.sign(n) * n.abs() * step, atol=1e-4)
    assert torch.equal(res.state.gate, torch.where(n != 0, -1, state.gate))
    # One relaxation per train: the error of a 16-pulse train has SD(relaxation), not 4x it.
    sd = 2.0
    dev, params, state, _, mask, gen = _fresh(
        "taox_1t1r",
        4000,
        relaxation_sd_us=sd,
        c2c_sd=0.0,
        dtod_sd=0.0,
        nonlinearity_up=0.0,
        stuck_off_fraction=0.0,
    )
    state = CellState(g_us=torch.full((4000,), 40.0), gate=state.gate)
    res = get_scheme("pulse_train")(
        state, state.g_us + 16 * dev.step_up_us, mask, dev, params, generator=gen
    )
    err = res.state.g_us - (40.0 + 16 * dev.step_up_us)
    assert abs(float(err.std()) - sd) < 0.1 and abs(float(err.mean())) < 0.1


class _SameStep(Device):
    """The base kind's step through the seam alone (no soft-bound coefficients): the schemes
    take their generic loops, pulse by pulse."""

    def pulse_step_linear(self, *args: Any) -> None:
        return None

    def pulse_step_us(
        self, g_us: torch.Tensor, polarity: torch.Tensor, params: CellParams, z: torch.Tensor
    ) -> torch.Tensor:
        lin = Device.pulse_step_linear(self, polarity, params)
        assert lin is not None
        step, a, b = lin
        return step * (a + b * g_us).clamp(min=0) * (1 + self.c2c_sd * z).clamp(min=0)


@pytest.mark.parametrize(
    ("scale", "coarse", "longest"), [(40.0, False, 20), (400.0, False, 200), (40.0, True, 2)]
)
def test_pulse_train_fast_rounds_equal_the_generic_loop(
    scale: float, coarse: bool, longest: int
) -> None:
    # The base kind's loop composes a block of rounds' affine maps at once (trains that reach
    # the window's edge included; a step that overshoots its bound, round by round); same
    # draws, the same result up to float rounding.
    dev, params, state, target, mask = _setup("taox_1t1r")
    if coarse:  # steps of 60 µS, soft bound 1: a pulse can cross the bound's fixed point
        dev = dataclasses.replace(dev, step_up_us=60.0, step_down_us=60.0, nonlinearity_up=1.0)
    far = state.g_us + scale * (target - state.g_us)  # trains of up to ~100 / ~1000 pulses
    same = _SameStep(**{f.name: getattr(dev, f.name) for f in dataclasses.fields(dev)})
    fast = get_scheme("pulse_train")(state, far, mask, dev, params, generator=_gen(3))
    slow = get_scheme("pulse_train")(state, far, mask, same, params, generator=_gen(3))
    assert int(fast.pulses.max()) > longest
    assert torch.equal(fast.pulses, slow.pulses)
    assert torch.allclose(fast.state.g_us, slow.state.g_us, atol=1e-3)
    assert torch.equal(fast.state.g_us[~params.free], state.g_us[~params.free])


def test_pulse_train_of_one_pulse_is_sign() -> None:
    dev, params, state, target, mask, _ = _fresh("taox_1t1r", 2000)
    one = state.g_us + torch.sign(target - state.g_us) * dev.step_up_us
    a = get_scheme("pulse_train")(state, one, mask, dev, params, generator=_gen(5))
    b = get_scheme("sign")(state, one, mask, dev, params, generator=_gen(5))
    inside = (one > dev.g_min_us) & (one < dev.g_max_us)
    assert torch.equal(a.pulses[inside], b.pulses[inside])
    assert torch.allclose(a.state.g_us[inside], b.state.g_us[inside], atol=1e-4)


def test_gaussian_same_key_reference() -> None:
    dev, params, state, target, mask, _ = _fresh("gaussian", 3000)
    res = get_scheme("gaussian")(state, target, mask, dev, params, generator=_gen(11))
    expected = (target + dev.relaxation_sd_us * torch.randn(3000, generator=_gen(11))).clamp(
        dev.g_min_us, dev.g_max_us
    )
    assert torch.equal(res.state.g_us, expected)
    assert torch.equal(res.g_programmed_us, target)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_schemes_on_cuda(scheme: str) -> None:
    dev = get_device("taox_1t1r", stuck_off_fraction=0.1)
    gen = torch.Generator(device="cuda").manual_seed(0)
    params = dev.sample((256,), generator=gen)
    state = CellState.initial(dev, params)
    target = torch.full((256,), 80.0, device="cuda")
    mask = torch.ones(256, dtype=torch.bool, device="cuda")
    res = get_scheme(scheme)(state, target, mask, dev, params, generator=gen)
    assert res.state.g_us.device.type == "cuda"
    assert torch.all((res.state.g_us >= dev.g_min_us) & (res.state.g_us <= dev.g_max_us))


# --- the host-checked loops work on the cells still being written ------------------------


def test_pick_is_torch_where_bit_for_bit() -> None:
    from eapu.devices import pick

    gen = _gen(4)
    mask = torch.rand(1000, generator=gen) < 0.5
    for a, b in (
        (torch.randn(1000, generator=gen), torch.randn(1000, generator=gen)),
        (torch.randn(1000, generator=gen).double(), torch.full((1000,), 3.0e38).double()),
        (torch.randint(-5, 130, (1000,), generator=gen), torch.randint(-1, 2, (1000,))),
        (torch.rand(1000, generator=gen) < 0.3, torch.rand(1000, generator=gen) < 0.6),
    ):
        assert torch.equal(pick(mask, a, b), torch.where(mask, a, b))


@pytest.mark.parametrize("min_gone", [1, 4096])
def test_working_set_gives_every_cell_its_final_values(
    min_gone: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A toy loop (count each cell down to zero, one per round): gathered on the host path,
    masked on the sync-free path, the same values for every cell, those that left early too
    (cells leave in groups of at least ``min_gone``, or not at all)."""
    from dataclasses import dataclass

    import eapu.programming.core as core
    from eapu.programming import WorkingSet
    from eapu.runtime import force_sync_free

    monkeypatch.setattr(core, "_MIN_GONE", min_gone)

    @dataclass
    class Cells:
        left: torch.Tensor
        rounds: torch.Tensor
        active: torch.Tensor

    def run() -> Cells:
        left = torch.randint(0, 40, (500,), generator=_gen(5))
        cells = left > 0
        cells[::7] = False  # not in the loop at all: untouched
        loop = WorkingSet(Cells(left.clone(), torch.zeros_like(left), cells.clone()), cells)
        for rnd in range(100):
            c = loop.cells
            c.left = c.left - c.active.long()
            c.rounds = c.rounds + c.active.long()
            c.active = c.active & (c.left > 0)
            if loop.done(rnd):
                break
        return loop.result()

    host = run()
    with force_sync_free():
        masked = run()
    assert torch.equal(host.left, masked.left) and torch.equal(host.rounds, masked.rounds)
    start = torch.randint(0, 40, (500,), generator=_gen(5))
    skipped = torch.zeros(500, dtype=torch.bool)
    skipped[::7] = True
    assert torch.equal(host.left[skipped], start[skipped])
    assert torch.all(host.left[~skipped] == 0)


def _outcomes(scheme: str, known_gate: bool, seed: int) -> dict[str, torch.Tensor]:
    """Pulses, reads, failures and write errors of ``scheme`` on 20 000 cells of the paper's
    cell (1 % stuck): a load of fresh cells, or (``known_gate``) small updates after one."""
    n = 20_000
    dev = get_device("taox_1t1r", stuck_off_fraction=0.01)
    params = dev.sample((n,), generator=_gen(10))
    state = CellState.initial(dev, params)
    target = 15.0 + 140.0 * torch.rand(n, generator=_gen(11))
    mask = torch.rand(n, generator=_gen(12)) < 0.9
    fn = get_scheme(scheme)
    if known_gate:
        state = fn(state, target, mask, dev, params, generator=_gen(13)).state
        target = (state.g_us + 2.0 * torch.randn(n, generator=_gen(14))).clamp(15.0, 155.0)
    res = fn(state, target, mask, dev, params, generator=_gen(seed))
    ok = mask & params.free
    return {
        "pulses": res.pulses[mask].double(),
        "reads": res.reads[mask].double(),
        "failed": res.failed[mask].double(),
        "error": (res.g_programmed_us - target)[ok].double(),
    }


@pytest.mark.parametrize(
    ("scheme", "known_gate"),
    [
        ("memorial", False),
        ("memorial", True),
        ("write_verify", False),
        ("write_verify", True),
        ("write_verify_reset", False),
    ],
)
def test_gathered_loops_have_the_masked_loops_statistics(scheme: str, known_gate: bool) -> None:
    """The host-checked path gathers the cells still being written after each round in which
    at most half of them are left (`WorkingSet`); the sync-free path pulses every cell with
    masks until the slowest is done. The same physics: the same distribution of pulses and
    reads per write, failures and write error (different draws, so within sampling error)."""
    from eapu.runtime import force_sync_free

    host = _outcomes(scheme, known_gate, seed=20)
    with force_sync_free():
        masked = _outcomes(scheme, known_gate, seed=21)
    for key in ("pulses", "reads", "failed", "error"):
        a, b = host[key], masked[key]
        se = math.sqrt(float(a.var()) / a.numel() + float(b.var()) / b.numel())
        assert abs(float(a.mean() - b.mean())) <= 5 * se + 1e-9, key
        assert float(a.std()) == pytest.approx(float(b.std()), rel=0.06, abs=1e-9), key
    for k in range(int(host["pulses"].max()) + 1):  # the histogram of pulses per write
        pa = float((host["pulses"] == k).double().mean())
        pb = float((masked["pulses"] == k).double().mean())
        assert abs(pa - pb) <= 5 * math.sqrt(max(pa, pb, 1e-4) / 20_000) + 1e-9, k


@pytest.mark.parametrize("budget", [2, 7, 12, 30])
@pytest.mark.parametrize("known_gate", [False, True])
def test_memorial_holds_its_pulse_budget(budget: int, known_gate: bool) -> None:
    """No cell takes more than ``max_pulses`` (search and retries together), on both paths."""
    from eapu.runtime import force_sync_free

    dev, params, state, target, mask, gen = _fresh("taox_1t1r", 3000)
    mp = get_scheme("memorial")
    if known_gate:
        state = mp(state, target, mask, dev, params, generator=gen).state
        target = (state.g_us + 30.0 * torch.randn(3000, generator=gen)).clamp(15.0, 155.0)
    for path in (False, True):
        with force_sync_free() if path else contextlib.nullcontext():
            res = mp(state, target, mask, dev, params, generator=_gen(4), max_pulses=budget)
        assert int(res.pulses.max()) <= budget
        assert int(res.pulses.max()) >= budget - 1  # some cell needs them all
