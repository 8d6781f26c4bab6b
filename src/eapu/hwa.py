"""Hardware-aware training (Rasch et al., Nat. Commun. 14, 5282, 2023), reduced to its core:
weight noise in the forward pass of software training, so that the trained network tolerates
being programmed once (ex-situ). Not an in-situ optimizer: it wraps a model's forward."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import validate

__all__ = ["HWANoise", "hwa_noise"]


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
    validate.number("sd_us", sd_us, low=0)
    validate.number("rwg_per_us", rwg_per_us, low=0, low_open=True)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"Invalid generator: {generator!r}; allowed: a torch.Generator or None")
    return HWANoise(model, float(sd_us) * float(rwg_per_us), generator, train_only)
