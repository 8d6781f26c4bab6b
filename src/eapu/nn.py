"""Analog layers whose weights live in crossbar tiles, and `convert` for whole models.

>>> import torch
>>> from eapu.nn import convert
>>> model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
>>> xbar = convert(model, device="taox_1t1r", scheme="memorial")
>>> print(xbar.placement.cells)          # weight cells + shared reference cells
48

The weight stays a real ``nn.Parameter``: it holds the noise-free value the cells hold, and
`eapu.optim.InSituOptimizer` writes it through the tile (``weight.eapu_tile``). A forward
pass reads the cells (read noise, optional DAC / ADC quantisation); gradients flow to the
parameter as if the read were exact (straight-through).

Save ``model.state_dict()`` (each analog layer saves its tile) and ``xbar.state_dict()``
(the shared reference cells and the device's generator) together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from . import validate
from .tiles import Crossbar, Tile

__all__ = [
    "AnalogConv2d",
    "AnalogConvTranspose2d",
    "AnalogLinear",
    "convert",
    "crossbar_of",
    "to_digital",
]


def _quantize(x: Tensor, bits: int | None) -> Tensor:
    """Symmetric uniform quantisation to ``bits`` over the batch's max |x|, straight-through."""
    if bits is None:
        return x
    scale = x.detach().abs().amax().clamp_min(1e-12) / (2 ** (bits - 1) - 1)
    q = torch.round(x.detach() / scale) * scale
    return x + (q - x).detach()


class _Analog(nn.Module):
    """Mixin: a torch layer whose weight is backed by a `Tile`."""

    tile: Tile
    weight: Tensor
    dac_bits: int | None
    adc_bits: int | None
    _transposed_tile = False

    def _attach(self, tile: Tile, dac_bits: int | None, adc_bits: int | None) -> None:
        self.tile = tile
        self.dac_bits, self.adc_bits = dac_bits, adc_bits
        self.weight.eapu_tile = tile  # type: ignore[attr-defined]
        with torch.no_grad():
            self.weight.copy_(tile.weight())

    def _read_weight(self) -> Tensor:
        if self.tile.crossbar.device_model.read_noise_sd_us == 0:
            return self.weight
        delta = self.tile.read().to(self.weight) - self.tile.weight().to(self.weight)
        return self.weight + delta

    def get_extra_state(self) -> dict[str, Tensor]:
        return self.tile.state_tensors()

    def set_extra_state(self, state: dict[str, Tensor]) -> None:
        self.tile.load_state_tensors(state)

    @classmethod
    def from_digital(
        cls,
        layer: nn.Module,
        crossbar: Crossbar,
        *,
        name: str = "",
        dac_bits: int | None = None,
        adc_bits: int | None = None,
    ) -> Any:
        """An analog copy of ``layer`` whose weight is programmed onto ``crossbar``."""
        new: Any = cls.__new__(cls)
        new.__dict__.update(layer.__dict__)  # shares hyper-parameters, parameters, hooks
        new._parameters = dict(layer._parameters)
        new._buffers = dict(layer._buffers)
        new._modules = dict(layer._modules)
        new.weight = nn.Parameter(cast(Tensor, layer.weight).detach().clone())
        tile = crossbar.add_tile(
            name or cls.__name__, new.weight.detach().cpu(), transposed=cls._transposed_tile
        )
        new._attach(tile, dac_bits, adc_bits)
        return new


class AnalogLinear(_Analog, nn.Linear):
    """``nn.Linear`` on a crossbar tile."""

    def forward(self, x: Tensor) -> Tensor:
        y = F.linear(_quantize(x, self.dac_bits), self._read_weight(), None)
        y = _quantize(y, self.adc_bits)
        return y if self.bias is None else y + self.bias


class AnalogConv2d(_Analog, nn.Conv2d):
    """``nn.Conv2d`` on a crossbar tile (rows: in_channels·kh·kw)."""

    def forward(self, x: Tensor) -> Tensor:
        y = self._conv_forward(_quantize(x, self.dac_bits), self._read_weight(), None)
        y = _quantize(y, self.adc_bits)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


