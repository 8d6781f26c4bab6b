"""Analog layers whose weights live in crossbar tiles, and `convert` for whole models.

>>> import torch
>>> from eapu.nn import convert
>>> model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
>>> xbar = convert(model, device="taox_1t1r", scheme="memorial")
>>> print(xbar.placement.cells)          # weight cells + shared reference cells
48

The weight stays a real ``nn.Parameter`` (the very object the layer had, so an optimizer or
a hook built before `convert` keeps working): it holds the noise-free value the cells hold,
and the in-situ optimizers of `eapu.optim` and `eapu.algorithms` write it through its tile
(``weight.eapu_tile``, an `eapu.seam.AnalogTile`). A forward pass reads the cells (read
noise, optional DAC / ADC quantisation); gradients flow to the parameter as if the read were
exact (straight-through). A layer in ``eval()`` mode reads from the crossbar's evaluation
stream, so evaluating never changes what training reads.

The crossbar is a submodule of the first analog layer: ``model.to(device)`` moves every
cell and generator, and ``model.state_dict()`` holds them (no separate crossbar state).
``copy.deepcopy(model)`` gives an analog copy on a copy of the crossbar.

Nothing moves an analog weight behind its tile: a plain torch optimizer that would step one
is refused before it changes anything, and a forward pass refuses a weight that was edited
in place since its tile last wrote it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook

from . import validate
from .seam import AnalogTile
from .tiles import Crossbar, Tile

__all__ = [
    "AnalogConv2d",
    "AnalogConvTranspose2d",
    "AnalogLinear",
    "bind",
    "convert",
    "crossbar_of",
    "load_legacy_state",
    "to_digital",
]

#: The attribute of the first analog layer that holds the crossbar (a submodule).
CROSSBAR_ATTR = "eapu_crossbar"


def _quantize(x: Tensor, bits: int | None) -> Tensor:
    """Symmetric uniform quantisation to ``bits`` over the batch's max |x|, straight-through."""
    if bits is None:
        return x
    scale = x.detach().abs().amax().clamp_min(1e-12) / (2 ** (bits - 1) - 1)
    q = torch.round(x.detach() / scale) * scale
    return x + (q - x).detach()


class _StraightThrough(torch.autograd.Function):
    """``read`` forward, the gradient to ``weight`` unchanged (one read costs one pass over
    the cells, not a read and a noise-free weight)."""

    @staticmethod
    def forward(ctx: Any, weight: Tensor, read: Tensor) -> Tensor:
        return read

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def _republish(module: nn.Module, incompatible: Any) -> None:
    """After ``load_state_dict``: the parameter holds what the loaded cells hold."""
    tile = getattr(module, "tile", None)
    if tile is not None:
        tile.publish(module.weight)


