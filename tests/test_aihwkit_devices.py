"""aihwkit's device models as eapu devices (`eapu.devices.AihwkitDevice`): the per-cell draws
and the per-pulse rules of aihwkit 1.2.0 (formulas of its C++ code), the µS map, the presets."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch
from torch import nn

from eapu.devices import (
    AihwkitDevice,
    get_device,
    get_device_info,
    list_devices,
    pulse,
    symmetry_point_us,
)
from eapu.devices.aihwkit import AIHWKIT_PRESETS, WRITE_NOISE_NOT_MODELLED
from eapu.nn import convert

N = 40000


def cells(dev: AihwkitDevice, n: int = N, seed: int = 0) -> Any:
    return dev.sample((n,), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def one_pulse(dev: AihwkitDevice, params: Any, w: float, up: bool, seed: int = 1) -> torch.Tensor:
    """Δw of one pulse of every cell, set at weight w."""
    n = params.shape[0]
    g = torch.full((n,), dev.g_zero_us + w * dev.us_per_weight, dtype=torch.float64)
    pol = torch.full((n,), 1.0 if up else -1.0, dtype=torch.float64)
    g2 = pulse(g, pol, dev, params, generator=torch.Generator().manual_seed(seed))
    return (g2 - g) / dev.us_per_weight


def se(sd: float, n: int = N) -> float:
    return sd / math.sqrt(n)


# --- per-cell draws (PulsedRPUDevice::populate) --------------------------------------------
def test_reram_sb_draws_follow_aihwkits_populate() -> None:
    dev = get_device("aihwkit_reram_sb")
    p = cells(dev)
    up, down = p.step_up_scale * 0.002, p.step_down_scale * 0.002
    b_max, b_min = p.extra["bound_max_w"], p.extra["bound_min_w"]
    assert abs(float(up.mean()) - 0.002) < 4 * se(0.0006)
    assert float(up.std()) == pytest.approx(0.002 * math.hypot(0.3, 0.01), rel=0.02)
    # one gain, ± r: SD(up - down) = 2·up_down_dtod·dw_min, the correlation near 1
    assert float((up - down).std()) == pytest.approx(2 * 0.01 * 0.002, rel=0.02)
    corr = float(torch.corrcoef(torch.stack([up, down]))[0, 1])
    assert corr == pytest.approx((0.09 - 1e-4) / (0.09 + 1e-4), abs=2e-3)
    assert abs(float(b_max.mean()) - 1.25) < 4 * se(0.3)
    assert abs(float(b_min.mean()) + 0.75) < 4 * se(0.3) + 0.002  # |·| of consistency
    assert float(b_max.std()) == pytest.approx(0.3, rel=0.02)
    assert bool((b_min <= 0).all() and (b_max >= 0).all())  # enforce_consistency
    assert bool((up >= 0).all() and (down >= 0).all())
    assert torch.equal(p.extra["reference_w"], torch.zeros(N, dtype=torch.float64))


def test_idealized_cells_are_exactly_symmetric_and_log_normal_gains_have_their_mean() -> None:
    p = cells(get_device("aihwkit_idealized"))
    assert torch.equal(p.step_up_scale, p.step_down_scale)
    om = get_device("aihwkit_reram_array_om")
    q = cells(om)
    gain = q.step_up_scale  # exp(0.7829·ξ) ± 0.01·ξ'
    assert float(gain.mean()) == pytest.approx(math.exp(0.7829**2 / 2), rel=0.02)
    assert float(gain.min()) > 0


def test_corrupt_cells_are_stuck_inside_their_range() -> None:
    dev = get_device("aihwkit_gokmen_vlasov", corrupt_devices_prob=1.0, corrupt_devices_range=0.2)
    p = cells(dev, 2000)
    lo, hi = p.extra["bound_min_w"], p.extra["bound_max_w"]
    assert torch.equal(lo, hi) and float(lo.abs().max()) <= 0.2
    assert float(p.step_up_scale.abs().max()) == 0.0
    d = one_pulse(dev, p, 0.0, up=True)  # the first pulse clips it onto its value
    assert torch.allclose(d, lo, atol=1e-9)


# --- per-pulse rules --------------------------------------------------------------------
def _plain(name: str, **kw: Any) -> AihwkitDevice:
    """A preset with no device-to-device spread (nominal cells), ``kw`` replaced."""
    base = dict(dw_min_dtod=0.0, up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0)
    return get_device(name, **{**base, **kw})


def test_soft_bounds_reference_additive_noise_by_formula() -> None:
    dev = _plain("aihwkit_reram_sb")
    p = cells(dev)
    d = one_pulse(dev, p, 0.5, up=True)
    assert abs(float(d.mean()) - 0.002 * (1 - 0.5 / 1.25)) < 4 * se(3.75 * 0.002)
    assert float(d.std()) == pytest.approx(3.75 * 0.002, rel=0.02)  # does not vanish
    d = one_pulse(dev, p, 0.5, up=False)
    assert abs(float(d.mean()) + 0.002 * (1 + 0.5 / 0.75)) < 4 * se(3.75 * 0.002)
    assert bool((d > 0).any())  # additive noise: a down pulse may move up


def test_linear_step_multiplicative_noise_by_formula() -> None:
    dev = _plain("aihwkit_ecram", gamma_up_dtod=0.0, gamma_down_dtod=0.0)
    p = cells(dev)
    mu = 0.002 * (1 - 0.1153 * 0.6 / 1.1724)
    d = one_pulse(dev, p, 0.6, up=True)
    assert abs(float(d.mean()) - mu) < 4 * se(0.3 * mu)
    assert float(d.std()) == pytest.approx(0.3 * mu, rel=0.02)
    mu = 0.002 * (1 + 0.5085 * 0.6 / 0.8276)
    d = one_pulse(dev, p, 0.6, up=False)
    assert abs(float(d.mean()) + mu) < 4 * se(0.3 * mu)


def test_exp_step_by_formula_and_its_granularity() -> None:
    dev = _plain("aihwkit_reram_es", dw_min_std=0.0)
    p = cells(dev, 8)
    for w in (-0.5, 0.0, 0.7):
        z = 2 * (-0.5) * w / 2.0 - 0.5
        up = 0.00135 * max(1 + 1.18445 * math.exp(5 * z), 0)
        down = 0.00135 * (1 - 0.259359) * max(1 + 0.081404 * math.exp(-5 * z), 0)
        assert torch.allclose(one_pulse(dev, p, w, True), torch.full((8,), up, dtype=torch.float64))
        assert torch.allclose(
            one_pulse(dev, p, w, False), torch.full((8,), -down, dtype=torch.float64)
        )
    # aihwkit's granularity is the down step at w = 0 (its print: 0.00199144)
    gran = 0.00135 * (1 - 0.259359) * (1 + 0.081404 * math.exp(2.5))
    assert dev.granularity_w() == pytest.approx(gran) == pytest.approx(0.00199144, abs=1e-8)
    assert dev.step_up_us == pytest.approx(gran * 80)


def test_pcm_complex_noise_by_formula() -> None:
    dev = _plain("aihwkit_pcm")
    p = cells(dev)
    w = 0.8
    z = 2 * w / 2.0 * -1.0
    dw = 0.01 * max(1 + 27.235 * math.exp(2.5 * z), 0)
    d = one_pulse(dev, p, w, up=True)
    sd = 0.6 * (dw + 0.042 + 0.108 * w)
    assert abs(float(d.mean()) - dw) < 4 * se(sd)
    assert float(d.std()) == pytest.approx(sd, rel=0.03)


def test_constant_step_ramps_to_each_cells_bound_and_never_beyond() -> None:
    dev = get_device("aihwkit_gokmen_vlasov", dw_min_std=0.0, dw_min=0.05)
    p = cells(dev, 500)
    g = torch.full((500,), dev.g_zero_us, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):  # 200 steps of ~0.05 cross any bound of these cells
        g = pulse(g, torch.ones(500, dtype=torch.float64), dev, p, generator=gen)
    w = (g - dev.g_zero_us) / dev.us_per_weight
    assert torch.allclose(w, p.extra["bound_max_w"], atol=1e-9)
    for _ in range(400):
        g = pulse(g, -torch.ones(500, dtype=torch.float64), dev, p, generator=gen)
    w = (g - dev.g_zero_us) / dev.us_per_weight
    assert torch.allclose(w, p.extra["bound_min_w"], atol=1e-9)


def test_symmetry_points_of_soft_bounds() -> None:
    """Without reference subtraction a cell's symmetry point is (su − sd)/(su/b_max − sd/b_min);
    with it, every cell sits at its own symmetry point at w = 0 (G = g_zero_us)."""
    dev = get_device("aihwkit_reram_sb", up_down_dtod=0.05)
    p = cells(dev, 200)
    su, sd = p.step_up_scale, p.step_down_scale
    b_max, b_min = p.extra["bound_max_w"], p.extra["bound_min_w"]
    sp = (su - sd) / (su / b_max - sd / b_min)
    got = (symmetry_point_us(dev, p) - dev.g_zero_us) / dev.us_per_weight
    assert torch.allclose(got, sp, atol=1e-6)
    sub = dataclasses.replace(dev, subtract_symmetry_point=True, dw_min_std=0.0)
    q = cells(sub, 200)
    up, down = one_pulse(sub, q, 0.0, True), one_pulse(sub, q, 0.0, False)
    assert torch.allclose(up, -down, atol=1e-12)
    assert torch.allclose(q.extra["reference_w"], sp, atol=1e-12)  # the same draws


# --- the µS map, the presets --------------------------------------------------------------
def test_weight_units_map_to_microsiemens_around_g_zero() -> None:
    dev = get_device("aihwkit_reram_sb")
    # bounds ± 5 SD: w in [-0.75·3, 1.25·2.2] -> ±2.75 weight units at 80 µS each
    assert dev.envelope_w() == pytest.approx((-2.25, 2.75))
    assert (dev.g_min_us, dev.g_zero_us, dev.g_max_us) == pytest.approx((0.0, 220.0, 440.0))
    assert dev.step_up_us == dev.step_down_us == pytest.approx(0.16)  # dw_min·80
    assert dev.program_tolerance_us == pytest.approx(0.16)
    half = dataclasses.replace(dev, us_per_weight=40.0)  # the window is derived again
    assert half.g_max_us == pytest.approx(220.0) and half.step_up_us == pytest.approx(0.08)
    # on a crossbar with the device's own defaults, eapu's W is aihwkit's w
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4, bias=False))
    w0 = model[0].weight.detach().clone()
    xb = convert(model, device=dev, scheme="sign", **dev.crossbar_defaults())
    tile = model[0].tile
    assert torch.allclose(tile.weight(), w0, atol=1e-5)  # exact load (aihwkit's set_weights)
    assert torch.allclose(xb.ref_g_us, torch.full_like(xb.ref_g_us, 220.0))
    g = tile.conductances()
    assert torch.allclose((g - dev.g_zero_us) / dev.us_per_weight, w0, atol=1e-5)
    row = tile.program(torch.full_like(w0, 1e-3))  # sign: one SET pulse each
    tile.flush()  # the row is filled in when the queue runs
    assert int(row[1]) == w0.numel()
    # the extra per-cell fields travel with the crossbar's state
    sd = xb.state_dict()
    assert {"cell_bound_min_w", "cell_reference_w", "ref_slope_up"} <= set(sd)


def test_every_preset_is_registered_with_its_source() -> None:
    names = list_devices("aihwkit_*")
    assert sorted(names) == sorted(AIHWKIT_PRESETS)
    assert len(names) == 10
    for name in names:
        info = get_device_info(name)
        line, cls = AIHWKIT_PRESETS[name][:2]
        assert f"presets/devices.py:{line} {cls}" in info.source
        assert f"presets/devices.py:{line}" in info.description
        if name in WRITE_NOISE_NOT_MODELLED:
            assert "write_noise_std" in info.source and "not modelled" in info.source
        dev = get_device(name)
        assert dev.name == name and isinstance(dev, AihwkitDevice)
        lo, hi = dev.envelope_w()
        assert dev.g_min_us <= dev.g_zero_us + lo * dev.us_per_weight + 1e-9
        assert dev.g_zero_us + hi * dev.us_per_weight <= dev.g_max_us + 1e-9
        p = cells(dev, 4000)  # no drawn bound beyond the window
        assert float(p.extra["bound_max_w"].max() - p.extra["reference_w"].min()) <= hi
        assert float(p.extra["bound_min_w"].min() - p.extra["reference_w"].max()) >= lo


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"model": "pow_step"}, "model"),
        ({"dw_min": 0.0}, "dw_min"),
        ({"w_min": 0.1}, "w_min"),
        ({"w_max": -0.1}, "w_max"),
        ({"dw_min_std": -1.0}, "dw_min_std"),
        ({"slope_up_dtod": 1.0}, "slope_up_dtod"),
        ({"corrupt_devices_prob": 1.5}, "corrupt_devices_prob"),
        ({"mult_noise": 1}, "mult_noise"),
        ({"us_per_weight": 0.0}, "us_per_weight"),
    ],
)
def test_bad_parameters_raise_naming_the_argument(kw: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=rf"Invalid {name}: .*allowed"):
        get_device("aihwkit_reram_sb", **kw)


def test_a_run_places_aihwkit_devices_on_their_own_weight_unit() -> None:
    """``eapu run --device aihwkit_*``: the reference at w = 0, weights loaded exactly; any
    other device keeps the crossbar's defaults."""
    from eapu.experiments import get_method
    from eapu.experiments.build import place
    from eapu.experiments.config import RunConfig

    for device, exact in (("aihwkit_ecram", True), ("taox_1t1r", False)):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 3, bias=False))
        w0 = model[0].weight.detach().clone()
        cfg = RunConfig(task="classify", method="cttv2", device=device, rwg_per_us=1 / 80)
        cfg = cfg.resolved()
        xb = place(model, cfg, get_method("cttv2"))
        dev = xb.device_model
        if exact:
            assert isinstance(dev, AihwkitDevice) and xb.load_scheme == "gaussian"
            assert xb.g_ref_us == pytest.approx(dev.g_zero_us)
            assert torch.allclose(model[0].tile.weight(), w0, atol=1e-5)
        else:
            assert xb.load_scheme == "write_verify" and xb.g_ref_us == pytest.approx(85.0)