class AnalogConvTranspose2d(_Analog, nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` on a crossbar tile (rows: in_channels)."""

    _transposed_tile = True

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        pad = self._output_padding(
            x,
            output_size,
            list(self.stride),
            list(cast(tuple[int, ...], self.padding)),
            list(self.kernel_size),
            2,
            list(self.dilation),
        )
        y = F.conv_transpose2d(
            _quantize(x, self.dac_bits),
            self._read_weight(),
            None,
            self.stride,
            cast(tuple[int, ...], self.padding),
            pad,
            self.groups,
            self.dilation,
        )
        y = _quantize(y, self.adc_bits)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


_ANALOG: dict[type[nn.Module], type[_Analog]] = {
    nn.Linear: AnalogLinear,
    nn.Conv2d: AnalogConv2d,
    nn.ConvTranspose2d: AnalogConvTranspose2d,
}


def convert(
    model: nn.Module,
    *,
    include: Callable[[str, nn.Module], bool] | None = None,
    dac_bits: int | None = None,
    adc_bits: int | None = None,
    **crossbar_kwargs: Any,
) -> Crossbar:
    """Replace the Linear / Conv2d / ConvTranspose2d layers of ``model`` (in place) by analog
    ones on one shared `Crossbar`, program their weights, and return the crossbar.

    Args:
        model: the network; its layers are swapped in place.
        include: ``(name, module) -> bool`` choosing the layers to convert (default: all).
        dac_bits, adc_bits: input / output quantisation of every VMM (None: exact).
        **crossbar_kwargs: `Crossbar` options (``device``, ``scheme``, ``mapping``,
            ``rwg_per_us``, ``array_size``, ``seed`` ...).
    """
    for bits_name, bits in (("dac_bits", dac_bits), ("adc_bits", adc_bits)):
        validate.integer(bits_name, bits, low=2, high=32, allow_none=True)
    xb = Crossbar(**crossbar_kwargs)
    targets = [
        (name, mod)
        for name, mod in model.named_modules()
        if type(mod) in _ANALOG and (include is None or include(name, mod))
    ]
    if not targets:
        raise ValueError("convert found no nn.Linear / nn.Conv2d / nn.ConvTranspose2d to convert")
    if targets[0][0] == "":
        raise ValueError(
            f"Invalid model: a bare {type(model).__name__} cannot be swapped in place; wrap it "
            f"(convert(nn.Sequential(layer))) or build the analog layer with "
            f"{_ANALOG[type(model)].__name__}.from_digital(layer, crossbar)"
        )
    for name, mod in targets:
        if mod.weight.numel() == 0:
            raise ValueError(
                f"Invalid model: layer {name!r} has a zero-size weight "
                f"{tuple(mod.weight.shape)}; there is nothing to place on a crossbar"
            )
    for name, mod in targets:
        new = _ANALOG[type(mod)].from_digital(
            mod, xb, name=name, dac_bits=dac_bits, adc_bits=adc_bits
        )
        parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
        setattr(parent, name.rpartition(".")[2], new)
    return xb


def crossbar_of(model: nn.Module) -> Crossbar | None:
    """The crossbar behind the model's analog layers (None if it has none)."""
    for m in model.modules():
        if isinstance(m, _Analog):
            return m.tile.crossbar
    return None


def to_digital(model: nn.Module) -> nn.Module:
    """Replace analog layers by their torch layers holding the cells' present weights."""
    for name, mod in list(model.named_modules()):
        if isinstance(mod, _Analog):
            base = next(b for b in type(mod).__mro__ if b in _ANALOG)
            new: Any = base.__new__(base)
            new.__dict__.update(
                {k: v for k, v in mod.__dict__.items() if k not in ("tile", "dac_bits", "adc_bits")}
            )
            new._parameters = dict(mod._parameters)
            new.weight = nn.Parameter(mod.tile.weight().to(mod.weight).clone())
            parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
            setattr(parent, name.rpartition(".")[2], new)
    return model