class _Analog(nn.Module):
    """Mixin: a torch layer whose weight is backed by a tile."""

    tile: AnalogTile
    weight: Tensor
    dac_bits: int | None
    adc_bits: int | None
    _transposed_tile = False

    def _attach(self, tile: AnalogTile, dac_bits: int | None, adc_bits: int | None) -> None:
        self.tile = tile
        self.dac_bits, self.adc_bits = dac_bits, adc_bits
        self.weight.eapu_tile = tile  # type: ignore[attr-defined]
        tile.publish(self.weight)
        if not getattr(self, "_eapu_hooked", False):
            self.register_load_state_dict_post_hook(_republish)
            self._eapu_hooked = True

    def _read_weight(self) -> Tensor:
        """The weight this forward pass sees: one read of every cell (read noise), with the
        gradient reaching the parameter as it is (straight-through; the parameter holds what
        the cells hold without noise)."""
        tile, w = self.tile, self.weight
        tile.check(w)
        if not tile.noisy_reads:
            return w
        return cast(
            Tensor, _StraightThrough.apply(w, tile.read(evaluation=not self.training).to(w))
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            new.__dict__[k] = copy.deepcopy(v, memo)
        new.weight.eapu_tile = new.tile  # type: ignore[attr-defined]
        new.tile.publish(new.weight, new.weight.detach())
        return new

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
        """An analog copy of ``layer`` whose weight is programmed onto ``crossbar``; it keeps
        ``layer``'s parameter objects (the weight then holds the programmed values)."""
        weight = cast(Tensor, layer.weight)
        tile = crossbar.add_tile(
            name or cls.__name__, weight.detach(), transposed=cls._transposed_tile
        )
        return cls._on_tile(layer, tile, dac_bits, adc_bits)

    @classmethod
    def _on_tile(
        cls, layer: nn.Module, tile: AnalogTile, dac_bits: int | None, adc_bits: int | None
    ) -> Any:
        """An analog copy of ``layer`` whose weight ``tile`` holds (it keeps ``layer``'s
        parameter objects; the weight then holds the tile's values)."""
        new: Any = cls.__new__(cls)
        new.__dict__.update(layer.__dict__)  # shares hyper-parameters, parameters, hooks
        new._parameters = dict(layer._parameters)
        new._buffers = dict(layer._buffers)
        new._modules = dict(layer._modules)
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


def bind(layer: nn.Module, tile: AnalogTile) -> None:
    """Back an analog layer's weight by ``tile``, any implementation of the seam
    (`eapu.seam.AnalogTile`: a simulator's tile, a wrapper that records calls, a real chip's
    driver); the weight takes the tile's values."""
    if not isinstance(layer, _Analog):
        raise TypeError(f"Invalid layer: {type(layer).__name__}; allowed: an eapu.nn analog layer")
    if not isinstance(tile, AnalogTile):
        raise TypeError(f"Invalid tile: {tile!r}; allowed: an eapu.seam.AnalogTile")
    if tuple(tile.shape) != tuple(layer.weight.shape):
        raise ValueError(
            f"Invalid tile: shape {tuple(tile.shape)}; the layer's weight is "
            f"{tuple(layer.weight.shape)}"
        )
    layer._attach(tile, layer.dac_bits, layer.adc_bits)


def _refuse_bypass(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    """A global step pre-hook: an optimizer that is not in situ must not move analog weights
    (it would change the parameter while the cells keep the old values)."""
    if getattr(opt, "eapu_in_situ", False):
        return
    for group in opt.param_groups:
        for p in group["params"]:
            tile = getattr(p, "eapu_tile", None)
            if tile is not None and p.grad is not None:
                raise RuntimeError(
                    f"{type(opt).__name__} would step the weight of analog layer "
                    f"{tile.name!r} without writing its cells. Use an in-situ optimizer for "
                    "the analog weights (eapu.optim.AdamEaPU, SGDEaPU, AdamNoise, "
                    "eapu.algorithms ...; they step the biases too), or give this optimizer "
                    "only the digital parameters"
                )


register_optimizer_step_pre_hook(_refuse_bypass)


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

    The crossbar characterises its device's SD(εcell) when it is built (the default EaPU
    threshold; cached per device and scheme) and becomes a submodule of the first converted
    layer, so that it moves and is saved with the model. The cells live where the model's
    first converted weight is.

    Args:
        model: the network; its layers are swapped in place.
        include: ``(name, module) -> bool`` choosing the layers to convert (default: all).
        dac_bits, adc_bits: input / output quantisation of every VMM (None: exact).
        **crossbar_kwargs: `Crossbar` options (``device``, ``scheme``, ``mapping``,
            ``rwg_per_us``, ``array_size``, ``seed`` ...).
    """
    for bits_name, bits in (("dac_bits", dac_bits), ("adc_bits", adc_bits)):
        validate.integer(bits_name, bits, low=2, high=32, allow_none=True)
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
    xb = Crossbar(**crossbar_kwargs)
    xb.to(targets[0][1].weight.device)
    # Every weight placed and loaded at once (one draw, one call of the load scheme).
    tiles = xb.add_tiles(
        [
            (name, cast(Tensor, mod.weight).detach(), _ANALOG[type(mod)]._transposed_tile)
            for name, mod in targets
        ]
    )
    for k, ((name, mod), tile) in enumerate(zip(targets, tiles, strict=True)):
        new = _ANALOG[type(mod)]._on_tile(mod, tile, dac_bits, adc_bits)
        if k == 0:
            new.add_module(CROSSBAR_ATTR, xb)
        parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
        setattr(parent, name.rpartition(".")[2], new)
    return xb


def crossbar_of(model: nn.Module) -> Crossbar | None:
    """The crossbar behind the model's analog layers (None if it has none)."""
    for m in model.modules():
        if isinstance(m, _Analog):
            xb = getattr(m.tile, "crossbar", None)
            if isinstance(xb, Crossbar):
                return xb
    return None


def to_digital(model: nn.Module) -> nn.Module:
    """Replace analog layers by their torch layers holding the cells' present weights."""
    for name, mod in list(model.named_modules()):
        if isinstance(mod, _Analog):
            base = next(b for b in type(mod).__mro__ if b in _ANALOG)
            new: Any = base.__new__(base)
            skip = ("tile", "dac_bits", "adc_bits", "_eapu_hooked")
            new.__dict__.update({k: v for k, v in mod.__dict__.items() if k not in skip})
            new._parameters = dict(mod._parameters)
            new._modules = {k: v for k, v in mod._modules.items() if k != CROSSBAR_ATTR}
            new._load_state_dict_post_hooks = type(mod._load_state_dict_post_hooks)(
                (k, h) for k, h in mod._load_state_dict_post_hooks.items() if h is not _republish
            )
            new.weight = nn.Parameter(mod.tile.weight().to(mod.weight).clone())
            parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
            setattr(parent, name.rpartition(".")[2], new)
    return model


def load_legacy_state(
    model: nn.Module, model_state: dict[str, Any], crossbar_state: dict[str, Any]
) -> None:
    """Load a checkpoint written before the crossbar moved into the model's state: each
    analog layer's tile as its ``_extra_state`` and the crossbar's own ``state_dict``.

    ``model`` is a freshly converted network (and, for Tiki-Taka, its optimizer built).
    """
    xb = crossbar_of(model)
    if xb is None:
        raise ValueError("Invalid model: it has no analog layer to load a crossbar into")
    state = dict(model_state)
    for name, mod in model.named_modules():
        if isinstance(mod, _Analog):
            tile = cast(Tile, mod.tile)
            old = state.pop(f"{name}._extra_state" if name else "_extra_state", None)
            if old is not None:
                tile.load_state_tensors(old)
    if "ref_g_us" in crossbar_state:
        xb.ref_g_us.copy_(crossbar_state["ref_g_us"].to(xb.ref_g_us))
    extra = crossbar_state.get("_extra_state", {})
    if "ref_params" in extra:
        for f, v in extra["ref_params"].items():
            getattr(xb, f"ref_{f}").copy_(v.to(xb.torch_device))
    if extra:
        xb.set_extra_state(extra)
    missing, unexpected = model.load_state_dict(state, strict=False)
    ours = {k for k in missing if f".{CROSSBAR_ATTR}." in f".{k}"}
    if set(missing) - ours or unexpected:
        raise ValueError(
            f"the checkpoint does not fit this model: missing {sorted(set(missing) - ours)}, "
            f"unexpected {sorted(unexpected)}"
        )
