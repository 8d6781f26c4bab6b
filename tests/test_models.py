"""Tests of eapu.models: the paper's weight counts, shapes, and a conformance run of every model."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from eapu import models
from eapu.models import count_weights, get_model, list_models

# name -> (tiny keyword arguments, input shape, expected output shape)
TINY: dict[str, tuple[dict[str, Any], tuple[int, ...], tuple[int, ...]]] = {
    "denoise_ae": ({}, (2, 1, 28, 28), (2, 1, 28, 28)),
    "srnet2": ({}, (2, 1, 16, 16), (2, 1, 32, 32)),
    "srnet2_authors": ({}, (2, 1, 16, 16), (2, 1, 32, 32)),
    "denoise_ae_authors": ({}, (2, 1, 28, 28), (2, 1, 28, 28)),
    "srnet4": ({}, (2, 1, 8, 8), (2, 1, 32, 32)),
    "lenet5": ({}, (2, 1, 28, 28), (2, 10)),
    "fc": ({}, (2, 1, 8, 8), (2, 10)),
    "small_cnn": ({}, (2, 1, 8, 8), (2, 10)),
    "preact_resnet18": ({"width": 4}, (2, 3, 32, 32), (2, 10)),
    "preact_resnet34": ({"width": 2, "num_classes": 5}, (2, 3, 32, 32), (2, 5)),
    "preact_resnet50": ({"width": 2}, (2, 3, 16, 16), (2, 10)),
    "preact_resnet101": ({"width": 1}, (2, 3, 16, 16), (2, 10)),
    "preact_resnet152": ({"width": 1, "num_classes": 100}, (2, 3, 16, 16), (2, 100)),
    "srresnet4": ({"channels": 8, "num_blocks": 2}, (2, 3, 6, 6), (2, 3, 24, 24)),
    "swin_t": (
        {
            "img_size": 16,
            "patch": 2,
            "embed_dim": 8,
            "depths": (2, 2),
            "heads": (2, 4),
            "window": 4,
            "num_classes": 7,
        },
        (2, 3, 16, 16),
        (2, 7),
    ),
}


def test_every_registered_model_has_a_tiny_config() -> None:
    assert set(list_models()) == set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_forward_backward(name: str) -> None:
    kw, in_shape, out_shape = TINY[name]
    model = get_model(name, seed=0, **kw)
    assert isinstance(model, nn.Module)
    x = torch.rand(in_shape, generator=torch.Generator().manual_seed(1))
    y = model(x)
    assert y.shape == out_shape
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}.{pname} got no gradient"
    assert count_weights(model) > 0


def test_paper_weight_counts() -> None:
    ae = get_model("denoise_ae")
    assert count_weights(ae) == 135
    assert [tuple(p.shape) for p in ae.parameters() if p.dim() > 1] == [
        (3, 1, 3, 3),
        (3, 3, 3, 3),
        (1, 3, 3, 3),
    ]
    assert count_weights(get_model("denoise_ae", stride=1, bias=False)) == 135
    # the paper's networks are bias-free: every parameter is one of the 135 / 369 weights
    assert sum(p.numel() for p in ae.parameters()) == 135
    with_bias = get_model("denoise_ae", bias=True)
    assert count_weights(with_bias) == 135
    assert sum(p.numel() for p in with_bias.parameters()) == 135 + 3 + 3 + 1
    sr = get_model("srnet2")
    assert count_weights(sr) == 369
    assert sum(p.numel() for p in sr.parameters()) == 369 + 5 + 4 + 1  # digital biases
    assert sum(p.numel() for p in get_model("srnet2", bias=False).parameters()) == 369
    assert [type(m) for m in sr.children()] == [nn.Conv2d, nn.Conv2d, nn.ConvTranspose2d]
    assert count_weights(get_model("srnet4")) == 561


def test_denoise_ae_code_and_sizes() -> None:
    ae = get_model("denoise_ae", seed=0)
    assert isinstance(ae, models.DenoiseAE)
    x = torch.rand(2, 1, 28, 28)
    code = ae.encode(x)
    assert code.shape == (2, 3, 13, 13)  # 507 / 784 = 64.67 %, the paper's compression rate
    assert code.numel() / x.numel() == pytest.approx(0.6467, abs=1e-4)
    y = ae(x)
    assert 0.0 <= y.min() and y.max() <= 1.0
    assert 0.0 < get_model("denoise_ae", out_activation="sigmoid")(x).min()
    for side in (8, 9, 16, 27):
        assert ae(torch.rand(1, 1, side, side)).shape == (1, 1, side, side)
    flat = get_model("denoise_ae", stride=1, out_activation="none")
    assert flat(torch.rand(1, 1, 10, 10)).shape == (1, 1, 10, 10)
    with pytest.raises(ValueError, match="stride"):
        get_model("denoise_ae", stride=3)
    with pytest.raises(
        ValueError, match=r"Invalid out_activation: 'tanh'; allowed: 'sigmoid', 'clamp', 'none'"
    ):
        get_model("denoise_ae", out_activation="tanh")


@pytest.mark.parametrize("scale,side", [(2, 7), (2, 16), (4, 5), (3, 4)])
def test_srnet_scales(scale: int, side: int) -> None:
    sr = models.SRNet(scale=scale)
    assert sr(torch.rand(1, 1, side, side)).shape == (1, 1, scale * side, scale * side)


def test_srnet_validation() -> None:
    with pytest.raises(ValueError, match="up_kernel"):
        models.SRNet(scale=2, up_kernel=3)
    with pytest.raises(ValueError, match="kernels"):
        models.SRNet(kernels=(4, 3))
    with pytest.raises(ValueError, match="scale"):
        models.SRNet(scale=1)


def test_preact_resnet18_parameter_count() -> None:
    net = get_model("preact_resnet18")
    assert sum(p.numel() for p in net.parameters()) == 11_171_146  # kuangliu PreActResNet18


def test_preact_resnet_shapes_and_weight_tensors() -> None:
    net = get_model("preact_resnet152", width=1, num_classes=100)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 3 * (3 + 8 + 36 + 3) + 4  # stem, 3 per bottleneck, 4 shortcuts
    assert net.linear.in_features == 8 * 4
    with pytest.raises(ValueError, match="width"):
        get_model("preact_resnet18", width=0)


def test_srresnet_defaults() -> None:
    net = get_model("srresnet4")
    assert len(net.body) == 16
    assert net.head[0].out_channels == 64
    assert sum(isinstance(m, nn.PixelShuffle) for m in net.modules()) == 2
    with pytest.raises(ValueError, match="scale"):
        models.SRResNet(scale=3)


def test_swin_t_default_size_and_validation() -> None:
    swin = get_model("swin_t")
    assert sum(p.numel() for p in swin.parameters()) == 28_288_354  # Swin-T, 1000 classes
    with pytest.raises(ValueError, match="window"):
        models.SwinTransformer(img_size=24, patch=2, depths=(2,), heads=(3,), window=5)
    tiny = get_model("swin_t", **TINY["swin_t"][0])
    with pytest.raises(ValueError, match="input size"):
        tiny(torch.rand(1, 3, 32, 32))


def test_swin_shifted_window_mask() -> None:
    block = models._SwinBlock(dim=4, resolution=8, heads=1, window=4, shift=2, mlp_ratio=1.0)
    mask = block.attn_mask
    assert mask is not None and mask.shape == (4, 16, 16)
    assert (mask[0] == 0).all()  # the top-left window is contiguous after the roll
    assert (mask[3] != 0).any()  # the bottom-right one mixes wrapped-around regions
    assert torch.equal(mask, mask.transpose(1, 2))
    # a single window (resolution <= window) falls back to unshifted attention
    small = models._SwinBlock(dim=4, resolution=4, heads=1, window=7, shift=3, mlp_ratio=1.0)
    assert small.shift == 0 and small.window == 4 and small.attn_mask is None


def test_swin_tokens_do_not_leak_across_shifted_regions() -> None:
    """With zeroed MLP, a change in one corner token reaches only its (shifted) window."""
    torch.manual_seed(0)
    block = models._SwinBlock(dim=4, resolution=8, heads=1, window=4, shift=2, mlp_ratio=1.0)
    nn.init.zeros_(block.mlp[2].weight)
    nn.init.zeros_(block.mlp[2].bias)
    x = torch.randn(1, 64, 4)
    x2 = x.clone()
    x2[0, 0] += 1.0  # token (0, 0): after the roll by -2 it lies at (6, 6), a wrapped region
    changed = (block(x2) - block(x)).abs().sum(-1).view(8, 8) > 1e-6
    rows, cols = changed.nonzero(as_tuple=True)
    # only tokens in rows 0-1 and columns 0-1 (the same wrapped region) may change
    assert rows.max() <= 1 and cols.max() <= 1


def test_fc_and_small_cnn_configurable() -> None:
    mlp = get_model("fc", sizes=(16, 5, 3))
    assert [m.out_features for m in mlp if isinstance(m, nn.Linear)] == [5, 3]
    assert count_weights(get_model("fc")) == 64 * 32 + 32 * 24 + 24 * 10
    with pytest.raises(ValueError, match="sizes"):
        get_model("fc", sizes=(10,))
    assert get_model("lenet5", in_channels=3, img_size=32)(torch.rand(1, 3, 32, 32)).shape == (
        1,
        10,
    )
    assert get_model("small_cnn", img_size=16)(torch.rand(1, 1, 16, 16)).shape == (1, 10)


def test_registry() -> None:
    assert "preact_resnet18" in list_models("preact_*")
    assert models.model_info("srnet2").description.startswith("SRNet")
    with pytest.raises(ValueError, match=r"available: .*denoise_ae"):
        get_model("resnet9000")
    with pytest.raises(ValueError, match="already registered"):
        models.register_model(models.srnet2)


def test_seeded_init_is_reproducible_and_isolated() -> None:
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = get_model("small_cnn", seed=7)
    after = torch.rand(3)
    b = get_model("small_cnn", seed=7)
    assert torch.equal(before, after)  # the global RNG was not consumed
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_small_cnn_learns_digits_quickly() -> None:
    from eapu.data import batches, get_dataset

    train = get_dataset("digits", split="train")
    test = get_dataset("digits", split="test")
    net = get_model("small_cnn", seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        for x, y in batches(train, 32, gen):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    with torch.no_grad():
        acc = (net(test.images).argmax(1) == test.labels).float().mean().item()
    assert acc > 0.9


def test_the_authors_variants_are_labelled_and_differ_only_where_said() -> None:
    """sigmoid output and Kaiming-normal weights (the authors' SR code), the same layers."""
    a, b = get_model("srnet2", seed=0), get_model("srnet2_authors", seed=0)
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]
    assert b.out_activation == "sigmoid" and a.out_activation == "none"
    out = b(torch.randn(4, 1, 8, 8))
    assert bool(((out > 0) & (out < 1)).all())
    fan_in = 1 * 5 * 5
    w = get_model("srnet2_authors", seed=0, channels=(400, 4)).conv1.weight
    assert abs(float(w.std()) - (2 / fan_in) ** 0.5) < 0.03  # Kaiming normal: sqrt(2 / fan_in)
    assert "model/srresnet.py" in (models.model_info("srnet2_authors").factory.__doc__ or "")