@pytest.mark.parametrize("name", ["aihwkit_reram_sb", "aihwkit_ecram", "aihwkit_reram_array_om"])
def test_eapu_on_a_preset_takes_one_pulses_noise_as_its_threshold_not_zero(name: str) -> None:
    # The presets' weights load exactly (a characterised SD of 0 µS): EaPU's default
    # threshold would be 0 and EaPU would be BP over the same scheme. A run on the preset
    # gets one nominal pulse's cycle-to-cycle SD instead.
    from eapu.experiments import get_method
    from eapu.experiments.build import place
    from eapu.experiments.config import RunConfig
    from eapu.optim import InSituOptimizer

    dev = get_device(name)
    assert dev.write_sd_us == pytest.approx(dev.dw_min_std * dev.dw_min * dev.us_per_weight)
    assert dev.write_sd_us > 0
    cfg = RunConfig(task="classify", method="eapu+mp", device=name).resolved()
    model = nn.Sequential(nn.Linear(6, 4))
    xb = place(model, cfg, get_method("eapu+mp"))
    assert xb.sd_us == pytest.approx(dev.write_sd_us)
    opt = InSituOptimizer(model.parameters(), torch.optim.SGD, rule="eapu", lr=0.1)
    assert opt.threshold_for(model[0].weight, opt.param_groups[0]) > 0
