"""The paper's networks as plain torch modules, with a registry.

Every model is an ordinary ``nn.Module`` built from ``nn.Conv2d``, ``nn.ConvTranspose2d`` and
``nn.Linear`` (plus norms and activations), so that ``eapu.nn.convert`` can swap those layers
for analog ones. As in the authors' code, the tensors with ``dim() > 1`` are the crossbar
weights; biases and norm parameters stay digital::

    >>> from eapu.models import get_model, count_weights
    >>> count_weights(get_model("denoise_ae")), count_weights(get_model("srnet2"))
    (135, 369)
    >>> net = get_model("preact_resnet18", width=8, num_classes=10, seed=0)

``get_model(name, seed=...)`` draws the initial weights from a forked global RNG seeded with
``seed``: the initialisation is reproducible and the caller's RNG state is left untouched.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from . import validate
from .registry import Registry

__all__ = [
    "FC",
    "INITS",
    "MODELS",
    "DenoiseAE",
    "LeNet5",
    "ModelInfo",
    "PreActBlock",
    "PreActBottleneck",
    "PreActResNet",
    "SRNet",
    "SRResNet",
    "SmallCNN",
    "SwinTransformer",
    "count_weights",
    "get_model",
    "init_weights",
    "list_models",
    "model_info",
    "register_model",
]

# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """A registered model.

    Attributes:
        name: registry name (``get_model(name)``).
        factory: ``factory(**kw)`` returning an ``nn.Module``.
        description: one line for ``eapu --help`` and reports.
    """

    name: str
    factory: Callable[..., nn.Module]
    description: str


def _model_from_entry_point(name: str, factory: Any) -> ModelInfo:
    if not callable(factory):
        raise TypeError(f"model plugin {name!r} is {factory!r}, not a model factory")
    return ModelInfo(name, factory, (factory.__doc__ or "").strip().split("\n")[0])


#: Every network; installed packages add theirs under the ``eapu.models`` entry points.
MODELS: Registry[ModelInfo] = Registry(
    "model",
    entry_point_group="eapu.models",
    from_entry_point=_model_from_entry_point,
    returns=nn.Module,
)
_F = TypeVar("_F", bound=Callable[..., nn.Module])


def register_model(
    fn: _F | None = None, *, name: str | None = None, description: str | None = None
) -> Any:
    """Register a model factory (decorator, bare or called).

    The name defaults to the factory's ``__name__``, the description to the first line of its
    docstring.
    """

    def deco(f: _F) -> _F:
        key = name or f.__name__
        doc = description or (f.__doc__ or "").strip().split("\n")[0]
        MODELS.add(key, ModelInfo(name=key, factory=f, description=doc))
        return f

    return deco(fn) if fn is not None else deco


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered models matching a shell-style ``pattern``, sorted."""
    return MODELS.names(pattern)


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` registered under ``name``."""
    return MODELS.get(name)


def get_model(name: str, *, seed: int | None = None, **kw: Any) -> nn.Module:
    """Build the registered model ``name`` with the factory's keyword arguments ``kw``.

    Args:
        name: registry name, see :func:`list_models`.
        seed: when given, initialise from a forked CPU RNG seeded with it (reproducible, and the
            global RNG state is unchanged).
        **kw: the factory's own keyword arguments.
    """
    info = model_info(name)
    if seed is None:
        return info.factory(**kw)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return info.factory(**kw)


def count_weights(model: nn.Module) -> int:
    """Number of weight elements on crossbars: parameters with ``dim() > 1``."""
    return sum(p.numel() for p in model.parameters() if p.dim() > 1)


# --------------------------------------------------------------------------------------------
# Hardware-sized networks of the paper
# --------------------------------------------------------------------------------------------

_OUT_ACTIVATIONS = ("sigmoid", "clamp", "none")


#: Weight initialisations: torch's default, or the authors' (LJinchang/Experiment_EaPU,
#: model/srresnet.py ``_initialize_weights``: Kaiming-normal weights, zero biases, BN 1/0).
INITS = ("torch", "kaiming_normal")


def init_weights(model: nn.Module, kind: str) -> nn.Module:
    """Re-initialise ``model``'s convolutions, linear layers and norms as ``kind`` says
    (`INITS`); ``"torch"`` leaves torch's default initialisation. Returns ``model``."""
    validate.choice("init", kind, INITS)
    if kind == "kaiming_normal":
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
    return model


def _out_activation(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "sigmoid":
        return torch.sigmoid(x)
    if kind == "clamp":
        return x.clamp(0.0, 1.0)
    return x


class DenoiseAE(nn.Module):
    """The paper's denoising autoencoder: 3×3 convolutions 1->3 (encoder), 3->3, 3->1 (decoder).

    Weights: 1·3·9 + 3·3·9 + 3·1·9 = 27 + 81 + 27 = 135. The paper represents its 135
    parameters with 162 cells (135 + 27 reference cells), so its network has no biases: the
    default here is bias-free too; ``bias=True`` adds digital biases.

    With ``stride=2`` (default) the encoder is a stride-2 convolution without padding, so a
    28×28 image is coded as 3×13×13 = 507 values, 507/784 = 64.67 %: the compression rate the
    paper reports for its autoencoder. The first decoder layer is then a stride-2 transposed
    convolution (3->3, output padding 1) back to 28×28, the second a padded 3×3 convolution;
    odd input sizes are cropped back to the input size. ``stride=1`` keeps the full size
    throughout (all layers padded, no compression). ReLU between layers. The paper does not
    state the output activation; the default clamps the output to [0, 1], the range of the
    clean target (an assumption: on the 28×28 MNIST sample, bias-free, software, Adam lr
    1e-2, it reached SSIM 0.807 against 0.745 with a sigmoid and 0.729 with no activation;
    a bias-free sigmoid outputs 0.5 where the features are 0, the digits' background).

    Args:
        in_channels: image channels (1 in the paper; colour images go channel by channel).
        hidden: channels of the code and of the decoder's hidden layer.
        stride: 2 (compressing, the paper's count) or 1.
        bias: digital biases on the three layers.
        out_activation: ``"sigmoid"``, ``"clamp"`` (to [0, 1]) or ``"none"``.
        init: ``"torch"`` (default) or ``"kaiming_normal"`` (`init_weights`).
    """

    def __init__(
        self,
        in_channels: int = 1,
        hidden: int = 3,
        *,
        stride: int = 2,
        bias: bool = False,
        out_activation: str = "clamp",
        init: str = "torch",
    ) -> None:
        super().__init__()
        validate.integer("in_channels", in_channels, low=1)
        validate.integer("hidden", hidden, low=1)
        validate.choice("stride", stride, (1, 2))
        validate.choice("out_activation", out_activation, _OUT_ACTIVATIONS)
        pad = 1 if stride == 1 else 0
        self.out_activation = out_activation
        self.encoder = nn.Conv2d(in_channels, hidden, 3, stride=stride, padding=pad, bias=bias)
        self.decoder1 = nn.ConvTranspose2d(
            hidden, hidden, 3, stride=stride, padding=pad, output_padding=stride - 1, bias=bias
        )
        self.decoder2 = nn.Conv2d(hidden, in_channels, 3, padding=1, bias=bias)
        init_weights(self, init)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code (3×13×13 for a 28×28 image at stride 2)."""
        return F.relu(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = F.relu(self.decoder1(self.encode(x)))
        y = self.decoder2(y)[..., :h, :w]
        return _out_activation(y, self.out_activation)


class SRNet(nn.Module):
    """The paper's small super-resolution network: conv, conv, transposed conv (upsampling).

    Default ×2 configuration (``srnet2``), 369 weights as in the paper:

    ====================  ==============================  =======
    layer                 shape                           weights
    ====================  ==============================  =======
    conv 5×5, 1->5        pad 2, ReLU                     125
    conv 3×3, 5->4        pad 1, ReLU                     180
    convT 4×4, 4->1       stride 2, pad 1 (exactly ×2)    64
    ====================  ==============================  =======

    The paper gives only the totals (369 weights, 396 cells); this is one integer solution
    with a transposed kernel that is a multiple of the stride (even overlap, no checkerboard).
    For ×s the transposed kernel defaults to 2s with padding s/2 (×4: 8×8, 256 weights, 561
    in all). The output is linear (no clamp); clip it for display and metrics. The paper's
    369 parameters on 396 cells (369 + 27 references) suggest no biases, but bias-free the
    network can start dead: images are non-negative, so a ReLU channel whose kernel is
    mostly negative never fires, and with seeds 1 and 2 every channel of the second layer
    is (software training then stays at output 0, SSIM 0.237 on MNIST ×2, also at lr 3e-3).
    The default keeps digital biases (5 + 4 + 1, off the crossbar); ``bias=False`` is the
    paper's count.

    Args:
        scale: upsampling factor (>= 2).
        in_channels: image channels.
        channels: output channels of the two convolutions.
        kernels: kernel sizes of the two convolutions (odd; "same" padding).
        up_kernel: transposed-convolution kernel; default 2·scale (2·scale+1 for odd scale).
        bias: digital biases.
        out_activation: ``"none"`` (default, linear), ``"sigmoid"`` or ``"clamp"``.
        init: ``"torch"`` (default) or ``"kaiming_normal"`` (`init_weights`).
    """

    def __init__(
        self,
        scale: int = 2,
        in_channels: int = 1,
        channels: Sequence[int] = (5, 4),
        kernels: Sequence[int] = (5, 3),
        up_kernel: int | None = None,
        *,
        bias: bool = True,
        out_activation: str = "none",
        init: str = "torch",
    ) -> None:
        super().__init__()
        validate.integer("scale", scale, low=2)
        validate.choice("out_activation", out_activation, _OUT_ACTIVATIONS)
        self.out_activation = out_activation
        validate.integer("in_channels", in_channels, low=1)
        if len(channels) != 2 or any(not isinstance(c, int) or c < 1 for c in channels):
            raise ValueError(f"Invalid channels: {channels!r}; expected two positive ints")
        if len(kernels) != 2 or any(not isinstance(k, int) or k < 1 or k % 2 == 0 for k in kernels):
            raise ValueError(f"Invalid kernels: {kernels!r}; expected two odd positive ints")
        if up_kernel is None:
            up_kernel = 2 * scale + scale % 2
        if up_kernel < scale or (up_kernel - scale) % 2:
            raise ValueError(
                f"Invalid up_kernel: {up_kernel!r}; expected >= scale ({scale}) with "
                "up_kernel - scale even"
            )
        c1, c2 = channels
        k1, k2 = kernels
        self.scale = scale
        self.conv1 = nn.Conv2d(in_channels, c1, k1, padding=k1 // 2, bias=bias)
        self.conv2 = nn.Conv2d(c1, c2, k2, padding=k2 // 2, bias=bias)
        self.up = nn.ConvTranspose2d(
            c2, in_channels, up_kernel, stride=scale, padding=(up_kernel - scale) // 2, bias=bias
        )
        init_weights(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(F.relu(self.conv2(F.relu(self.conv1(x)))))
        return _out_activation(y, self.out_activation)


@register_model
def denoise_ae(**kw: Any) -> DenoiseAE:
    """Denoising autoencoder, 3 conv layers 1->3->3->1, 135 weights (paper Fig. 3)."""
    return DenoiseAE(**kw)


@register_model
def srnet2(**kw: Any) -> SRNet:
    """SRNet×2: conv 5×5 1->5, conv 3×3 5->4, convT 4×4/2 4->1, 369 weights (paper Fig. 4)."""
    return SRNet(scale=2, **kw)


@register_model
def srnet2_authors(**kw: Any) -> SRNet:
    """SRNet×2 with the authors' choices: sigmoid output, Kaiming-normal initialisation
    (LJinchang/Experiment_EaPU, model/srresnet.py: the paper does not state them)."""
    return SRNet(scale=2, **{"out_activation": "sigmoid", "init": "kaiming_normal", **kw})


@register_model
def denoise_ae_authors(**kw: Any) -> DenoiseAE:
    """The autoencoder with the authors' SR choices: sigmoid output, Kaiming-normal
    initialisation (LJinchang/Experiment_EaPU, model/srresnet.py; the paper states neither)."""
    return DenoiseAE(**{"out_activation": "sigmoid", "init": "kaiming_normal", **kw})


@register_model
def srnet4(**kw: Any) -> SRNet:
    """SRNet×4: conv 5×5 1->5, conv 3×3 5->4, convT 8×8/4 4->1, 561 weights."""
    return SRNet(scale=4, **kw)


# --------------------------------------------------------------------------------------------
# Small classifiers
# --------------------------------------------------------------------------------------------


class LeNet5(nn.Module):
    """LeNet-5: conv 5×5 ->6, pool, conv 5×5 ->16, pool, FC 120, 84, classes (ReLU, max pool).

    A 28×28 input is padded by 2 in the first convolution (as LeCun's 32×32 field); other sizes
    are used unpadded.

    Args:
        in_channels: image channels.
        num_classes: outputs.
        img_size: input side (>= 13 with padding, >= 16 without).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, img_size: int = 28) -> None:
        super().__init__()
        validate.integer("in_channels", in_channels, low=1)
        validate.integer("num_classes", num_classes, low=1)
        pad = 2 if img_size == 28 else 0
        s = ((img_size + 2 * pad - 4) // 2 - 4) // 2
        if s < 1:
            raise ValueError(f"Invalid img_size: {img_size!r}; too small for LeNet-5 (min 16)")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=pad),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * s * s, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class FC(nn.Sequential):
    """Fully connected network (flatten, then Linear + ReLU, last layer linear).

    Args:
        sizes: layer widths from input to output, e.g. (64, 32, 24, 10) for 8×8 digits.
    """

    def __init__(self, sizes: Sequence[int] = (64, 32, 24, 10)) -> None:
        if len(sizes) < 2 or any(not isinstance(s, int) or s < 1 for s in sizes):
            raise ValueError(f"Invalid sizes: {sizes!r}; expected >= 2 positive ints")
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        super().__init__(*layers)
        self.sizes = tuple(sizes)


class SmallCNN(nn.Module):
    """A tiny CNN for 8×8 digits: conv 3×3 ->8, conv 3×3 ->16, max pool 2, linear.

    Args:
        in_channels: image channels.
        num_classes: outputs.
        img_size: input side (even, >= 2).
        channels: output channels of the two convolutions.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        img_size: int = 8,
        channels: Sequence[int] = (8, 16),
    ) -> None:
        super().__init__()
        validate.integer("in_channels", in_channels, low=1)
        validate.integer("num_classes", num_classes, low=1)
        validate.integer("img_size", img_size, low=2)
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(c2 * (img_size // 2) ** 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


@register_model
def lenet5(**kw: Any) -> LeNet5:
    """LeNet-5 for 28×28 or 32×32 inputs (in_channels, num_classes, img_size)."""
    return LeNet5(**kw)


@register_model
def fc(**kw: Any) -> FC:
    """Fully connected network, default 64-32-24-10 (8×8 digits, retention experiment)."""
    return FC(**kw)


@register_model
def small_cnn(**kw: Any) -> SmallCNN:
    """Tiny CNN for 8×8 digits: conv 1->8, conv 8->16, pool, linear 256->10."""
    return SmallCNN(**kw)


# --------------------------------------------------------------------------------------------
# Pre-activation ResNet (He et al. 2016), CIFAR variant as in kuangliu/pytorch-cifar
# --------------------------------------------------------------------------------------------


class PreActBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3×3-BN-ReLU-conv3×3 plus shortcut."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes * self.expansion:
            self.shortcut = nn.Conv2d(
                in_planes, planes * self.expansion, 1, stride=stride, bias=False
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck: 1×1 reduce, 3×3, 1×1 expand (×4), each after BN-ReLU."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes * self.expansion:
            self.shortcut = nn.Conv2d(
                in_planes, planes * self.expansion, 1, stride=stride, bias=False
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    """Pre-activation ResNet for 32×32 images (3×3 stem, four stages, global average pool).

    Follows the kuangliu/pytorch-cifar ``PreActResNet`` that the EaPU reference code trains
    (no final BN-ReLU before the pool); PreActResNet18 at width 64 has 11,171,146 parameters
    for 10 classes.

    Args:
        block: :class:`PreActBlock` or :class:`PreActBottleneck`.
        num_blocks: blocks per stage (four ints).
        in_channels: image channels.
        num_classes: outputs.
        width: channels of the first stage (64 in the paper); stages use 1, 2, 4, 8 × width.
    """

    def __init__(
        self,
        block: type[PreActBlock] | type[PreActBottleneck],
        num_blocks: Sequence[int],
        *,
        in_channels: int = 3,
        num_classes: int = 10,
        width: int = 64,
    ) -> None:
        super().__init__()
        validate.integer("in_channels", in_channels, low=1)
        validate.integer("num_classes", num_classes, low=1)
        validate.integer("width", width, low=1)
        if len(num_blocks) != 4 or any(not isinstance(n, int) or n < 1 for n in num_blocks):
            raise ValueError(f"Invalid num_blocks: {num_blocks!r}; expected four positive ints")
        self.in_planes = width
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.layer1 = self._make_layer(block, width, num_blocks[0], 1)
        self.layer2 = self._make_layer(block, 2 * width, num_blocks[1], 2)
        self.layer3 = self._make_layer(block, 4 * width, num_blocks[2], 2)
        self.layer4 = self._make_layer(block, 8 * width, num_blocks[3], 2)
        self.linear = nn.Linear(8 * width * block.expansion, num_classes)

    def _make_layer(
        self,
        block: type[PreActBlock] | type[PreActBottleneck],
        planes: int,
        n: int,
        stride: int,
    ) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


@register_model
def preact_resnet18(**kw: Any) -> PreActResNet:
    """PreActResNet18 for 32×32 images (width, in_channels, num_classes)."""
    return PreActResNet(PreActBlock, (2, 2, 2, 2), **kw)


@register_model
def preact_resnet34(**kw: Any) -> PreActResNet:
    """PreActResNet34 for 32×32 images (the paper's CIFAR-10 network)."""
    return PreActResNet(PreActBlock, (3, 4, 6, 3), **kw)


@register_model
def preact_resnet50(**kw: Any) -> PreActResNet:
    """PreActResNet50 (bottleneck) for 32×32 images."""
    return PreActResNet(PreActBottleneck, (3, 4, 6, 3), **kw)


@register_model
def preact_resnet101(**kw: Any) -> PreActResNet:
    """PreActResNet101 (bottleneck) for 32×32 images."""
    return PreActResNet(PreActBottleneck, (3, 4, 23, 3), **kw)


@register_model
def preact_resnet152(**kw: Any) -> PreActResNet:
    """PreActResNet152 (bottleneck) for 32×32 images (the paper's CIFAR-100 network)."""
    return PreActResNet(PreActBottleneck, (3, 8, 36, 3), **kw)


# --------------------------------------------------------------------------------------------
# SRResNet (Ledig et al. 2017)
# --------------------------------------------------------------------------------------------


class _SRResBlock(nn.Module):
    def __init__(self, channels: int, norm: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=not norm)
        self.bn1: nn.Module = nn.BatchNorm2d(channels) if norm else nn.Identity()
        self.act = nn.PReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=not norm)
        self.bn2: nn.Module = nn.BatchNorm2d(channels) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))


class SRResNet(nn.Module):
    """SRResNet (the SRGAN generator): 9×9 stem, residual blocks, PixelShuffle ×2 stages.

    Stem conv 9×9 + PReLU; ``num_blocks`` × (conv-BN-PReLU-conv-BN + skip); conv-BN plus the
    long skip from the stem; log2(scale) × (conv c->4c, PixelShuffle(2), PReLU); conv 9×9 to
    the image channels (linear output).

    Args:
        scale: upsampling factor, a power of two (2, 4, 8).
        in_channels: image channels.
        channels: feature channels (64 in Ledig et al.).
        num_blocks: residual blocks (16 in Ledig et al.).
        norm: batch normalisation in the blocks.
    """

    def __init__(
        self,
        scale: int = 4,
        in_channels: int = 3,
        channels: int = 64,
        num_blocks: int = 16,
        *,
        norm: bool = True,
    ) -> None:
        super().__init__()
        validate.choice("scale", scale, (2, 4, 8))
        validate.integer("in_channels", in_channels, low=1)
        validate.integer("channels", channels, low=1)
        validate.integer("num_blocks", num_blocks, low=1)
        self.scale = scale
        self.head = nn.Sequential(nn.Conv2d(in_channels, channels, 9, padding=4), nn.PReLU())
        self.body = nn.Sequential(*(_SRResBlock(channels, norm) for _ in range(num_blocks)))
        self.body_tail = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=not norm),
            nn.BatchNorm2d(channels) if norm else nn.Identity(),
        )
        ups: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            ups += [nn.Conv2d(channels, 4 * channels, 3, padding=1), nn.PixelShuffle(2), nn.PReLU()]
        self.upsample = nn.Sequential(*ups)
        self.tail = nn.Conv2d(channels, in_channels, 9, padding=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        h = h + self.body_tail(self.body(h))
        return self.tail(self.upsample(h))


@register_model
def srresnet4(**kw: Any) -> SRResNet:
    """SRResNet ×4 (Ledig et al. 2017), 16 blocks × 64 channels by default."""
    return SRResNet(scale=4, **kw)


# --------------------------------------------------------------------------------------------
# Swin Transformer (Liu et al. 2021)
# --------------------------------------------------------------------------------------------


def _window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """B×H×W×C -> (B·nW)×(ws·ws)×C."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def _window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """(B·nW)×(ws·ws)×C -> B×H×W×C."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // ws) * (w // ws))
    x = windows.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


class _WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a learned relative position bias."""

    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        coords = torch.stack(
            torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        ).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        index = rel[..., 0] * (2 * window - 1) + rel[..., 1]
        self.register_buffer("relative_position_index", index, persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        index = self.relative_position_index.view(-1)  # type: ignore[operator]
        bias = self.relative_position_bias_table[index].view(n, n, -1).permute(2, 0, 1)
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b // nw, nw, self.heads, n, n) + mask[None, :, None]
            attn = attn.view(b, self.heads, n, n)
        out = (attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class _SwinBlock(nn.Module):
    def __init__(
        self, dim: int, resolution: int, heads: int, window: int, shift: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        if resolution <= window:
            window, shift = resolution, 0
        self.resolution = resolution
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _WindowAttention(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        mask = None
        if shift > 0:
            img = torch.zeros(1, resolution, resolution, 1)
            spans = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
            cnt = 0
            for hs in spans:
                for ws in spans:
                    img[:, hs, ws, :] = cnt
                    cnt += 1
            win = _window_partition(img, window).squeeze(-1)
            diff = win.unsqueeze(1) - win.unsqueeze(2)
            mask = torch.zeros_like(diff).masked_fill(diff != 0, -100.0)
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        r = self.resolution
        h = self.norm1(x).view(b, r, r, c)
        if self.shift:
            h = torch.roll(h, shifts=(-self.shift, -self.shift), dims=(1, 2))
        h = self.attn(_window_partition(h, self.window), self.attn_mask)
        h = _window_reverse(h, self.window, r, r)
        if self.shift:
            h = torch.roll(h, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + h.reshape(b, r * r, c)
        return x + self.mlp(self.norm2(x))


class _PatchMerging(nn.Module):
    """2×2 neighbouring tokens concatenated (4C), normalised and projected to 2C."""

    def __init__(self, dim: int, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        r = self.resolution
        x = x.view(b, r, r, c)
        x = torch.cat(
            [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1
        )
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinTransformer(nn.Module):
    """Swin Transformer classifier (Liu et al. 2021) in plain torch.

    Patch embedding (conv patch×patch), stages of (shifted-)window attention blocks with
    relative position bias, patch merging between stages, LayerNorm, mean pool, linear head.
    A stage whose resolution is at most the window uses one unshifted window (as the original).
    No dropout or stochastic depth (randomness only through explicit generators in this
    project). Defaults are Swin-T for 224×224 images.

    Note: ``relative_position_bias_table`` is a 2-D parameter and so counts as a crossbar
    weight under the ``dim() > 1`` convention.

    Args:
        img_size: input side; (img_size / patch) / 2^(stages-1) must be an integer and each
            stage resolution above the window must be a multiple of it.
        patch: patch side.
        in_channels: image channels.
        num_classes: outputs.
        embed_dim: channels of the first stage (doubled at each merge).
        depths: blocks per stage.
        heads: attention heads per stage.
        window: window side in tokens.
        mlp_ratio: MLP hidden width / embedding width.
    """

    def __init__(
        self,
        img_size: int = 224,
        patch: int = 4,
        in_channels: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        heads: Sequence[int] = (3, 6, 12, 24),
        window: int = 7,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        for name, v in (
            ("img_size", img_size),
            ("patch", patch),
            ("in_channels", in_channels),
            ("num_classes", num_classes),
            ("embed_dim", embed_dim),
            ("window", window),
        ):
            validate.integer(name, v, low=1)
        if len(depths) != len(heads) or not depths:
            raise ValueError(
                f"Invalid depths/heads: {depths!r} / {heads!r}; expected equal non-empty lengths"
            )
        if img_size % patch:
            raise ValueError(f"Invalid img_size: {img_size}; not a multiple of patch {patch}")
        res = img_size // patch
        if res % 2 ** (len(depths) - 1):
            raise ValueError(
                f"Invalid img_size: {img_size}; {res} tokens per side cannot be merged "
                f"{len(depths) - 1} times"
            )
        self.img_size = img_size
        self.patch_embed = nn.Conv2d(in_channels, embed_dim, patch, stride=patch)
        self.patch_norm = nn.LayerNorm(embed_dim)
        stages: list[nn.Module] = []
        dim = embed_dim
        for i, (depth, h) in enumerate(zip(depths, heads, strict=True)):
            if dim % h:
                raise ValueError(f"Invalid heads: {h} at stage {i}; must divide dim {dim}")
            if res > window and res % window:
                raise ValueError(
                    f"Invalid window: {window}; stage {i} has {res}×{res} tokens, "
                    "not a multiple of the window"
                )
            blocks: list[nn.Module] = [
                _SwinBlock(dim, res, h, window, 0 if j % 2 == 0 else window // 2, mlp_ratio)
                for j in range(depth)
            ]
            if i < len(depths) - 1:
                blocks.append(_PatchMerging(dim, res))
                dim, res = 2 * dim, res // 2
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(
                f"Invalid input size {tuple(x.shape[-2:])}; this model expects "
                f"{self.img_size}×{self.img_size}"
            )
        h = self.patch_embed(x).flatten(2).transpose(1, 2)
        h = self.stages(self.patch_norm(h))
        return self.head(self.norm(h).mean(dim=1))


@register_model
def swin_t(**kw: Any) -> SwinTransformer:
    """Swin-T (embed 96, depths 2-2-6-2, heads 3-6-12-24, window 7); all sizes configurable."""
    return SwinTransformer(**kw)
