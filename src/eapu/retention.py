"""Retention: drift of programmed conductances over time, and its compensation.

Two models, as pure functions of tensors with an explicit ``torch.Generator``:

- RRAM (`RramDrift`): Liu et al. (2025, Supplementary Fig. 28) measured 4000 programmed
  1T1R cells and saw the distribution move as a whole (a mean shift) while keeping its
  shape, so that adding a mean offset restores it. Model:
  ``g(t) = g0 + shift_per_decade_us·d + spread_per_decade_us·d·z``, ``d = log10(t/t0)``,
  z ~ N(0, 1) per cell.
- PCM (`PcmDrift`): the power law ``g(t) = g0·(t/t0)^(-ν)`` with a per-cell
  ``ν = |N(nu_mean, nu_sd)|`` (aihwkit's PCMLikeNoiseModel: t0 = 20 s, ν ≈ 0.05 with a
  spread of 0.008-0.045; Nandakumar et al., ICECS 2019).

Times count from the end of programming; for t <= t0 the conductances are unchanged.
Drawing at several times with the same seed gives one consistent trajectory per cell
(the same z or ν at every time).

Compensation: `mean_offset` (RRAM: add back the mean shift measured on calibration cells,
by default the reference column) and `gdc_factor` (PCM: global drift compensation, Joshi
et al., Nat. Commun. 11, 2473 (2020); aihwkit's GlobalDriftCompensation: outputs are scaled
by the ratio of a calibration read's mean |output| at t0 to that at t).

`apply_drift` applies a model to every tile of an `eapu.tiles.Crossbar` (and, if given, to
the weights of the network that reads them) and returns a handle that restores them:

>>> with apply_drift(crossbar, 3600.0, RramDrift(), generator=gen) as h:  # doctest: +SKIP
...     accuracy = evaluate(model)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from . import validate
from .devices import PCM_DRIFT_NU, Device

__all__ = [
    "COMPENSATIONS",
    "HOUR_S",
    "DriftHandle",
    "PcmDrift",
    "RramDrift",
    "apply_drift",
    "decades",
    "drift",
    "gdc_factor",
    "gdc_readout",
    "mean_offset",
    "pcm_drift",
    "pcm_nu",
    "rram_drift",
]

#: Compensations `apply_drift` knows.
COMPENSATIONS = ("none", "mean_offset", "gdc")

HOUR_S = 3600.0
"""Seconds per hour, for `apply_drift(..., 60 * HOUR_S, ...)`."""


@dataclass(frozen=True, kw_only=True)
class RramDrift:
    """Log-time mean shift and spread of RRAM conductances (all in µS per decade of t/t0).

    Defaults are an estimate fitted by eye to the paper's description (Supplementary
    Fig. 28: a pure mean shift over hours, shape kept), not to its data: over 60 h
    (5.3 decades after t0 = 1 s) the mean falls by ~2.7 µS and the spread grows by
    ~1.3 µS, of the order of the cells' relaxation SD (~2 µS).
    """

    t0_s: float = 1.0
    """Time after programming at which the conductances are the programmed ones (s)."""
    shift_per_decade_us: float = -0.5
    """Mean conductance change per decade of t/t0 (µS; negative = decay)."""
    spread_per_decade_us: float = 0.25
    """Growth of the per-cell SD per decade of t/t0 (µS)."""

    def __post_init__(self) -> None:
        validate.number("RramDrift.t0_s", self.t0_s, low=0.0, low_open=True)
        validate.number("RramDrift.shift_per_decade_us", self.shift_per_decade_us)
        validate.number("RramDrift.spread_per_decade_us", self.spread_per_decade_us, low=0.0)


@dataclass(frozen=True, kw_only=True)
class PcmDrift:
    """Power-law PCM drift with a per-cell exponent (aihwkit PCMLikeNoiseModel defaults).

    The mean exponent has one source, the device (`eapu.devices.Device.drift_nu`):
    `PcmDrift.for_device` reads it, and the default is the `pcm` preset's
    (`eapu.devices.PCM_DRIFT_NU`).
    """

    t0_s: float = 20.0
    """First read after programming, the reference time of the power law (s; aihwkit 20 s)."""
    nu_mean: float = PCM_DRIFT_NU
    """Mean drift exponent (aihwkit: 0.049-0.1, 0.049 at high conductance)."""
    nu_sd: float = 0.02
    """Device-to-device SD of the exponent (aihwkit: 0.008-0.045 by conductance)."""

    def __post_init__(self) -> None:
        validate.number("PcmDrift.t0_s", self.t0_s, low=0.0, low_open=True)
        validate.number("PcmDrift.nu_mean", self.nu_mean, low=0.0)
        validate.number("PcmDrift.nu_sd", self.nu_sd, low=0.0)

    @classmethod
    def for_device(cls, device: Device, **overrides: float) -> PcmDrift:
        """The drift of ``device``: its ``drift_nu`` as the mean exponent (others default)."""
        return cls(**{"nu_mean": device.drift_nu, **overrides})


DriftModel = RramDrift | PcmDrift


def decades(t_s: float, t0_s: float) -> float:
    """``log10(t/t0)`` for t > t0, else 0 (no drift before the first read)."""
    validate.number("t_s", t_s, low=0.0)
    validate.number("t0_s", t0_s, low=0.0, low_open=True)
    return math.log10(t_s / t0_s) if t_s > t0_s else 0.0


def _randn(g: Tensor, generator: torch.Generator) -> Tensor:
    return torch.randn(g.shape, generator=generator, device=g.device, dtype=g.dtype)


def rram_drift(g_us: Tensor, t_s: float, model: RramDrift, *, generator: torch.Generator) -> Tensor:
    """Conductances at ``t_s`` after programming (µS), not clamped to a window."""
    d = decades(t_s, model.t0_s)
    z = _randn(g_us, generator)
    return g_us + model.shift_per_decade_us * d + model.spread_per_decade_us * d * z


def pcm_nu(g_us: Tensor, model: PcmDrift, *, generator: torch.Generator) -> Tensor:
    """Per-cell drift exponents ``|N(nu_mean, nu_sd)|``, shaped like ``g_us``."""
    return (model.nu_mean + model.nu_sd * _randn(g_us, generator)).abs()


def pcm_drift(
    g_us: Tensor,
    t_s: float,
    model: PcmDrift,
    *,
    generator: torch.Generator,
    nu: Tensor | None = None,
) -> Tensor:
    """Conductances at ``t_s`` after programming: ``g0·(t/t0)^(-ν)`` (µS).

    ``nu`` (per cell) is drawn with `pcm_nu` unless given.
    """
    validate.number("t_s", t_s, low=0.0)
    nu = pcm_nu(g_us, model, generator=generator) if nu is None else nu
    if nu.shape != g_us.shape:
        raise ValueError(f"nu has shape {tuple(nu.shape)}, g_us has {tuple(g_us.shape)}")
    ratio = max(t_s, model.t0_s) / model.t0_s
    return g_us * torch.pow(torch.as_tensor(ratio, dtype=g_us.dtype, device=g_us.device), -nu)


def drift(g_us: Tensor, t_s: float, model: DriftModel, *, generator: torch.Generator) -> Tensor:
    """Apply ``model`` (`RramDrift` or `PcmDrift`) at ``t_s`` seconds after programming."""
    if isinstance(model, RramDrift):
        return rram_drift(g_us, t_s, model, generator=generator)
    if isinstance(model, PcmDrift):
        return pcm_drift(g_us, t_s, model, generator=generator)
    raise ValueError(f"Invalid model: {model!r}; allowed: RramDrift or PcmDrift")


# --------------------------------------------------------------------------------------
# compensation
# --------------------------------------------------------------------------------------


def mean_offset(g_then_us: Tensor, g_now_us: Tensor) -> float:
    """The offset (µS) that, added to every cell, restores the calibration cells' mean."""
    if g_then_us.numel() == 0 or g_then_us.shape != g_now_us.shape:
        raise ValueError(
            f"calibration tensors must be non-empty and of one shape, got "
            f"{tuple(g_then_us.shape)} and {tuple(g_now_us.shape)}"
        )
    return float(g_then_us.double().mean() - g_now_us.double().mean())


