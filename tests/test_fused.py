"""The fused EaPU step (eapu.optim.fused): same-key reference, the rule's statistics, the base
optimizers' updates, reproducibility and resume, and the fallback to the unfused path."""

from __future__ import annotations

import ctypes
import hashlib
import io
import math
import os
import shutil
import stat
import subprocess
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from eapu.optim import AdamEaPU, InSituOptimizer, SGDEaPU, fused

needs_kernel = pytest.mark.skipif(not fused.available(), reason="no C compiler here")


def reference(dw: torch.Tensor, threshold: float, key: int) -> torch.Tensor:
    """Formula (4) in torch with the kernel's uniforms."""
    u = fused.counter_uniform(key, dw.numel(), dw.dtype).view(dw.shape)
    a = dw.abs()
    val = torch.where(a >= threshold, dw, dw.sign() * threshold)
    return torch.where(a > u * threshold, val, torch.zeros_like(dw))


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("key", [0, 7, 2**64 - 1])
def test_kernel_equals_the_same_key_reference(dtype: torch.dtype, key: int) -> None:
    g = torch.Generator().manual_seed(1)
    dw = (torch.rand(3001, generator=g, dtype=dtype) - 0.5) * 0.08  # a third above th
    out = fused.eapu_counter(dw, threshold=0.025, key=key)
    assert torch.equal(out, reference(dw, 0.025, key))


def test_counter_uniforms_are_uniform_and_independent() -> None:
    g = torch.Generator().manual_seed(2)
    keys = [12345, *torch.randint(0, 2**62, (2,), generator=g).tolist()]  # as the optimizers draw
    for dtype in (torch.float32, torch.float64):
        for key in keys:
            u = fused.counter_uniform(key, 100_000, dtype).double()
            assert u.min() >= 0 and u.max() < 1
            counts = torch.histc(u, bins=20, min=0, max=1)
            chi2 = ((counts - 5_000) ** 2 / 5_000).sum().item()
            assert chi2 < 50  # 19 degrees of freedom: P(chi2 > 50) ~ 1e-4
            pairs = [(u[:-lag], u[lag:]) for lag in (1, 2, 3, 16, 256, 1024)]
            pairs.append((u, fused.counter_uniform(key + 1, 100_000, dtype).double()))
            for a, b in pairs:
                r = torch.corrcoef(torch.stack([a, b]))[0, 1].item()
                assert abs(r) < 5 / math.sqrt(a.numel())
        # Two steps' keys: a cell written in one step is written in the other with the same
        # probability as any cell (p = 0.1 in both: P(both) = p²).
        u1, u2 = (fused.counter_uniform(k, 400_000, dtype) for k in keys[1:])
        both = ((u1 < 0.1) & (u2 < 0.1)).double().mean().item()
        assert abs(both - 0.01) < 5 * math.sqrt(0.01 * 0.99 / 400_000)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_unbiased_and_writes_with_probability_dw_over_threshold(dtype: torch.dtype) -> None:
    th, n = 0.025, 400_000
    for d in (0.004, -0.011, 0.02):
        dw = torch.full((n,), d, dtype=dtype)
        out = fused.eapu_counter(dw, threshold=th, key=int(d * 1e6) & 0xFFFF)
        p = abs(d) / th
        assert abs((out != 0).double().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)
        se = th * math.sqrt(p * (1 - p) / n)
        assert abs(out.double().mean().item() - d) < 5 * se
        assert torch.all((out == 0) | (out == math.copysign(th, d)))


