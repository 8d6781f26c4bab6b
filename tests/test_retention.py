from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from eapu.nn import AnalogLinear
from eapu.retention import (
    HOUR_S,
    PcmDrift,
    RramDrift,
    apply_drift,
    decades,
    drift,
    gdc_factor,
    mean_offset,
    pcm_drift,
)
from eapu.tiles import Crossbar

MODELS = [RramDrift(), PcmDrift()]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _programmed(n: int = 4000, seed: int = 1) -> torch.Tensor:
    """4000 cells programmed across the taox window (5-165 µS), as in Supp. Fig. 28."""
    return 20.0 + 130.0 * torch.rand(n, generator=_gen(seed), dtype=torch.float64)


@pytest.mark.parametrize("model", MODELS, ids=["rram", "pcm"])
def test_no_drift_at_t0(model) -> None:
    g0 = _programmed()
    for t in (0.0, model.t0_s / 2, model.t0_s):
        assert torch.equal(drift(g0, t, model, generator=_gen()), g0)


@pytest.mark.parametrize("model", MODELS, ids=["rram", "pcm"])
def test_drift_is_seeded(model) -> None:
    g0 = _programmed()
    a = drift(g0, 10 * HOUR_S, model, generator=_gen(5))
    b = drift(g0, 10 * HOUR_S, model, generator=_gen(5))
    c = drift(g0, 10 * HOUR_S, model, generator=_gen(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_rram_mean_shift_removed_by_offset() -> None:
    model = RramDrift()
    g0 = _programmed()
    gt = drift(g0, 60 * HOUR_S, model, generator=_gen(2))
    d = decades(60 * HOUR_S, model.t0_s)
    assert (gt - g0).mean().item() == pytest.approx(model.shift_per_decade_us * d, abs=0.05)
    assert (gt - g0).std().item() == pytest.approx(model.spread_per_decade_us * d, rel=0.05)
    ref = torch.arange(0, 4000, 40)  # a calibration subset (a reference column)
    comp = gt + mean_offset(g0[ref], gt[ref])
    assert comp.mean().item() == pytest.approx(g0.mean().item(), abs=0.15)
    assert comp.std().item() == pytest.approx(gt.std().item(), rel=1e-9)  # shape is kept
    assert abs(comp.mean() - g0.mean()) < 0.1 * abs(gt.mean() - g0.mean())


def test_pcm_power_law_and_gdc() -> None:
    model = PcmDrift()
    g_max_us = 25.0
    w = torch.randn(32, 64, generator=_gen(3), dtype=torch.float64) * 0.1
    w = w / w.abs().max()
    g_plus, g_minus = w.clamp(min=0) * g_max_us, (-w).clamp(min=0) * g_max_us
    t = 24 * HOUR_S
    gen = _gen(4)
    w_t = (
        pcm_drift(g_plus, t, model, generator=gen) - pcm_drift(g_minus, t, model, generator=gen)
    ) / g_max_us
    x = torch.rand(256, 64, generator=_gen(5), dtype=torch.float64)
    y0, yt = x @ w.t(), x @ w_t.t()
    ratio = yt.abs().mean() / y0.abs().mean()
    expected = (t / model.t0_s) ** (-model.nu_mean)
    assert ratio.item() == pytest.approx(expected, rel=0.05)  # ~0.66 after a day
    alpha = gdc_factor(w, w_t)  # calibration read on all-ones input
    restored = (alpha * yt).abs().mean() / y0.abs().mean()
    assert restored.item() == pytest.approx(1.0, abs=0.03)


def test_bad_parameters_named() -> None:
    with pytest.raises(ValueError, match=r"RramDrift\.t0_s: 0"):
        RramDrift(t0_s=0)
    with pytest.raises(ValueError, match=r"PcmDrift\.nu_sd: -0\.1"):
        PcmDrift(nu_sd=-0.1)
    with pytest.raises(ValueError, match="t_s"):
        drift(_programmed(), -1.0, RramDrift(), generator=_gen())


def _crossbar() -> tuple[Crossbar, nn.Module]:
    xb = Crossbar("taox_1t1r", "write_verify", sd_us=2.0, seed=0)
    net = nn.Sequential(
        AnalogLinear.from_digital(nn.Linear(24, 10), xb, name="fc1"),
        nn.ReLU(),
        AnalogLinear.from_digital(nn.Linear(10, 5), xb, name="fc2"),
    )
    return xb, net


def test_crossbar_drift_restores_and_syncs() -> None:
    xb, net = _crossbar()
    g0 = [t.state.g_us.clone() for t in xb.tiles]
    ref0 = xb.ref_g_us.clone()
    w0 = net[0].weight.detach().clone()
    with apply_drift(xb, 60 * HOUR_S, RramDrift(), generator=_gen(), network=net):
        assert not torch.equal(xb.tiles[0].state.g_us, g0[0])
        assert not torch.equal(xb.ref_g_us, ref0)
        assert torch.allclose(net[0].weight, xb.tiles[0].weight().to(net[0].weight))
    assert all(torch.equal(t.state.g_us, g) for t, g in zip(xb.tiles, g0, strict=True))
    assert torch.equal(xb.ref_g_us, ref0) and torch.equal(net[0].weight, w0)


def test_crossbar_reference_column_cancels_mean_shift() -> None:
    """The paper's RRAM result: with a drifting reference column the weights keep their
    mean without compensation; the offset compensation restores the conductances' mean."""
    xb, _ = _crossbar()
    tile = xb.tiles[0]
    w0, g0 = tile.weight().clone(), tile.state.g_us.clone()
    model = RramDrift()
    shift = model.shift_per_decade_us * decades(60 * HOUR_S, model.t0_s)
    with apply_drift(xb, 60 * HOUR_S, model, generator=_gen(1)):
        assert (tile.state.g_us - g0).mean().item() == pytest.approx(shift, abs=0.3)
        assert abs((tile.weight() - w0).mean().item()) < 0.1 * abs(shift) * xb.rwg_per_us
    with apply_drift(xb, 60 * HOUR_S, model, generator=_gen(1), compensation="mean_offset") as h:
        assert h.offset_us == pytest.approx(-shift, abs=0.3)
        assert abs((tile.state.g_us - g0).mean().item()) < 0.3


def test_crossbar_gdc_restores_scale() -> None:
    xb, _ = _crossbar()
    model = PcmDrift(nu_mean=0.1, nu_sd=0.0)  # a pure scale of every conductance
    ones = torch.ones(24, dtype=torch.float64)
    tile = xb.tiles[0]
    y0 = (tile.weight().double() @ ones).abs().mean()
    with apply_drift(xb, 60 * HOUR_S, model, generator=_gen()):
        assert (tile.weight().double() @ ones).abs().mean() < 0.5 * y0
    with apply_drift(xb, 60 * HOUR_S, model, generator=_gen(), compensation="gdc") as h:
        expected = (60 * HOUR_S / model.t0_s) ** model.nu_mean
        assert h.gdc_factors["fc1"] == pytest.approx(expected, rel=1e-4)
        y = (tile.weight().double() @ ones).abs().mean()
        assert y.item() == pytest.approx(y0.item(), rel=1e-4)
    with pytest.raises(ValueError, match="compensation"):
        apply_drift(xb, 1.0, model, generator=_gen(), compensation="magic")
    assert math.isfinite(float(tile.weight().sum()))