def gdc_readout(w: Tensor, x_cal: Tensor | None = None) -> Tensor:
    """Mean |output| of the matrix ``w`` (outputs × inputs) on the calibration input
    ``x_cal`` (a vector or a batch of inputs; default all ones)."""
    if w.dim() != 2:
        raise ValueError(f"w must be a matrix (outputs × inputs), got shape {tuple(w.shape)}")
    x = torch.ones(w.shape[1], dtype=w.dtype, device=w.device) if x_cal is None else x_cal
    return (x.to(w) @ w.t()).abs().mean()


def gdc_factor(w_t0: Tensor, w_t: Tensor, x_cal: Tensor | None = None) -> float:
    """Global drift compensation: the factor that scales the outputs of ``w_t`` back to the
    mean |output| of ``w_t0`` on the same calibration input."""
    now = float(gdc_readout(w_t, x_cal))
    if now == 0.0:
        raise ValueError("the drifted calibration read is zero; GDC is undefined")
    return float(gdc_readout(w_t0, x_cal)) / now


# --------------------------------------------------------------------------------------
# crossbars
# --------------------------------------------------------------------------------------


def _matrix(weight: Tensor, transposed: bool) -> Tensor:
    """Weight tensor as outputs × inputs."""
    if transposed:  # ConvTranspose: (in, out, kh, kw)
        return weight.reshape(weight.shape[0], -1).t()
    return weight.reshape(weight.shape[0], -1)