BASES = [
    (torch.optim.Adam, {"lr": 1e-2}),
    (torch.optim.Adam, {"lr": 1e-2, "weight_decay": 0.1, "betas": (0.8, 0.99), "eps": 1e-6}),
    (torch.optim.AdamW, {"lr": 1e-2, "weight_decay": 0.1}),
    (torch.optim.SGD, {"lr": 0.1}),
    (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
]


@needs_kernel
@pytest.mark.parametrize(("base", "kw"), BASES)
def test_every_update_written_equals_the_base_optimizer(base, kw) -> None:
    # A threshold below every |ΔW| and no noise: the fused step is the base's step.
    torch.manual_seed(0)
    w0 = torch.randn(64, 33, dtype=torch.float64)
    grads = [torch.randn(64, 33, dtype=torch.float64) for _ in range(4)]
    ref, p = nn.Parameter(w0.clone()), nn.Parameter(w0.clone())
    opt_ref = base([ref], **kw)
    opt = InSituOptimizer([p], base, threshold=1e-300, sd_us=0.0, **kw)
    for g in grads:
        ref.grad, p.grad = g.clone(), g.clone()
        opt_ref.step()
        opt.step()
    torch.testing.assert_close(p, ref, rtol=1e-12, atol=1e-14)
    for k, v in opt_ref.state[ref].items():
        torch.testing.assert_close(opt.state[p][k], v, rtol=1e-12, atol=1e-14, msg=k)
    assert opt.ledger.summary().written == 4 * p.numel()


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_write_noise_is_normal_with_the_promised_sd(dtype: torch.dtype) -> None:
    w = nn.Parameter(torch.zeros(500, 400, dtype=dtype))
    sd_us, rwg = 2.0, 1 / 80
    opt = SGDEaPU([w], lr=1.0, sd_us=sd_us, rwg_per_us=rwg, threshold=0.01)
    w.grad = torch.full_like(w, -0.02)  # above the threshold: every cell written
    w.grad[:, :100] = 0  # never written: stays exactly 0
    opt.step()
    assert torch.count_nonzero(w[:, :100]) == 0
    err = (w[:, 100:] - 0.02).double().flatten() / (sd_us * rwg)
    n = err.numel()
    assert abs(err.mean().item()) < 5 / math.sqrt(n)
    assert err.std().item() == pytest.approx(1.0, rel=0.02)
    assert (err.abs() > 2).double().mean().item() == pytest.approx(0.0455, abs=0.003)
    assert (err**4).mean().item() == pytest.approx(3.0, rel=0.05)
    assert opt.ledger.summary().written == 500 * 300
    # The kernel draws the noise in Box-Muller pairs (the written cells of a chunk, in order):
    # the two of a pair are independent (their values and their squares uncorrelated), and
    # no chunk or pair repeats another's draws.
    z0, z1 = err[0::2], err[1::2]
    for a, b in ((z0, z1), (z0**2, z1**2), (err[:-1], err[1:])):
        assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1].item()) < 5 / math.sqrt(a.numel())
    assert torch.unique(err).numel() > 0.99 * n  # (float32 rounding makes a few equal)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sd_us", [0.0, 2.0])
def test_a_chunk_is_written_alike_after_a_dense_or_a_sparse_one(dtype, sd_us) -> None:
    # The kernel writes a 1024-cell chunk in place or cell by cell, as the chunk before it
    # wrote many cells or few: the cells of the second chunk must come out the same.
    g = torch.Generator().manual_seed(4)
    second = (torch.rand(1024, generator=g, dtype=dtype) - 0.5) * 0.01  # ~10 % written
    out = []
    for first in (torch.full((1024,), -0.5, dtype=dtype), torch.zeros(1024, dtype=dtype)):
        w = nn.Parameter(torch.zeros(2, 1024, dtype=dtype))
        opt = SGDEaPU([w], lr=1.0, threshold=0.025, sd_us=sd_us, rwg_per_us=1 / 80, seed=1)
        w.grad = -torch.stack([first, second])
        opt.step()
        out.append(w.detach()[1].clone())
    assert torch.equal(out[0], out[1])
    assert 0 < torch.count_nonzero(out[0]) < 300


def lenet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 10), nn.Linear(10, 3)
    )


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: range) -> None:
    for i in steps:
        g = torch.Generator().manual_seed(100 + i)
        x, y = torch.randn(16, 1, 8, 8, generator=g), torch.randn(16, 3, generator=g)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


@pytest.fixture(params=["fused", "unfused"])
def path(request, monkeypatch) -> str:
    if request.param == "fused" and not fused.available():
        pytest.skip("no C compiler here")
    monkeypatch.setenv("EAPU_FUSED", "1" if request.param == "fused" else "0")
    return request.param


