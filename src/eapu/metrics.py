"""Image quality as the field scores it: SSIM (Wang et al. 2004) and PSNR over a batch.

    >>> import numpy as np
    >>> from eapu.metrics import psnr, ssim
    >>> rng = np.random.default_rng(0)
    >>> x = rng.random((2, 28, 28))  # two grey images in [0, 1]
    >>> y = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1)
    >>> ssim(x, x)
    1.0
    >>> round(ssim(x, y), 3), round(ssim(x, y, window="uniform7"), 3), round(psnr(x, y), 2)
    (0.945, 0.946, 20.42)

SSIM's default here is the standard one: an 11×11 Gaussian window of σ = 1.5, K1 = 0.01,
K2 = 0.03, the population (not sample) covariance, and the mean of the SSIM map over the
positions where the whole window lies inside the image ("valid"). That is Wang et al.'s
definition (IEEE Trans. Image Process. 13, 600, 2004; their reference ssim_index.m) and the
authors' own evaluation code (LJinchang/Experiment_EaPU, commit e0e801d,
``train/train_srresnet/image_quality_assessment.py``):

- ``SSIM.__init__`` (lines 533-543): ``cv2.getGaussianKernel(11, 1.5)``, outer product: the
  normalised 11×11 Gaussian of σ = 1.5, the same taps as scikit-image's
  ``gaussian_weights=True, sigma=1.5`` (SciPy's Gaussian, radius int(3.5·1.5 + 0.5) = 5).
- ``_ssim_torch`` (lines 442-480): C1 = (0.01·255)², C2 = (0.03·255)² on images scaled to
  [0, 255] (line 517 multiplies by 255), i.e. data range 1 for images in [0, 1]; means and
  (co)variances by ``F.conv2d`` with ``padding=0`` ("valid", no padding mode enters);
  σ² = E[x²] − μ² (population); the map averaged over channels and positions per image
  (line 478).
- ``_ssim_single_torch`` (lines 483-519): crop ``crop_border`` pixels off every side, then,
  with ``only_test_y_channel``, RGB → BT.601 luma Y = (16 + 65.481 R + 128.553 G +
  24.966 B) / 255 (``rgb_to_ycbcr_torch``, lines 73-94), then float64. No rounding to uint8,
  no clamping here (the SRResNet clamps its own output to [0, 1], ``model/srresnet.py``).
- ``train/train_srresnet/train_srresnet.py`` (lines 54, 63, 124-125, 236-239) and
  ``dataset/super_resolution/dataset.py`` (lines 168-174, ``batch_size=1``): SRResNet ×4 is
  scored with ``crop_border`` = 4 (the upscale factor) on the Y channel, one test image per
  batch, and the reported SSIM is the mean over images (``AverageMeter``).

The authors' repository holds no evaluation code for the hardware experiments (denoising,
SRNet ×2 on MNIST); for grey images the computation above has no colour step, and eapu uses
it without cropping (``crop_border=0``): an assumption, as the paper does not say.

``window="uniform7"`` is scikit-image's default call (a 7×7 uniform window with the sample
covariance, N/(N−1)), which is what eapu's evaluation reported before this module
(`eapu.experiments.kinds.image_metrics`), so earlier numbers can be reproduced.

PSNR = 10 log10(data_range² / MSE) per image, averaged over images, as both eapu and the
authors compute it (``_psnr_torch``, lines 388-419, on the same cropped Y channel). The
authors add 1e-8 to the squared error on the 0-255 scale (a floor near 158 dB); here
identical images give +inf instead, and the difference is below 1e-6 dB wherever the PSNR is
below 60 dB.

Neither the authors nor this module downsample first, as Wang's later ``ssim.m`` (2009) does
(by max(1, round(min(H, W) / 256)), so from 384 pixels on); his ``ssim_index.m`` does not.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from . import validate

__all__ = [
    "WINDOWS",
    "WINDOW_SIZES",
    "Window",
    "psnr",
    "psnr_per_image",
    "ssim",
    "ssim_per_image",
]

Window = Literal["gaussian", "uniform7"]
#: The SSIM windows `ssim` knows: the standard Gaussian (default) and scikit-image's default.
WINDOWS: tuple[str, ...] = ("gaussian", "uniform7")

#: Side of each window (the Gaussian's: 2·int(3.5·1.5 + 0.5) + 1, SciPy's truncation): the
#: smallest image each one scores.
WINDOW_SIZES: dict[str, int] = {"gaussian": 11, "uniform7": 7}

#: ITU-R BT.601 luma of RGB in [0, 1], as the authors' ``rgb_to_ycbcr_torch`` (lines 82-84).
_LUMA = np.array([65.481, 128.553, 24.966]) / 255.0
_LUMA_OFFSET = 16.0 / 255.0


def ssim(
    a: Any,
    b: Any,
    *,
    window: Window = "gaussian",
    data_range: float = 1.0,
    crop_border: int = 0,
    y_channel: bool = False,
) -> float:
    """Mean SSIM over a batch of images (the mean of `ssim_per_image`).

    Args:
        a: images, numpy or torch, (N, H, W) or (N, C, H, W).
        b: images of the same shape (SSIM is symmetric: which one is the reference does not
            matter).
        window: ``"gaussian"`` (11×11, σ = 1.5, population covariance: Wang et al. and the
            authors) or ``"uniform7"`` (7×7 uniform, sample covariance: scikit-image's
            default, eapu's evaluation before this module).
        data_range: the range of the pixel values (1 for images in [0, 1], 255 for 8 bit);
            C1 = (0.01·data_range)², C2 = (0.03·data_range)².
        crop_border: pixels dropped on every side before scoring (the authors use the
            upscale factor for super-resolution).
        y_channel: score RGB images (C = 3) on their BT.601 luma only, as the authors do
            for SRResNet.

    Returns:
        The mean over images of each image's mean SSIM (over channels and positions).

    Raises:
        ValueError: shapes that differ or are not (N, H, W) / (N, C, H, W), an empty batch,
            images smaller than the window after cropping, ``y_channel`` without three
            channels, values that are NaN or infinite, or an unknown ``window``.
    """
    return float(
        np.mean(
            ssim_per_image(
                a,
                b,
                window=window,
                data_range=data_range,
                crop_border=crop_border,
                y_channel=y_channel,
            )
        )
    )


def ssim_per_image(
    a: Any,
    b: Any,
    *,
    window: Window = "gaussian",
    data_range: float = 1.0,
    crop_border: int = 0,
    y_channel: bool = False,
) -> np.ndarray:
    """SSIM of each image of a batch (float64, shape (N,)); arguments as `ssim`."""
    from skimage.metrics import structural_similarity

    validate.choice("window", window, WINDOWS)
    x, y = _prepare(a, b, data_range, crop_border, y_channel, WINDOW_SIZES[window])
    if window == "gaussian":
        # scikit-image's Wang et al. setting: its crop of (11 - 1) // 2 pixels after the
        # filter leaves exactly the "valid" positions the authors' padding-free conv2d gives.
        kw: dict[str, Any] = {"gaussian_weights": True, "sigma": 1.5}
        kw["use_sample_covariance"] = False
    else:
        kw = {"win_size": 7}
    return np.array(
        [
            structural_similarity(xi, yi, data_range=data_range, channel_axis=0, **kw)
            for xi, yi in zip(x, y, strict=True)
        ],
        dtype=np.float64,
    )


def psnr(
    a: Any,
    b: Any,
    *,
    data_range: float = 1.0,
    crop_border: int = 0,
    y_channel: bool = False,
) -> float:
    """Mean PSNR in dB over a batch of images (the mean of `psnr_per_image`).

    Args:
        a: images, numpy or torch, (N, H, W) or (N, C, H, W).
        b: images of the same shape.
        data_range: the range of the pixel values (1 for images in [0, 1]).
        crop_border: pixels dropped on every side before scoring.
        y_channel: score RGB images on their BT.601 luma only.

    Returns:
        The mean over images of 10·log10(data_range² / MSE); +inf if any image pair is
        identical.

    Raises:
        ValueError: as `ssim` (an image of at least one pixel is enough here).
    """
    return float(
        np.mean(
            psnr_per_image(
                a, b, data_range=data_range, crop_border=crop_border, y_channel=y_channel
            )
        )
    )


def psnr_per_image(
    a: Any,
    b: Any,
    *,
    data_range: float = 1.0,
    crop_border: int = 0,
    y_channel: bool = False,
) -> np.ndarray:
    """PSNR in dB of each image of a batch (float64, shape (N,)); arguments as `psnr`."""
    x, y = _prepare(a, b, data_range, crop_border, y_channel, 1)
    mse = np.mean((x - y) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / mse)


def _as_float64(name: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, on any device
        value = value.detach().cpu().double().numpy()
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim not in (3, 4):
        raise ValueError(
            f"Invalid {name}: an array of shape {arr.shape}; allowed: images (N, H, W) or "
            "(N, C, H, W)"
        )
    if not np.isfinite(arr).all():
        raise ValueError(
            f"Invalid {name}: {int((~np.isfinite(arr)).sum())} values are NaN or infinite; "
            "allowed: finite pixel values"
        )
    return arr


def _prepare(
    a: Any, b: Any, data_range: float, crop_border: int, y_channel: bool, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Both batches as float64 (N, C, H, W), cropped and (with ``y_channel``) as luma."""
    data_range = validate.number("data_range", data_range, low=0, low_open=True)
    crop_border = validate.integer("crop_border", crop_border, low=0)
    x, y = _as_float64("a", a), _as_float64("b", b)
    if x.shape != y.shape:
        raise ValueError(f"Invalid b: shape {y.shape}; allowed: the shape of a, {x.shape}")
    if len(x) == 0:
        raise ValueError(f"Invalid a: an empty batch of shape {x.shape}; allowed: N >= 1")
    if x.ndim == 3:
        x, y = x[:, None], y[:, None]
    h, w = x.shape[-2] - 2 * crop_border, x.shape[-1] - 2 * crop_border
    if min(h, w) < window:
        size = f"{x.shape[-2]}×{x.shape[-1]}"
        if crop_border:
            raise ValueError(
                f"Invalid crop_border: {crop_border} leaves {h}×{w} of images {size}; "
                f"allowed: at most {(min(x.shape[-2:]) - window) // 2}, so that the "
                f"{window}×{window} window fits"
            )
        raise ValueError(
            f"Invalid a: images of {size} pixels; allowed: at least {window}×{window} "
            "(the window's size)"
        )
    if crop_border:
        x = x[..., crop_border:-crop_border, crop_border:-crop_border]
        y = y[..., crop_border:-crop_border, crop_border:-crop_border]
    if y_channel:
        if x.shape[1] != 3:
            raise ValueError(
                f"Invalid y_channel: True for images of {x.shape[1]} channels; "
                "allowed: True only for RGB images (C = 3)"
            )
        # The authors' luma is for [0, 1]; the offset scales with the range so that
        # data_range=255 on 0-255 images gives the same SSIM as data_range=1 on [0, 1].
        x = np.einsum("nchw,c->nhw", x, _LUMA)[:, None] + _LUMA_OFFSET * data_range
        y = np.einsum("nchw,c->nhw", y, _LUMA)[:, None] + _LUMA_OFFSET * data_range
    return x, y
