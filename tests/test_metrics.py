"""SSIM and PSNR: published reference values, the authors' computation, invariants, errors."""

from __future__ import annotations

import doctest
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import structural_similarity
from torch.nn import functional as F

from eapu import metrics
from eapu.metrics import psnr, psnr_per_image, ssim, ssim_per_image


def _camera_pair() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's reference pair: 'camera' and a noisy copy (σ = 20, legacy seed 5).

    The same construction as skimage/metrics/tests/test_structural_similarity.py
    (``np.random.seed(5)``, then ``np.random.randn``), whose published values we check.
    """
    cam = data.camera()
    noise = np.random.RandomState(5).randn(*cam.shape)
    noisy = np.clip(cam + 20.0 * noise, 0, 255).astype(cam.dtype)
    return cam, noisy


def test_gaussian_ssim_matches_the_published_ipol_value() -> None:
    # IPOL imdiff (https://www.ipol.im/pub/art/2011/g_lmii/, an independent C implementation
    # of Wang et al.'s SSIM), run on this pair by G. Lee for scikit-image (PR 4913, Sep 2020):
    # 0.357959091663361. scikit-image itself only asserts 3 decimals; we agree to 5e-6.
    cam, noisy = _camera_pair()
    got = ssim(cam[None], noisy[None], data_range=255)
    assert math.isclose(got, 0.357959091663361, abs_tol=1e-5)
    # The tolerance tells the windows apart: skimage's default misses by about 0.01.
    other = ssim(cam[None], noisy[None], data_range=255, window="uniform7")
    assert abs(other - 0.357959091663361) > 5e-3


def test_uniform7_matches_scikit_image_legacy_value() -> None:
    # skimage's test_mssim_vs_legacy: the default call's result on this pair (skimage 0.17).
    cam, noisy = _camera_pair()
    got = ssim(cam[None], noisy[None], data_range=255, window="uniform7")
    assert got == pytest.approx(0.3674518327910367, abs=1e-7)


def test_psnr_matches_the_published_ipol_value() -> None:
    # skimage's test_PSNR_vs_IPOL: 22.409353363576034 dB, asserted to 4 decimals there.
    cam, noisy = _camera_pair()
    assert psnr(cam[None], noisy[None], data_range=255) == pytest.approx(
        22.409353363576034, abs=1.5e-4
    )


def _authors_ssim(raw: torch.Tensor, dst: torch.Tensor, crop: int, y: bool) -> torch.Tensor:
    """Per-image SSIM re-typed from the authors' ``_ssim_single_torch`` / ``_ssim_torch``
    (Experiment_EaPU, train/train_srresnet/image_quality_assessment.py, lines 442-519):
    crop, BT.601 luma, ×255, C1/C2 on 255, conv2d without padding, population variance."""
    if crop:
        raw, dst = raw[..., crop:-crop, crop:-crop], dst[..., crop:-crop, crop:-crop]
    if y:
        luma = torch.tensor([[65.481], [128.553], [24.966]], dtype=raw.dtype)
        raw = (torch.matmul(raw.permute(0, 2, 3, 1), luma).permute(0, 3, 1, 2) + 16.0) / 255
        dst = (torch.matmul(dst.permute(0, 2, 3, 1), luma).permute(0, 3, 1, 2) + 16.0) / 255
    raw, dst = raw.double() * 255.0, dst.double() * 255.0
    # cv2.getGaussianKernel(11, 1.5): exp(-(i - 5)² / (2·1.5²)), normalised to sum 1.
    k = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5**2))
    k = k / k.sum()
    c = raw.shape[1]
    w = torch.outer(k, k).view(1, 1, 11, 11).expand(c, 1, 11, 11)

    def conv(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, padding=0, groups=c)

    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    mu1, mu2 = conv(raw), conv(dst)
    var1, var2 = conv(raw * raw) - mu1**2, conv(dst * dst) - mu2**2
    cov = conv(raw * dst) - mu1 * mu2
    num = (2 * mu1 * mu2 + c1) * (2 * cov + c2)
    den = (mu1**2 + mu2**2 + c1) * (var1 + var2 + c2)
    return (num / den).mean(dim=(1, 2, 3))


@pytest.mark.parametrize(
    ("shape", "crop", "y"),
    [((3, 1, 28, 28), 0, False), ((2, 3, 40, 36), 4, True), ((2, 3, 24, 24), 2, False)],
)
def test_gaussian_equals_the_authors_computation(
    shape: tuple[int, ...], crop: int, y: bool
) -> None:
    g = torch.Generator().manual_seed(3)
    gt = torch.rand(shape, generator=g, dtype=torch.float64)
    sr = (gt + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    want = _authors_ssim(sr, gt, crop, y).numpy()
    got = ssim_per_image(sr, gt, crop_border=crop, y_channel=y)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert ssim(sr, gt, crop_border=crop, y_channel=y) == pytest.approx(want.mean(), abs=1e-12)


def test_uniform7_equals_scikit_image_default_call() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((4, 3, 20, 22))
    y = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1)
    want = [
        structural_similarity(a, b, data_range=1.0, channel_axis=0)
        for a, b in zip(x, y, strict=True)
    ]
    np.testing.assert_array_equal(ssim_per_image(x, y, window="uniform7"), want)
    assert ssim(x, y, window="uniform7") == pytest.approx(np.mean(want), abs=1e-15)


@pytest.mark.parametrize("window", metrics.WINDOWS)
@pytest.mark.parametrize("shape", [(3, 28, 28), (2, 3, 16, 16)])
def test_identical_images_give_one(window: metrics.Window, shape: tuple[int, ...]) -> None:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    assert ssim(x, x.clone(), window=window) == 1.0
    np.testing.assert_array_equal(ssim_per_image(x, x, window=window), np.ones(shape[0]))


@pytest.mark.parametrize("window", metrics.WINDOWS)
def test_symmetric(window: metrics.Window) -> None:
    rng = np.random.default_rng(2)
    a, b = rng.random((3, 3, 24, 24)), rng.random((3, 3, 24, 24))
    for kw in ({}, {"crop_border": 3, "y_channel": True}):
        ab = ssim_per_image(a, b, window=window, **kw)  # type: ignore[arg-type]
        ba = ssim_per_image(b, a, window=window, **kw)  # type: ignore[arg-type]
        np.testing.assert_allclose(ab, ba, rtol=0, atol=1e-14)
    np.testing.assert_allclose(psnr_per_image(a, b), psnr_per_image(b, a), rtol=1e-15)


def test_batch_mean_is_the_mean_of_single_images() -> None:
    # The authors' AverageMeter: each image's SSIM, then the mean over images.
    rng = np.random.default_rng(4)
    a = rng.random((5, 1, 28, 28))
    b = np.clip(a + 0.3 * rng.standard_normal(a.shape), 0, 1)
    singles = [ssim(a[i : i + 1], b[i : i + 1]) for i in range(5)]
    assert ssim(a, b) == pytest.approx(np.mean(singles), abs=1e-15)
    # (N, H, W) is the same as one channel.
    assert ssim(a[:, 0], b[:, 0]) == ssim(a, b)


@pytest.mark.parametrize("y", [False, True])
def test_data_range_scales_with_the_images(y: bool) -> None:
    rng = np.random.default_rng(5)
    a = rng.random((2, 3, 20, 20))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    one = ssim(a, b, y_channel=y)
    assert ssim(255 * a, 255 * b, data_range=255, y_channel=y) == pytest.approx(one, abs=1e-12)
    # ... and the range enters C1, C2: the wrong range gives another number.
    assert abs(ssim(a, b, data_range=255, y_channel=y) - one) > 1e-3
    assert psnr(255 * a, 255 * b, data_range=255) == pytest.approx(psnr(a, b), abs=1e-9)


def test_psnr_formula_and_identical_images() -> None:
    x = np.zeros((2, 8, 8))
    y = x.copy()
    y[0] += 0.1  # MSE 0.01: 20 dB
    y[1] += 0.01  # MSE 1e-4: 40 dB
    np.testing.assert_allclose(psnr_per_image(x, y), [20.0, 40.0], rtol=1e-12)
    assert psnr(x, y) == pytest.approx(30.0, rel=1e-12)
    assert psnr(x, x) == math.inf


def test_shape_and_value_errors_are_named() -> None:
    a = np.zeros((2, 28, 28))
    with pytest.raises(ValueError, match=r"Invalid b: shape \(2, 28, 27\); allowed: the shape"):
        ssim(a, np.zeros((2, 28, 27)))
    with pytest.raises(ValueError, match=r"Invalid a: an array of shape \(28, 28\)"):
        ssim(a[0], a[0])
    with pytest.raises(ValueError, match=r"Invalid b: an array of shape \(1, 1, 2, 28, 28\)"):
        ssim(a[:, None], a[None, None])
    with pytest.raises(ValueError, match="Invalid a: an empty batch"):
        ssim(a[:0], a[:0])
    with pytest.raises(ValueError, match=r"Invalid a: images of 10×10 pixels; allowed: at least"):
        ssim(np.zeros((1, 10, 10)), np.zeros((1, 10, 10)))
    assert ssim(np.zeros((1, 10, 10)), np.zeros((1, 10, 10)), window="uniform7") == 1.0
    with pytest.raises(ValueError, match=r"Invalid crop_border: 9 leaves 10×10 .* at most 8"):
        ssim(a, a, crop_border=9)
    with pytest.raises(ValueError, match="Invalid crop_border: -1"):
        ssim(a, a, crop_border=-1)
    with pytest.raises(ValueError, match="Invalid y_channel: True for images of 1 channels"):
        ssim(a, a, y_channel=True)
    with pytest.raises(ValueError, match="Invalid window: 'gauss'; allowed: 'gaussian'"):
        ssim(a, a, window="gauss")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Invalid data_range: 0; allowed: a finite number > 0"):
        ssim(a, a, data_range=0)
    bad = a.copy()
    bad[1, 3, 4] = np.nan
    with pytest.raises(ValueError, match="Invalid b: 1 values are NaN or infinite"):
        psnr(a, bad)


def test_torch_inputs_on_any_device_and_dtype() -> None:
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(6))
    y = (x + 0.05).clamp(0, 1)
    want = ssim(x.double().numpy(), y.double().numpy())
    assert ssim(x.requires_grad_(), y) == pytest.approx(want, abs=1e-7)  # float32 in


def test_module_examples_run() -> None:
    result = doctest.testmod(metrics, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_evaluation_reports_the_standard_ssim_and_the_old_one_beside_it() -> None:
    """`image_metrics` (every denoise / SR evaluation): ``ssim`` is the Gaussian SSIM,
    ``ssim_uniform7`` the scikit-image default call eapu reported as ``ssim`` before."""
    from eapu.experiments import image_metrics

    g = torch.Generator().manual_seed(7)
    tgt = torch.rand(3, 1, 28, 28, generator=g)
    out = tgt + 0.2 * torch.randn(3, 1, 28, 28, generator=g)  # beyond [0, 1]: clamped
    m = image_metrics(out, tgt)
    o, t = out.clamp(0, 1).double().numpy(), tgt.double().numpy()
    assert m["ssim"] == pytest.approx(ssim(o, t), abs=1e-12)
    pairs = zip(o, t, strict=True)
    old = np.mean(
        [structural_similarity(ti, oi, data_range=1.0, channel_axis=0) for oi, ti in pairs]
    )
    assert m["ssim_uniform7"] == pytest.approx(old, abs=1e-12)
    assert m["psnr"] == pytest.approx(psnr(o, t), abs=1e-12)
    assert abs(m["ssim"] - m["ssim_uniform7"]) > 1e-3  # the two windows differ here


def test_a_run_records_both_ssims_and_refuses_images_the_window_does_not_fit(
    tmp_path: Path,
) -> None:
    from eapu.experiments import RunConfig, run

    fast = {"steps": 2, "eval_every": 2, "batch_size": 8, "eval_samples": 16}
    m = run(RunConfig(task="denoise", method="software", **fast), tmp_path / "ok")
    assert {"ssim", "ssim_uniform7", "psnr", "ssim_baseline", "ssim_uniform7_baseline"} <= set(m)
    with pytest.raises(ValueError, match=r"Invalid data: 'digits' has images of 8×8 pixels"):
        run(RunConfig(task="denoise", method="software", data="digits", **fast), tmp_path / "d")