def test_runs_are_reproducible_and_resume_exactly(path: str) -> None:
    runs = []
    for _ in range(2):
        m = lenet()
        opt = AdamEaPU(m.parameters(), lr=1e-2, seed=5)
        train(m, opt, range(6))
        runs.append([p.detach().clone() for p in m.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))

    m = lenet()
    opt = AdamEaPU(m.parameters(), lr=1e-2, seed=5)
    train(m, opt, range(3))
    buf = io.BytesIO()
    torch.save({"model": m.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    m2 = lenet(seed=9)
    m2.load_state_dict(ck["model"])
    opt2 = AdamEaPU(m2.parameters(), lr=1e-2, seed=0)
    opt2.load_state_dict(ck["opt"])
    train(m2, opt2, range(3, 6))
    assert all(torch.equal(a, b) for a, b in zip(runs[0], m2.parameters(), strict=True))
    assert opt2.ledger.summary().steps == 6


def test_both_paths_write_at_the_same_rate(path: str) -> None:
    # SGD, constant gradient: |ΔW| = 0.005, ΔWth = 0.025, so one cell in five is written.
    w = nn.Parameter(torch.zeros(300, 300))
    opt = SGDEaPU([w], lr=0.01, threshold=0.025, sd_us=0.0)
    w.grad = torch.full_like(w, 0.5)
    opt.step()
    rate = (w != 0).double().mean().item()
    assert abs(rate - 0.2) < 5 * math.sqrt(0.16 / w.numel())
    assert opt.ledger.summary().written == int((w != 0).sum())


@needs_kernel
def test_threads_change_nothing() -> None:
    out = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            # Tensors of several work items and of one, float32 and float64: the threads
            # take the items in any order.
            ws = [
                nn.Parameter(torch.linspace(-1, 1, 300_001).view(1, -1)),
                nn.Parameter(torch.linspace(-1, 1, 63).view(7, 9)),
                nn.Parameter(torch.linspace(-1, 1, 140_000, dtype=torch.float64).view(2, -1)),
            ]
            opt = AdamEaPU(ws, lr=1e-2, seed=3)
            for i in range(3):
                for w in ws:
                    g = torch.sin(torch.arange(w.numel(), dtype=w.dtype) * (0.1 + i))
                    w.grad = g.view_as(w)
                opt.step()
            out.append(([w.detach().clone() for w in ws], opt.ledger.table()))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(out[0][0], out[1][0], strict=True))
    assert torch.equal(out[0][1], out[1][1])
    assert out[0][1][:, :, 0].sum() > 0  # (something was written)


@needs_kernel
def test_nonfinite_gradients_are_skipped_and_counted() -> None:
    w = nn.Parameter(torch.zeros(10, 10))
    opt = AdamEaPU([w], lr=0.1, threshold=0.01, sd_us=0.0)
    g = torch.ones(10, 10)
    g[0, :3] = torch.tensor([math.nan, math.inf, -math.inf])
    w.grad = g
    opt.step()
    assert torch.all(w[0, :3] == 0) and torch.all(w[1:] == -0.1)
    s = opt.ledger.summary()
    assert s.skipped == 3 and s.written == 97
    assert torch.all(opt.state[w]["exp_avg"][0, :3] == 0)


def test_without_a_compiler_one_warning_and_the_unfused_path(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("EAPU_FUSED", "1")
    monkeypatch.setenv("EAPU_CACHE", str(tmp_path))
    monkeypatch.setattr(fused, "_compiler", lambda: None)
    monkeypatch.setattr(fused, "_lib", None)
    monkeypatch.setattr(fused, "_failed", False)
    with pytest.warns(RuntimeWarning, match="no C compiler"):
        assert not fused.available()
    m = lenet()
    opt = AdamEaPU(m.parameters(), lr=1e-2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(m, opt, range(2))
    assert not [w for w in caught if "fused" in str(w.message)]  # warned once, not per step
    assert opt.ledger.summary().steps == 2
    assert not fused.available()


@needs_kernel
def test_without_openmp_one_warning_one_thread_and_the_same_steps(monkeypatch, tmp_path) -> None:
    def run() -> list[torch.Tensor]:
        m = lenet()
        train(m, AdamEaPU(m.parameters(), lr=1e-2, seed=4), range(3))
        return [p.detach().clone() for p in m.parameters()]

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with_openmp = run()
        assert fused.multithreaded()
        monkeypatch.setenv("EAPU_CACHE", str(tmp_path))
        monkeypatch.setattr(fused, "_OPENMP", "-fno-such-option-eapu")  # the compiler refuses it
        monkeypatch.setattr(fused, "_lib", None)
        with pytest.warns(RuntimeWarning, match="runs on one thread"):
            assert fused.available()
        assert not fused.multithreaded()
        assert all(torch.equal(a, b) for a, b in zip(with_openmp, run(), strict=True))
    finally:
        torch.set_num_threads(threads)


def test_supports_only_what_the_kernel_computes() -> None:
    p = nn.Parameter(torch.zeros(4, 4))
    p.grad = torch.zeros(4, 4)
    ok = torch.optim.Adam([p])
    assert fused.supports(ok, ok.param_groups[0], p)
    for opt in (
        torch.optim.Adam([p], amsgrad=True),
        torch.optim.Adam([p], maximize=True),
        torch.optim.Adam([p], lr=torch.tensor(1e-3)),
        torch.optim.RMSprop([p]),
    ):
        assert not fused.supports(opt, opt.param_groups[0], p)
    half = nn.Parameter(torch.zeros(4, 4, dtype=torch.float16))
    half.grad = torch.zeros_like(half)
    assert not fused.supports(ok, ok.param_groups[0], half)


def test_eapu_counter_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="Invalid threshold: 0"):
        fused.eapu_counter(torch.zeros(3), threshold=0, key=1)
    with pytest.raises(ValueError, match=r"Invalid dw: torch\.int64"):
        fused.eapu_counter(torch.zeros(3, dtype=torch.int64), threshold=0.1, key=1)


@needs_kernel
def test_all_finite_looks_at_every_element(monkeypatch) -> None:
    ts = [torch.zeros(5), torch.ones(3, 4, dtype=torch.float64), torch.zeros(0)]
    assert fused.all_finite(ts)
    for bad in (math.nan, math.inf, -math.inf):
        ts[1][2, 3] = bad
        assert not fused.all_finite(ts)
        ts[1][2, 3] = 0
    assert not fused.all_finite([torch.zeros(4, 4).t()[:, :2]])  # not contiguous: "look"
    assert not fused.all_finite([torch.zeros(3, dtype=torch.float16)])
    monkeypatch.setenv("EAPU_FUSED", "0")
    assert not fused.all_finite([torch.zeros(3)])


@needs_kernel
def test_module_example_runs() -> None:
    import doctest

    assert doctest.testmod(fused, optionflags=doctest.NORMALIZE_WHITESPACE).failed == 0


# The kernel's cache on a shared machine: nothing anyone else could have written is loaded.

PLANTED = """
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen(MARKER, "w");
    if (f) fclose(f);
}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The kernel built once into a cache of its own, under a umask that lets the group
    write: the library's path."""
    if fused._compiler() is None:
        pytest.skip("no C compiler here")
    cache = tmp_path_factory.mktemp("built") / "cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EAPU_FUSED", "1")
        mp.setenv("EAPU_CACHE", str(cache))
        mp.setattr(fused, "_lib", None)
        mp.setattr(fused, "_failed", False)
        umask = os.umask(0o002)
        try:
            assert fused.available()
            assert fused.build_seconds() > 0
            path = fused.kernel_path()
        finally:
            os.umask(umask)
    assert path is not None
    return path


@pytest.fixture
def cache(monkeypatch, tmp_path) -> Path:
    """A cache directory of the test's own (not created yet), the kernel not loaded."""
    monkeypatch.setenv("EAPU_FUSED", "1")
    monkeypatch.setenv("EAPU_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fused, "_lib", None)
    monkeypatch.setattr(fused, "_failed", False)
    monkeypatch.setattr(fused, "_build_s", None)
    return tmp_path / "cache"


def planted(tmp_path: Path) -> tuple[Path, Path]:
    """A valid shared library whose constructor creates a marker file when it is loaded:
    (the library, the marker's path)."""
    cc = fused._compiler()
    assert cc is not None
    src, lib, marker = tmp_path / "planted.c", tmp_path / "planted.so", tmp_path / "loaded"
    src.write_text(PLANTED)
    subprocess.run(
        [cc, "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(lib), str(src)], check=True
    )
    return lib, marker


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def works() -> bool:
    """The loaded kernel computes formula (4) as the same-key reference does."""
    dw = (torch.rand(2000, generator=torch.Generator().manual_seed(3)) - 0.5) * 0.08
    return torch.equal(fused.eapu_counter(dw, threshold=0.025, key=5), reference(dw, 0.025, 5))


def test_a_build_leaves_a_private_cache_with_the_librarys_digest(built: Path) -> None:
    # (built under umask 002: the modes are set, not left to the umask)
    assert stat.S_IMODE(built.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(built.stat().st_mode) == 0o700
    digest = built.with_name(built.name + ".sha256")
    assert stat.S_IMODE(digest.stat().st_mode) == 0o600
    assert digest.read_text() == f"{sha256(built)}  {built.name}\n"  # (sha256sum -c reads it)
    assert sorted(p.name for p in built.parent.iterdir()) == [built.name, digest.name]


def test_a_verified_cache_loads_without_building(built: Path, cache: Path, monkeypatch) -> None:
    shutil.copytree(built.parent, cache)
    monkeypatch.setattr(fused, "_compile", lambda *a: pytest.fail("rebuilt a verified cache"))
    assert fused.available() and fused.build_seconds() == 0
    assert works()


@needs_kernel
@pytest.mark.parametrize("mode", [0o770, 0o702, 0o777], ids=oct)
def test_a_cache_directory_others_can_write_is_refused(mode: int, cache: Path) -> None:
    cache.mkdir()
    os.chmod(cache, mode)
    with pytest.warns(RuntimeWarning, match=rf"directory {cache} is writable by .*; make it"):
        assert not fused.available()
    assert list(cache.iterdir()) == []  # nothing built there
    m = lenet()
    opt = AdamEaPU(m.parameters(), lr=1e-2)
    train(m, opt, range(2))  # the unfused path, without another warning
    assert opt.ledger.summary().steps == 2


@needs_kernel
def test_a_cache_directory_of_someone_else_is_refused(cache: Path, monkeypatch) -> None:
    cache.mkdir(mode=0o700)
    monkeypatch.setattr(os, "getuid", lambda: cache.stat().st_uid + 1)
    with pytest.warns(RuntimeWarning, match=rf"directory {cache} is owned by uid \d+, not by"):
        assert not fused.available()


def test_a_cache_under_a_directory_others_can_write_is_refused(
    built: Path, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(fused, "_lib", None)
    monkeypatch.setattr(fused, "_failed", False)
    for sticky, ok in ((0o777, False), (0o1777, True)):  # sticky (as /tmp): names are kept
        shared = tmp_path / f"shared{sticky:o}"
        shared.mkdir()
        os.chmod(shared, sticky)
        shutil.copytree(built.parent, shared / "cache")
        monkeypatch.setenv("EAPU_CACHE", str(shared / "cache"))
        if ok:
            assert fused.available() and fused.build_seconds() == 0
        else:
            with pytest.warns(RuntimeWarning, match=rf"the directory {shared} above it is"):
                assert not fused.available()
            monkeypatch.setattr(fused, "_failed", False)


@pytest.mark.parametrize("digest", ["none", "another file's", "garbage"])
def test_a_planted_library_is_rebuilt_never_loaded(
    digest: str, built: Path, cache: Path, monkeypatch, tmp_path: Path
) -> None:
    lib, marker = planted(tmp_path)
    cache.mkdir(mode=0o700)
    path = fused.kernel_path()
    assert path is not None and path.parent == cache
    shutil.copy2(lib, path)
    record = path.with_name(path.name + ".sha256")
    if digest != "none":
        text = f"{sha256(built)}  {path.name}\n" if digest == "another file's" else "x\n"
        fd = os.open(record, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
    compiled = []

    def compile_copy(cc: str, flags: list[str], out: str) -> None:  # (a build, fast)
        compiled.append(out)
        shutil.copy2(built, out)

    monkeypatch.setattr(fused, "_compile", compile_copy)
    assert fused.available() and works()
    assert len(compiled) == 1 and not Path(compiled[0]).parent.exists()  # its temp dir gone
    assert not marker.exists()
    assert sha256(path) == sha256(built) != sha256(lib)
    assert record.read_text() == f"{sha256(built)}  {path.name}\n"
    ctypes.CDLL(str(lib))  # the marker does show a load
    assert marker.exists()


@needs_kernel
@pytest.mark.parametrize("what", ["library", "digest"])
@pytest.mark.parametrize("mode", [0o720, 0o702], ids=oct)
def test_a_library_or_digest_others_can_write_is_refused(
    what: str, mode: int, cache: Path, monkeypatch, tmp_path: Path
) -> None:
    lib, marker = planted(tmp_path)
    cache.mkdir(mode=0o700)
    path = fused.kernel_path()
    assert path is not None
    shutil.copy2(lib, path)
    record = path.with_name(path.name + ".sha256")
    record.write_text(f"{sha256(lib)}  {path.name}\n")  # what an intruder would write
    os.chmod(record, 0o600)
    os.chmod(path if what == "library" else record, mode)
    monkeypatch.setattr(fused, "_compile", lambda *a: pytest.fail("built over it"))
    target = path if what == "library" else record
    with pytest.warns(RuntimeWarning, match=rf"{what} {target} is writable by .*; remove it"):
        assert not fused.available()
    assert not marker.exists()


@needs_kernel
def test_a_symlinked_library_is_refused(cache: Path, tmp_path: Path, monkeypatch) -> None:
    lib, marker = planted(tmp_path)
    cache.mkdir(mode=0o700)
    path = fused.kernel_path()
    assert path is not None
    path.symlink_to(lib)
    path.with_name(path.name + ".sha256").write_text(f"{sha256(lib)}  {path.name}\n")
    monkeypatch.setattr(fused, "_compile", lambda *a: pytest.fail("built over it"))
    with pytest.warns(RuntimeWarning, match=rf"library {path} is a symbolic link"):
        assert not fused.available()
    assert not marker.exists()
