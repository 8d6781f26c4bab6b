"""Tests of eapu.devices: validation, registry, pure physics, characterisation."""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path

import pytest
import torch

from eapu.devices import (
    STUCK_FREE,
    STUCK_OFF,
    STUCK_ON,
    AihwkitDevice,
    CellParams,
    Device,
    MeasuredDevice,
    gate_curve,
    gate_set,
    gaussian,
    get_device,
    get_device_info,
    initial_conductance,
    list_devices,
    pulse,
    read,
    register_device,
    relax,
    save_device,
)
from eapu.programming import characterize

# Every preset, and the paper's cell in the measured (table) kind read from a device file.
_FILES = Path(tempfile.mkdtemp(prefix="eapu-devices-"))
save_device(MeasuredDevice.from_device(get_device("taox_1t1r")), _FILES / "taox_table.toml")
ALL_DEVICES = [*list_devices(), str(_FILES / "taox_table.toml")]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _faulty(name: str) -> Device:
    return dataclasses.replace(get_device(name), stuck_off_fraction=0.1, stuck_on_fraction=0.05)


# --- validation -----------------------------------------------------------------------

BAD_FIELDS = [
    ("g_max_us", 0.0, "Invalid g_max_us: 0.0; allowed: a finite number > g_min_us"),
    ("g_min_us", -1.0, "Invalid g_min_us: -1.0; allowed: a finite number >= 0"),
    ("g_max_us", math.nan, "Invalid g_max_us: nan; allowed: a finite number"),
    ("step_up_us", 0.0, "Invalid step_up_us: 0.0; allowed: a finite number > 0"),
    (
        "nonlinearity_down",
        1.5,
        "Invalid nonlinearity_down: 1.5; allowed: a finite number in [0, 1]",
    ),
    ("c2c_sd", -0.1, "Invalid c2c_sd: -0.1; allowed: a finite number in [0, 1]"),
    ("gate_levels", 1, f"Invalid gate_levels: 1; allowed: an integer in [2, {2**24}]"),
    ("gate_levels", 3.0, f"Invalid gate_levels: 3.0; allowed: an integer in [2, {2**24}]"),
    ("gate_levels", True, f"Invalid gate_levels: True; allowed: an integer in [2, {2**24}]"),
    ("v_gate_max_v", 0.5, "Invalid v_gate_max_v: 0.5; allowed: a finite number > v_gate_min_v"),
    ("gate_gamma", -1.0, "Invalid gate_gamma: -1.0; allowed: a finite number > 0"),
    ("g_reset_us", 500.0, "Invalid g_reset_us: 500.0; allowed: a finite number in ["),
    (
        "program_tolerance_us",
        0.0,
        "Invalid program_tolerance_us: 0.0; allowed: a finite number > 0",
    ),
    ("relaxation_sd_us", -2.0, "Invalid relaxation_sd_us: -2.0; allowed: a finite number >= 0"),
    ("read_noise_sd_us", math.inf, "Invalid read_noise_sd_us: inf; allowed: a finite number >= 0"),
    (
        "stuck_off_fraction",
        1.2,
        "Invalid stuck_off_fraction: 1.2; allowed: a finite number in [0, 1]",
    ),
    ("drift_nu", -0.05, "Invalid drift_nu: -0.05; allowed: a finite number >= 0"),
    ("drift_nu", True, "Invalid drift_nu: True; allowed: a finite number >= 0"),
    ("name", "", "Invalid name: ''; allowed: a non-empty string"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_FIELDS)
def test_bad_device_parameters_raise_with_value(field: str, value: object, message: str) -> None:
    base = get_device("taox_1t1r")
    with pytest.raises(ValueError) as info:
        dataclasses.replace(base, **{field: value})
    assert message in str(info.value)
    assert repr(value) in str(info.value) or str(value) in str(info.value)


def test_stuck_fractions_may_not_exceed_one() -> None:
    with pytest.raises(
        ValueError,
        match=r"Invalid stuck_on_fraction: 0\.5; allowed: at most 1 - stuck_off_fraction \(0\.7\)",
    ):
        get_device("ideal", stuck_off_fraction=0.7, stuck_on_fraction=0.5)


def test_device_is_frozen_and_replace_makes_variants() -> None:
    dev = get_device("taox_1t1r")
    with pytest.raises(dataclasses.FrozenInstanceError):
        dev.g_max_us = 1.0  # type: ignore[misc]
    var = dataclasses.replace(dev, relaxation_sd_us=3.0)
    assert var.relaxation_sd_us == 3.0 and dev.relaxation_sd_us == 2.0


# --- registry -------------------------------------------------------------------------


def test_registry_lists_presets_and_rejects_unknown() -> None:
    assert {"taox_1t1r", "ideal", "gaussian", "neurram", "pcm"} <= set(ALL_DEVICES)
    assert list_devices("*1t1r") == ["taox_1t1r"]
    with pytest.raises(ValueError, match=r"unknown device 'nope'; available: .*taox_1t1r"):
        get_device("nope")
    info = get_device_info("taox_1t1r")
    assert info.source and info.description


def test_factory_kwargs_and_duplicate_registration() -> None:
    assert get_device("gaussian", sd_us=3.5).relaxation_sd_us == 3.5
    assert get_device("taox_1t1r", relaxation_sd_us=1.0).relaxation_sd_us == 1.0
    with pytest.raises(ValueError, match="already registered"):
        register_device(name="ideal")(lambda: get_device("ideal"))


@pytest.mark.parametrize("name", list_devices())
def test_presets_are_valid_and_named(name: str) -> None:
    dev = get_device(name)
    assert dev.name == name
    assert dev.g_min_us <= dev.g_reset_us < dev.g_max_us


# --- cell parameters ------------------------------------------------------------------


def test_sample_is_reproducible_and_saveable() -> None:
    dev = _faulty("taox_1t1r")
    a = dev.sample((64, 8), generator=_gen(3))
    b = dev.sample((64, 8), generator=_gen(3))
    c = dev.sample((64, 8), generator=_gen(4))
    for f in CellParams.FIELDS:
        assert torch.equal(getattr(a, f), getattr(b, f))
    assert not torch.equal(a.gate_v_th_v, c.gate_v_th_v)
    back = CellParams.from_state_dict(a.state_dict())
    for f in CellParams.FIELDS:
        assert torch.equal(getattr(a, f), getattr(back, f))
    assert a.stuck.dtype == torch.int8
    with pytest.raises(ValueError, match="missing CellParams fields"):
        CellParams.from_state_dict({"stuck": a.stuck})


def test_cat_puts_the_cells_of_selections_back_in_order() -> None:
    a = _faulty("taox_1t1r").sample((6, 5), generator=_gen(2))
    whole, parts = a.state_dict(), CellParams.cat([a.select(slice(0, 7)), a.select(slice(7, 30))])
    assert parts.shape == (30,)
    for f, t in parts.state_dict().items():
        assert torch.equal(t, whole[f].reshape(-1))
    with pytest.raises(ValueError, match="at least one part"):
        CellParams.cat([])


def test_stuck_fractions_are_drawn_at_the_rate() -> None:
    dev = get_device("taox_1t1r", stuck_off_fraction=0.1, stuck_on_fraction=0.02)
    p = dev.sample((100_000,), generator=_gen())
    assert abs(float((p.stuck == STUCK_OFF).float().mean()) - 0.1) < 0.005
    assert abs(float((p.stuck == STUCK_ON).float().mean()) - 0.02) < 0.003
    g = initial_conductance(p.shape, dev, p)
    assert torch.all(g[p.stuck == STUCK_OFF] == dev.g_min_us)
    assert torch.all(g[p.stuck == STUCK_ON] == dev.g_max_us)
    assert torch.all(g[p.stuck == STUCK_FREE] == dev.g_reset_us)


# --- pure physics ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_DEVICES)
def test_pulse_invariants(name: str) -> None:
    dev = _faulty(name)
    gen = _gen(1)
    p = dev.sample((32, 32), generator=gen)
    g = dev.g_min_us + dev.span_us * torch.rand(p.shape, generator=gen)
    g = torch.where(p.free, g, initial_conductance(p.shape, dev, p))
    g_copy = g.clone()
    pol = torch.randint(-1, 2, p.shape, generator=gen)
    out = pulse(g, pol, dev, p, generator=gen)
    assert torch.equal(g, g_copy), "pulse mutated its input"
    assert torch.all((out >= dev.g_min_us) & (out <= dev.g_max_us))
    assert torch.equal(out[pol == 0], g[pol == 0])
    assert torch.equal(out[~p.free], g[~p.free])
    if isinstance(dev, AihwkitDevice):
        return  # aihwkit's cycle-to-cycle noise is not clipped: a step may go the wrong way
    free = p.free
    assert torch.all(out[(pol > 0) & free] >= g[(pol > 0) & free])
    assert torch.all(out[(pol < 0) & free] <= g[(pol < 0) & free])


def test_soft_bound_shrinks_set_step_near_the_top() -> None:
    dev = get_device("taox_1t1r", c2c_sd=0.0, dtod_sd=0.0)
    p = dev.sample((2,), generator=_gen())
    g = torch.tensor([20.0, 150.0])
    out = pulse(g, torch.ones(2), dev, p, generator=_gen())
    step = out - g
    assert step[0] > step[1] > 0
    linear = get_device("taox_1t1r", c2c_sd=0.0, dtod_sd=0.0, nonlinearity_up=0.0)
    step_lin = pulse(g, torch.ones(2), linear, p, generator=_gen()) - g
    assert torch.allclose(step_lin, torch.full((2,), linear.step_up_us))


@pytest.mark.parametrize("name", ALL_DEVICES)
def test_gate_curve_is_monotone_per_cell_and_gate_set_stays_in_window(name: str) -> None:
    dev = _faulty(name)
    gen = _gen(2)
    n_levels = min(dev.gate_levels, 256)
    level = torch.linspace(0, dev.gate_levels - 1, n_levels).round().long()[:, None].expand(-1, 50)
    row = dev.sample((50,), generator=gen)  # the same 50 cells at every level (broadcast)
    curve = gate_curve(level, dev, row)
    assert torch.all(curve[1:] >= curve[:-1])
    assert torch.all(gate_curve(level[:, 0], dev)[1:] >= gate_curve(level[:, 0], dev)[:-1])
    p = dev.sample((n_levels, 50), generator=gen)
    landed = gate_set(level, dev, p, generator=gen)
    assert torch.all((landed >= dev.g_min_us) & (landed <= dev.g_max_us))
    assert torch.all(landed[p.stuck == STUCK_OFF] == dev.g_min_us)
    assert torch.all(landed[p.stuck == STUCK_ON] == dev.g_max_us)


def test_gate_set_rejects_out_of_range_levels() -> None:
    dev = get_device("taox_1t1r")
    p = dev.sample((3,), generator=_gen())
    with pytest.raises(ValueError, match=r"level must be in \[0, 127\].*\[0, 128\]"):
        gate_set(torch.tensor([0, 5, 128]), dev, p, generator=_gen())
    with pytest.raises(ValueError, match="integer tensor"):
        gate_set(torch.tensor([0.0, 1.0, 2.0]), dev, p, generator=_gen())


def test_gate_c2c_noise_has_its_sd() -> None:
    dev = get_device("taox_1t1r", gate_dtod_sd_v=0.0, gate_gain_dtod_sd=0.0)
    p = dev.sample((20_000,), generator=_gen())
    level = torch.full((20_000,), 90)
    landed = gate_set(level, dev, p, generator=_gen(5))
    assert abs(float(landed.std()) - dev.gate_c2c_sd_us) < 0.05 * dev.gate_c2c_sd_us


def test_relax_and_read() -> None:
    dev = _faulty("taox_1t1r")
    p = dev.sample((50_000,), generator=_gen())
    g = torch.where(p.free, torch.full(p.shape, 80.0), initial_conductance(p.shape, dev, p))
    mask = torch.arange(50_000) % 2 == 0
    out = relax(g, dev, p, generator=_gen(1), mask=mask)
    assert torch.equal(out[~mask], g[~mask])
    assert torch.equal(out[~p.free], g[~p.free])
    moved = (out - g)[mask & p.free]
    assert abs(float(moved.std()) - dev.relaxation_sd_us) < 0.05 * dev.relaxation_sd_us
    r = read(g, dev, generator=_gen(2))
    assert abs(float((r - g).std()) - dev.read_noise_sd_us) < 0.05 * dev.read_noise_sd_us
    assert torch.equal(g, torch.where(p.free, 80.0, g))  # untouched


def test_relax_same_key_reference() -> None:
    dev = gaussian(2.0)
    p = dev.sample((1000,), generator=_gen())
    g = torch.full((1000,), 500.0)
    out = relax(g, dev, p, generator=_gen(9))
    expected = g + 2.0 * torch.randn(1000, generator=_gen(9))
    assert torch.equal(out, expected)


# --- characterisation -----------------------------------------------------------------


@pytest.mark.parametrize("sd", [1.0, 3.0])
def test_characterize_gaussian_returns_its_sd(sd: float) -> None:
    c = characterize(gaussian(sd))
    assert abs(c.sd_us - sd) < 0.05 * sd
    assert abs(c.mean_us) < 0.1 * sd
    assert c.pulses_per_write == 1.0 and c.fail_rate == 0.0
    assert len(c.g_centers_us) == len(c.sd_by_g_us) == 8


def test_characterize_taox_write_verify_lands_in_paper_range() -> None:
    c = characterize(get_device("taox_1t1r"), "write_verify")
    assert 2.0 <= c.sd_us <= 3.0
    assert 10 <= c.pulses_per_write <= 100  # tens of pulses per write
    assert c.fail_rate < 0.1


def test_characterize_excludes_stuck_cells_and_validates() -> None:
    dev = get_device("gaussian", sd_us=2.0, stuck_off_fraction=0.1)
    c = characterize(dev, n_cells=8192)
    assert abs(c.stuck_fraction - 0.1) < 0.02
    assert abs(c.sd_us - 2.0) < 0.1
    with pytest.raises(ValueError, match="Invalid n_cells: 1; allowed: an integer >= 2"):
        characterize(dev, n_cells=1)
    with pytest.raises(ValueError, match="unknown scheme 'bogus'"):
        characterize(dev, "bogus")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_physics_on_cuda() -> None:
    dev = _faulty("taox_1t1r")
    gen = torch.Generator(device="cuda").manual_seed(0)
    p = dev.sample((64,), generator=gen)
    assert p.stuck.device.type == "cuda"
    g = initial_conductance(p.shape, dev, p)
    out = pulse(g, torch.ones(64, device="cuda"), dev, p, generator=gen)
    out = relax(out, dev, p, generator=gen)
    landed = gate_set(torch.full((64,), 60, device="cuda"), dev, p, generator=gen)
    assert out.device.type == landed.device.type == "cuda"


# --- construction from the physics a user knows -----------------------------------------


def test_device_from_a_window_alone_derives_reset_and_gate_top() -> None:
    dev = Device(name="x", g_min_us=5, g_max_us=165)
    assert dev.g_reset_us == 5.0 and dev.gate_g_top_us == 165.0
    gen = _gen()
    params = dev.sample((16,), generator=gen)
    assert bool((initial_conductance((16,), dev, params) == 5.0).all())
    top = gate_curve(torch.tensor([dev.gate_levels - 1]), dev)
    assert float(top) == pytest.approx(165.0)
    # a stated value still wins and is validated
    assert Device(name="x", g_min_us=5, g_max_us=165, g_reset_us=20).g_reset_us == 20
    with pytest.raises(
        ValueError, match=r"Invalid g_reset_us: 2; allowed: a finite number in \[5, 165\]"
    ):
        Device(name="x", g_min_us=5, g_max_us=165, g_reset_us=2)


def test_drift_exponent_has_one_source() -> None:
    from eapu.devices import PCM_DRIFT_NU
    from eapu.retention import PcmDrift

    assert get_device("pcm").drift_nu == PCM_DRIFT_NU == PcmDrift().nu_mean
    dev = dataclasses.replace(get_device("pcm"), drift_nu=0.08)
    assert PcmDrift.for_device(dev).nu_mean == 0.08
    assert PcmDrift.for_device(dev, nu_sd=0.0).nu_sd == 0.0


# --- the measured (table) kind and device files ---------------------------------------


def test_measured_kind_reproduces_the_formula_it_tabulates() -> None:
    from eapu.programming import characterize

    taox = get_device("taox_1t1r")
    table = MeasuredDevice.from_device(taox)
    assert table.step_up_us == pytest.approx(taox.step_up_us)
    for scheme in ("write_verify", "memorial"):
        a, b = characterize(taox, scheme, n_cells=1024), characterize(table, scheme, n_cells=1024)
        assert b.sd_us == pytest.approx(a.sd_us, rel=0.02)
        assert b.pulses_per_write == pytest.approx(a.pulses_per_write, rel=0.02)


def test_measured_tables_interpolate_and_validate() -> None:
    kw = dict(name="m", g_min_us=0, g_max_us=10, reset_g_us=(0, 10), reset_step_us=(1, 1))
    kw |= dict(reset_c2c_us=(0, 0), set_g_us=(0, 10), set_c2c_us=(0, 0))
    dev = MeasuredDevice(set_step_us=(2.0, 0.0), **kw)
    p = dev.sample((3,), generator=_gen())
    g = torch.tensor([0.0, 5.0, 10.0])
    step = pulse(g, torch.ones(3), dev, p, generator=_gen()) - g
    assert torch.allclose(step, torch.tensor([2.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match=r"set_step_us\[1\] must be a finite number >= 0"):
        MeasuredDevice(set_step_us=(2.0, -1.0), **kw)
    with pytest.raises(ValueError, match="set_step_us has 3 values, set_g_us has 2"):
        MeasuredDevice(set_step_us=(2.0, 1.0, 0.0), **kw)
    with pytest.raises(ValueError, match="must be > 0 at the window centre"):
        MeasuredDevice(set_step_us=(0.0, 0.0), **kw)
    with pytest.raises(TypeError):
        MeasuredDevice(set_step_us=(2.0, 0.0), step_up_us=3.0, **kw)  # derived, not an input


def test_device_file_round_trip_and_errors(tmp_path: Path) -> None:
    for dev in (get_device("taox_1t1r"), MeasuredDevice.from_device(get_device("pcm"))):
        path = tmp_path / f"{dev.name}.toml"
        save_device(dev, path, extra={"fit": {"ramps": 3}})
        assert get_device(str(path)) == dev
        assert get_device(str(path), relaxation_sd_us=0.5).relaxation_sd_us == 0.5
    bad = tmp_path / "bad.toml"
    bad.write_text('[device]\nkind = "measured"\nname = "x"\nwindow = 3\n')
    with pytest.raises(ValueError, match=r"bad.toml.*unknown \[device\] fields \['window'\]"):
        get_device(str(bad))
    bad.write_text('[device]\nname = "x"\ng_max_us = -1.0\n')
    with pytest.raises(
        ValueError, match=r"bad.toml.*Invalid g_max_us: .*; allowed: a finite number > g_min_us"
    ):
        get_device(str(bad))
    with pytest.raises(ValueError, match="does not exist"):
        get_device(str(tmp_path / "missing.toml"))


@pytest.mark.parametrize("name", ["taox_1t1r", "neurram", "pcm", "ideal"])
@pytest.mark.parametrize("measured", [False, True])
def test_symmetry_point_is_where_set_and_reset_steps_are_equal(name: str, measured: bool) -> None:
    """On every preset and on its measured-table twin: inside the window one SET and one RESET
    step are equal there; where they never meet the point is the edge the cell drifts to (or
    the centre where the steps are equal everywhere)."""
    from eapu.devices import MeasuredDevice, symmetry_point_us

    dev = get_device(name)
    if measured:
        dev = MeasuredDevice.from_device(dev, points=65)
    params = dev.sample((4000,), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    g = symmetry_point_us(dev, params)
    one, zero = torch.ones_like(g), torch.zeros_like(g)
    up = dev.pulse_step_us(g, one, params, zero)
    down = -dev.pulse_step_us(g, -one, params, zero)
    inside = (g > dev.g_min_us + 1e-6) & (g < dev.g_max_us - 1e-6)
    assert torch.allclose(up[inside], down[inside], rtol=1e-6, atol=1e-9)
    edge_top = g >= dev.g_max_us - 1e-6
    edge_bottom = g <= dev.g_min_us + 1e-6
    assert bool((up[edge_top] >= down[edge_top]).all())  # SET stronger: drifts up
    assert bool((up[edge_bottom] <= down[edge_bottom]).all())
    if name == "ideal":  # constant, equal steps: no point, the centre by convention
        assert torch.allclose(g, torch.full_like(g, (dev.g_min_us + dev.g_max_us) / 2))


@pytest.mark.parametrize("name", ["taox_1t1r", "pcm", "ideal"])
def test_soft_bound_pulse_is_pulse(name: str) -> None:
    """Write-verify's pulse with the coefficients computed once: the same step as `pulse`
    from the same draws (up to float rounding), stuck and idle cells held."""
    from eapu.devices import SoftBound, pulse, stuck_values

    dev = get_device(name, stuck_off_fraction=0.1, stuck_on_fraction=0.05)
    gen = torch.Generator().manual_seed(3)
    params = dev.sample((4000,), generator=gen)
    g = dev.g_min_us + dev.span_us * torch.rand(4000, generator=gen)
    g = torch.where(params.free, g, stuck_values(g, dev, params))
    on = torch.rand(4000, generator=gen) < 0.7
    down = on & (torch.rand(4000, generator=gen) < 0.5)
    bound = SoftBound.of(dev, params, torch.float32)
    assert bound is not None
    a = bound.pulse(g, on, down, dev, generator=torch.Generator().manual_seed(9))
    pol = on.float() - 2 * down.float()
    b = pulse(g, pol, dev, params, generator=torch.Generator().manual_seed(9))
    assert torch.allclose(a, b, rtol=0, atol=1e-4)
    assert torch.equal(a[~on], g[~on]) and torch.equal(a[~params.free], g[~params.free])
    assert SoftBound.of(MeasuredDevice.from_device(dev), params, torch.float32) is None