class DriftHandle:
    """Undo of `apply_drift`: ``restore()`` (or leaving the ``with`` block) puts back the
    conductances and weights saved before the drift."""

    def __init__(
        self,
        crossbar: Any,
        tiles: list[Any],
        saved_g: list[Tensor],
        ref: Tensor,
        params: list[tuple[nn.Parameter, Tensor]],
        factors: dict[str, float],
        offset_us: float,
    ) -> None:
        self.crossbar = crossbar
        self._tiles, self._saved_g, self._ref, self._params = tiles, saved_g, ref, params
        self.gdc_factors = factors
        """Per tile name, the GDC factor applied (empty unless ``compensation="gdc"``)."""
        self.offset_us = offset_us
        """The mean offset added to every cell (0 unless ``compensation="mean_offset"``)."""
        self.restored = False

    def restore(self) -> None:
        if self.restored:
            return
        for tile, g in zip(self._tiles, self._saved_g, strict=True):
            tile.set_conductances(g)
        self.crossbar.set_reference_conductances(self._ref)
        for p, w in self._params:
            p.eapu_tile.publish(p, w)  # type: ignore[attr-defined]
        self.restored = True

    def __enter__(self) -> DriftHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


def apply_drift(
    crossbar: Any,
    t_s: float,
    model: DriftModel,
    *,
    generator: torch.Generator,
    compensation: str = "none",
    network: nn.Module | None = None,
    x_cal: dict[str, Tensor] | None = None,
) -> DriftHandle:
    """Drift every cell of ``crossbar`` (tiles and reference column) to ``t_s`` seconds.

    Args:
        crossbar: an `eapu.tiles.Crossbar` (anything with ``tiles`` whose cells can be read
            and set, `eapu.seam.AnalogTile` plus ``set_conductances``, and a reference column
            read by ``reference_conductances`` and set by ``set_reference_conductances``).
        t_s: time since programming (s).
        model: `RramDrift` or `PcmDrift`.
        generator: source of the per-cell draws (use the same seed at every time for one
            trajectory).
        compensation: ``"none"``; ``"mean_offset"`` adds back the mean shift of the
            reference cells (of all cells without a reference column); ``"gdc"`` scales
            each tile's weight by its GDC factor (on an all-ones calibration input unless
            ``x_cal[tile.name]`` is given), done on the conductances as
            ``g_ref + α·(g − g_ref)`` so that it equals scaling the tile's outputs.
        network: if given, its parameters backed by these tiles (``p.eapu_tile``) get the
            drifted weights too, and are restored with the conductances.

    Returns:
        A `DriftHandle`; use it as a context manager or call ``restore()``.
    """
    validate.choice("compensation", compensation, COMPENSATIONS)
    validate.number("t_s", t_s, low=0.0)
    tiles = list(crossbar.tiles)
    saved_g = [t.conductances().clone() for t in tiles]
    saved_ref = crossbar.reference_conductances().clone()
    w0 = [t.weight() for t in tiles] if compensation == "gdc" else []
    new_g = [drift(g, t_s, model, generator=generator) for g in saved_g]
    new_ref = drift(saved_ref, t_s, model, generator=generator)

    offset = 0.0
    if compensation == "mean_offset":
        if saved_ref.numel():
            offset = mean_offset(saved_ref, new_ref)
        else:
            offset = mean_offset(
                torch.cat([g.reshape(-1) for g in saved_g]),
                torch.cat([g.reshape(-1) for g in new_g]),
            )
        new_g = [g + offset for g in new_g]
        new_ref = new_ref + offset

    params: list[tuple[nn.Parameter, Tensor]] = []
    if network is not None:
        mine = {id(t) for t in tiles}
        params = [
            (p, p.detach().clone())
            for p in network.parameters()
            if id(getattr(p, "eapu_tile", None)) in mine
        ]

    handle = DriftHandle(crossbar, tiles, saved_g, saved_ref, params, {}, offset)
    for tile, g in zip(tiles, new_g, strict=True):
        tile.set_conductances(g)
    crossbar.set_reference_conductances(new_ref)

    if compensation == "gdc":
        differential = getattr(crossbar, "mapping", "") == "differential" or not saved_ref.numel()
        for tile, w_then in zip(tiles, w0, strict=True):
            x = (x_cal or {}).get(tile.name)
            alpha = gdc_factor(
                _matrix(w_then, tile.transposed), _matrix(tile.weight(), tile.transposed), x
            )
            handle.gdc_factors[tile.name] = alpha
            g = tile.conductances()
            if differential:
                g = g * alpha
            else:
                ref = tile.reference_conductances().to(g.dtype)
                g = ref + alpha * (g - ref)
            tile.set_conductances(g)

    if params:
        with torch.no_grad():
            for p, _ in params:
                p.eapu_tile.publish(p)  # type: ignore[attr-defined]
    return handle
