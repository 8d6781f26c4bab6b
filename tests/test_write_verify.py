"""write_verify_reset: write-verify without memory, the scheme behind the paper's WU count."""

from __future__ import annotations

import math
import re

import pytest
import torch

from eapu.devices import get_device, initial_conductance
from eapu.programming import RESET_RAMP_STEP_SCALE, CellState, get_scheme

WVR = get_scheme("write_verify_reset")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _cells(n: int, seed: int = 0, **overrides: float) -> tuple:
    dev = get_device("taox_1t1r", **overrides)
    params = dev.sample((n,), generator=_gen(seed))
    g = dev.g_min_us + dev.span_us * torch.rand(n, generator=_gen(seed + 1))
    target = 20.0 + 120.0 * torch.rand(n, generator=_gen(seed + 2))
    state = CellState(g_us=g, gate=torch.full((n,), -1, dtype=torch.int32))
    return dev, params, state, target, torch.ones(n, dtype=torch.bool)


def test_registered_as_verified_with_the_fitted_default() -> None:
    assert WVR.verified
    assert RESET_RAMP_STEP_SCALE == 0.5


def test_memoryless_the_outcome_does_not_depend_on_the_present_state() -> None:
    dev, params, state, target, mask = _cells(500)
    other = CellState(g_us=dev.g_max_us - (state.g_us - dev.g_min_us), gate=state.gate + 5)
    a = WVR(state, target, mask, dev, params, generator=_gen(7))
    b = WVR(other, target, mask, dev, params, generator=_gen(7))
    assert torch.equal(a.state.g_us, b.state.g_us) and torch.equal(a.pulses, b.pulses)
    assert torch.equal(a.state.gate, torch.full_like(a.state.gate, -1))


def test_pulse_count_of_a_noise_free_linear_device_by_hand() -> None:
    # No spread, no noise, constant steps: RESET to 5 µS, then half steps of 1 µS up to the
    # first read at or above target - 0.5 µS (half a step): 1 + ceil(target - 0.5 - 5) pulses.
    dev = get_device(
        "taox_1t1r",
        nonlinearity_up=0.0,
        nonlinearity_down=0.0,
        c2c_sd=0.0,
        dtod_sd=0.0,
        read_noise_sd_us=0.0,
        relaxation_sd_us=0.0,
    )
    params = dev.sample((3,), generator=_gen())
    target = torch.tensor([50.5, 85.0, 140.2])
    state = CellState(g_us=torch.full((3,), 100.0), gate=torch.full((3,), -1, dtype=torch.int32))
    res = WVR(state, target, torch.ones(3, dtype=torch.bool), dev, params, generator=_gen())
    want = [1 + math.ceil(t - 0.5 - 5.0) for t in target.tolist()]
    assert res.pulses.tolist() == want
    assert res.reads.tolist() == [p + 1 for p in want]  # a read first, then one per pulse
    assert not res.failed.any()
    assert torch.allclose(res.state.g_us, 5.0 + torch.tensor(want, dtype=torch.float32) - 1)


def test_tens_of_pulses_where_incremental_write_verify_needs_one_or_two() -> None:
    dev, params, state, _target, mask = _cells(2000)
    small = (state.g_us + 0.5 * torch.randn(2000, generator=_gen(3))).clamp(10, 160)
    reset = WVR(state, small, mask, dev, params, generator=_gen(4))
    incremental = get_scheme("write_verify")(state, small, mask, dev, params, generator=_gen(4))
    assert float(incremental.pulses.float().mean()) < 3
    assert float(reset.pulses.float().mean()) > 30
    # about (target - g_reset) / (step_scale · step) + 1 pulses, soft bounds aside
    expect = 1 + (small - dev.g_reset_us) / (RESET_RAMP_STEP_SCALE * dev.step_up_us)
    ratio = float(reset.pulses.float().mean() / expect.mean())
    assert 0.7 < ratio < 1.2, ratio


def test_within_tolerance_or_failed_and_budget_held() -> None:
    dev, params, state, target, mask = _cells(1000)
    tol = dev.program_tolerance_us
    for budget in (20, 400):
        res = WVR(state, target, mask, dev, params, generator=_gen(5), max_pulses=budget)
        assert torch.equal(res.failed, (res.g_programmed_us - target).abs() > tol)
        assert int(res.pulses.max()) <= budget
    assert res.failed.float().mean() < 0.1  # read noise stops a few just outside
    # unbiased, and εcell is the tolerance plus the 2 µS relaxation
    assert abs(float((res.g_programmed_us - target).mean())) < 0.1
    err = res.state.g_us - target
    assert 1.9 < float(err.std()) < 2.4


def test_stuck_cells_spend_the_budget_and_fail() -> None:
    dev, params, state, target, mask = _cells(400, stuck_off_fraction=0.2)
    stuck = ~params.free
    g = torch.where(stuck, initial_conductance((400,), dev, params), state.g_us)
    state = CellState(g_us=g, gate=state.gate)
    target = torch.where(stuck, torch.full_like(target, 100.0), target)
    res = WVR(state, target, mask, dev, params, generator=_gen(), max_pulses=30)
    assert torch.all(res.pulses[stuck] == 30) and torch.all(res.failed[stuck])
    assert torch.equal(res.state.g_us[stuck], g[stuck])


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5, math.nan, True])
def test_bad_step_scale_raises(bad: float) -> None:
    dev, params, state, target, mask = _cells(4)
    with pytest.raises(
        ValueError,
        match=rf"Invalid step_scale: {re.escape(repr(bad))}; allowed: a finite number in \(0, 1\]",
    ):
        WVR(state, target, mask, dev, params, generator=_gen(), step_scale=bad)
