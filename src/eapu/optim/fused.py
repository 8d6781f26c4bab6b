"""A fused EaPU step on CPU: one pass per analog tensor does the base optimizer's update
(Adam, AdamW or SGD), the EaPU decision and the weight-level write.

On the unfused path a step makes several passes over each weight tensor (the base's
update into a copy, ΔW, max |ΔW|, the draws, the write). Fused, each cell is read and written
once: the kernel (``fused_kernel.c``, plain C, no torch headers) computes ΔW from the
gradient and the optimizer's state, decides with formula (4), and writes a chosen cell as
w + ΔWn + Rwg·N(0, SD εcell); an unchosen cell keeps its value. The weights are read only
where ΔW needs them (weight decay, AdamW's decoupled decay included: it is part of ΔW and
goes through the rule as on the unfused path) or where a cell is written; where few cells
are written (under 4 of a 1024-cell chunk) only those cells' weights are read and stored,
elsewhere the kernel streams whole blocks of weights, which measured faster there. Its
randomness is counter-based: a float32 cell i decides with the uniform ``hash32(i * (k2 | 1) + k1)``
(Wellons' lowbias32 of an odd-stride counter; a float64 cell with SplitMix64's output
function of (key, i)). The write noise comes in Box-Muller pairs (R cos θ and R sin θ, two
independent normals) for the written cells of a chunk of 1024 cells in their order, each
pair hashed from the chunk's start and the pair's rank under a second key. One key is drawn
per step from the optimizer's rule generator and the noise's key is hashed apart from it (so
the decisions do not depend on the noise): a run is reproducible from its seed, a resumed
run continues exactly, and how the work is split over threads changes nothing (the threads,
torch's own OpenMP pool, take items of 64 chunks from a shared counter, so a thread on a busy
core holds no one up).
The draws differ from the unfused path's (same distribution, other numbers). The
Box-Muller logarithm, cosine and sine are polynomials (relative error below 1e-7 in float32,
1e-8 in float64) so that they vectorise; float32 normals use 24-bit uniforms, so |N| < 5.8.

The kernel is compiled at first use with the C compiler (``$CC``, else ``cc``/``gcc``), in a
second, into ``$EAPU_CACHE`` (default ``~/.cache/eapu``), keyed by the source, the compiler
and the CPU, with ``-fopenmp`` (without it, and a warning, where the compiler has no OpenMP:
the step then runs on one thread). Without a compiler (or if the build fails) a warning is
given once and the optimizers take the unfused path. ``EAPU_FUSED=0`` turns the fused path off.

Loading a library runs its code, so the cache must be the user's alone: the directory is
created 0700, and it, the library and the file beside it that records the library's SHA-256
at its build (``fused_kernel-*.so.sha256``, ``sha256sum`` format) must be owned by the user
and not writable by group or others, nor may a directory above the cache be (unless it is
root's or the user's, and sticky where others can write it, as ``/tmp``). Otherwise one
warning names the path and what to do, and the optimizers take the unfused path, as where
there is no compiler. A library whose SHA-256 is not the recorded one (or has none) is
rebuilt, never loaded. A build goes to a private temporary directory, is loaded from there
and then renamed into place (0700, its digest 0600), so what is loaded is what was built.
A file the user wrote into the cache with a matching digest is trusted: the checks are
against other users, not against the user's own processes.

>>> import torch
>>> from eapu.optim.fused import eapu_counter
>>> eapu_counter(torch.tensor([0.5, -0.02, 0.0]), threshold=0.025, key=8)
tensor([ 0.5000, -0.0250,  0.0000])
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from .. import validate

__all__ = [
    "FusedItem",
    "all_finite",
    "available",
    "build_seconds",
    "counter_uniform",
    "eapu_counter",
    "kernel_path",
    "mix64",
    "multithreaded",
    "step",
    "supports",
]

_SOURCE = Path(__file__).with_name("fused_kernel.c")
_FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]
_FLAGS += ["-fPIC", "-shared"]
# Threads: OpenMP's (GCC links libgomp.so.1, the copy torch has loaded, so the step shares
# torch's thread pool). A compiler without OpenMP builds the kernel without it: one thread.
_OPENMP = "-fopenmp"
_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_DTYPES = (torch.float32, torch.float64)
_KIND = {torch.optim.Adam: 0, torch.optim.AdamW: 1, torch.optim.SGD: 2}


class _Job(ctypes.Structure):
    # The layout of eapu_job in fused_kernel.c.
    _fields_ = [
        ("param", ctypes.c_void_p),
        ("grad", ctypes.c_void_p),
        ("exp_avg", ctypes.c_void_p),
        ("exp_avg_sq", ctypes.c_void_p),
        ("numel", ctypes.c_int64),
        ("dtype", ctypes.c_int32),
        ("kind", ctypes.c_int32),
        ("lr", ctypes.c_double),
        ("beta1", ctypes.c_double),
        ("beta2", ctypes.c_double),
        ("eps", ctypes.c_double),
        ("weight_decay", ctypes.c_double),
        ("bias_correction1", ctypes.c_double),
        ("bias_correction2_sqrt", ctypes.c_double),
        ("step", ctypes.c_void_p),
        ("step_dtype", ctypes.c_int32),
        ("momentum", ctypes.c_double),
        ("dampening", ctypes.c_double),
        ("nesterov", ctypes.c_int32),
        ("first", ctypes.c_int32),
        ("threshold", ctypes.c_double),
        ("noise_sd", ctypes.c_double),
        ("rule_key", ctypes.c_uint64),
        ("noise_key", ctypes.c_uint64),
        ("index", ctypes.c_int64),
        ("written", ctypes.c_int64),
        ("skipped", ctypes.c_int64),
    ]


_lock = threading.Lock()
_lib: Any = None
_failed = False
_build_s: float | None = None


def _cache_dir() -> Path:
    return Path(os.environ.get("EAPU_CACHE") or Path.home() / ".cache" / "eapu")


def _cpu_id() -> str:
    """What ``-march=native`` depends on: the CPU's flags (Linux) or its name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _compiler() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def kernel_path() -> Path | None:
    """Where the compiled kernel for this source, compiler and CPU lives (None: no compiler)."""
    cc = _compiler()
    if cc is None:
        return None
    flags = " ".join([*_FLAGS, _OPENMP])
    ident = "\0".join([_SOURCE.read_text(), cc, flags, _cpu_id(), sys.platform])
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return _cache_dir() / f"fused_kernel-{digest}.so"


def _compile(cc: str, flags: list[str], out: str) -> str | None:
    """Compiles the kernel into ``out``; the compiler's complaint, or None if it built."""
    res = subprocess.run(
        [cc, *flags, "-o", out, str(_SOURCE), "-lm"], capture_output=True, text=True
    )
    return None if res.returncode == 0 else res.stderr.strip()[-2000:]


class _UnsafeCache(RuntimeError):
    """The kernel's cache (its directory, the library or its digest) could be written by
    someone else: nothing in it is loaded."""


def _check_private(path: Path, st: os.stat_result, what: str) -> None:
    """Raise `_UnsafeCache` unless ``path`` (``st`` its stat) is the user's and not writable
    by group or others (on a system with user ids)."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    fix = (
        f"make it yours alone (chmod go-w {path}) or set EAPU_CACHE to a directory only you "
        "can write"
        if what == "directory"
        else f"remove it (rm {path}) and it is rebuilt"
    )
    if uid is not None and st.st_uid != uid:
        raise _UnsafeCache(
            f"refusing the kernel cache: {what} {path} is owned by uid {st.st_uid}, not by "
            f"you (uid {uid}); {fix}"
        )
    if uid is not None and st.st_mode & 0o022:
        who = (
            "group and others"
            if st.st_mode & 0o022 == 0o022
            else ("group" if st.st_mode & 0o020 else "others")
        )
        raise _UnsafeCache(
            f"refusing the kernel cache: {what} {path} is writable by {who} (mode "
            f"{stat.S_IMODE(st.st_mode):#o}); {fix}"
        )


def _private_dir(path: Path) -> None:
    """The cache directory, created 0700 where missing; refused unless it is private and
    every directory above it (as named and as resolved) is root's or the user's and not
    writable by group or others unless sticky (``/tmp``): otherwise someone could rename
    the cache away and put another in its place between its check and the load."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.stat(path)  # (through a symlink: the directory it names is what counts)
    if not stat.S_ISDIR(st.st_mode):
        raise _UnsafeCache(f"refusing the kernel cache: {path} is not a directory")
    _check_private(path, st, "directory")
    if not hasattr(os, "getuid"):
        return
    uid = os.getuid()
    above = set(Path(os.path.abspath(path)).parents) | set(Path(os.path.realpath(path)).parents)
    for d in sorted(above):
        sd = os.stat(d)
        shared = sd.st_mode & 0o022 and not sd.st_mode & stat.S_ISVTX
        if sd.st_uid not in (0, uid) or shared:
            why = (
                f"is owned by uid {sd.st_uid}"
                if sd.st_uid not in (0, uid)
                else f"is writable by others (mode {stat.S_IMODE(sd.st_mode):#o})"
            )
            raise _UnsafeCache(
                f"refusing the kernel cache {path}: the directory {d} above it {why}, so the "
                "cache could be replaced under it; set EAPU_CACHE to a directory in a tree "
                "only you (and root) can write"
            )


def _read_private(path: Path, what: str) -> bytes | None:
    """The bytes of a cache file, None where it is missing; refused unless it is a regular
    file (not a symlink) of the user's that group and others cannot write."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        why = "is a symbolic link" if e.errno == errno.ELOOP else f"cannot be read ({e.strerror})"
        raise _UnsafeCache(
            f"refusing the kernel cache: {what} {path} {why}; remove it (rm {path}) and it is "
            "rebuilt"
        ) from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _UnsafeCache(f"refusing the kernel cache: {what} {path} is not a file")
        _check_private(path, st, what)
        return f.read()


def _digest_path(path: Path) -> Path:
    """Where the SHA-256 of the library at ``path`` is recorded (``sha256sum`` format)."""
    return path.with_name(path.name + ".sha256")


def _verified(path: Path) -> bool:
    """Whether the cached library at ``path`` is there and its SHA-256 is the one recorded
    when it was built (False: build it again). Refuses (`_UnsafeCache`) a library or digest
    that someone else could have written."""
    lib = _read_private(path, "library")
    recorded = _read_private(_digest_path(path), "digest")
    if lib is None or recorded is None:
        return False
    words = recorded.split()
    return bool(words) and words[0].decode("ascii", "replace") == hashlib.sha256(lib).hexdigest()


def _load(path: str) -> Any:
    lib = ctypes.CDLL(path)
    lib.eapu_fused_step.argtypes = [ctypes.POINTER(_Job), ctypes.c_int, ctypes.c_int]
    lib.eapu_fused_step.restype = ctypes.c_int
    lib.eapu_all_finite.restype = ctypes.c_int
    lib.eapu_openmp.restype = ctypes.c_int
    return lib


def _build() -> Any:
    """The kernel, loaded from the cache where its library is verified, else built.

    The cache directory (created 0700) must be the user's and not writable by group or
    others, and so must the library and the file recording its SHA-256; otherwise
    `_UnsafeCache` is raised and nothing is loaded. A library whose SHA-256 is not the one
    recorded at its build (or has none) is built again, never loaded. A build happens in a
    private temporary directory in the cache; the library (0700) is hashed, loaded from
    there and then renamed into place after its digest (0600), so what is loaded is what
    was built, and a concurrent first use never sees half a file.
    """
    global _build_s
    cc = _compiler()
    path = kernel_path()
    if cc is None or path is None:
        raise RuntimeError("no C compiler found (tried $CC, cc, gcc, clang)")
    _private_dir(path.parent)
    if _verified(path):
        _build_s = 0.0
        # The directory is private, so only the user could swap the file since it was hashed.
        return _load(str(path))
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=path.parent))  # 0700
    try:
        out = str(tmp / path.name)
        if _compile(cc, [*_FLAGS, _OPENMP], out) is not None:
            err = _compile(cc, _FLAGS, out)
            if err is not None:
                raise RuntimeError(f"{cc} failed: {err}")
            warnings.warn(
                f"eapu: {cc} cannot build with {_OPENMP}; the fused EaPU step runs on one thread",
                RuntimeWarning,
                stacklevel=4,
            )
        os.chmod(out, 0o700)  # (the linker leaves the mode to the umask)
        with open(out, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        lib = _load(out)
        digest_tmp = tmp / "digest"
        fd = os.open(digest_tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{digest}  {path.name}\n")
        os.replace(digest_tmp, _digest_path(path))
        os.replace(out, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _build_s = time.perf_counter() - t0
    return lib


def _kernel() -> Any:
    """The loaded kernel, building it at first use; None where it cannot be had."""
    global _lib, _failed
    if _lib is not None or _failed:
        return _lib
    with _lock:
        if _lib is None and not _failed:
            try:
                _lib = _build()
            except (OSError, RuntimeError) as e:
                _failed = True
                warnings.warn(
                    f"eapu: the fused EaPU step is unavailable ({e}); using the unfused path",
                    RuntimeWarning,
                    stacklevel=3,
                )
    return _lib


def available() -> bool:
    """Whether the fused path can be used here (``EAPU_FUSED=0`` turns it off)."""
    if os.environ.get("EAPU_FUSED", "1") == "0":
        return False
    return _kernel() is not None


def multithreaded() -> bool:
    """Whether the fused step runs on torch's threads (the kernel was built with OpenMP);
    False where the kernel is unavailable or runs on the calling thread only."""
    return available() and bool(_lib.eapu_openmp())


def build_seconds() -> float | None:
    """Seconds the kernel's build took in this process (0: taken from the cache; None: not
    built yet or unavailable)."""
    return _build_s


def supports(base: Optimizer, group: dict[str, Any], p: Tensor) -> bool:
    """Whether ``p`` (a weight-level analog parameter of ``group`` under the EaPU rule) can
    take the fused step: a CPU tensor of float32/64 with a dense gradient of the same kind
    (another layout than the plain one is stepped in a contiguous copy, so the draws follow
    the cells' logical order), and a base that is exactly torch's Adam, AdamW or SGD without
    amsgrad, maximize, capturable, differentiable, tensor lr or gradient scaling."""
    kind = _KIND.get(type(base))
    g = p.grad
    if kind is None or g is None or not p.is_cpu or p.dtype not in _DTYPES:
        return False
    if g.dtype != p.dtype or g.is_sparse or g.shape != p.shape:
        return False
    if type(group.get("lr")) not in (float, int) or group.get("maximize"):
        return False
    if group.get("differentiable") or getattr(base, "grad_scale", None) is not None:
        return False
    state = base.state.get(p)
    if state:
        t = state.get("momentum_buffer" if kind == 2 else "exp_avg")
        if isinstance(t, Tensor) and (t.dtype != p.dtype or not t.is_cpu):
            return False
    if kind == 2:
        return True
    if group.get("amsgrad") or group.get("capturable"):
        return False
    betas = group.get("betas")
    return isinstance(betas, tuple) and all(type(b) in (float, int) for b in betas)


def all_finite(tensors: Sequence[Tensor]) -> bool:
    """True if every element of every tensor is finite, checked in one C pass; False if
    one is not, or if the kernel is unavailable or a tensor is not a contiguous float32 or
    float64 CPU tensor (the caller then looks itself). Cheaper than torch's checks for a
    few small tensors: what the optimizers use on the digital parameters' gradients."""
    for t in tensors:
        if t.dtype not in _DTYPES or not t.is_cpu or t.is_sparse or not t.is_contiguous():
            return False
    if os.environ.get("EAPU_FUSED", "1") == "0" or _kernel() is None:
        return False
    n = len(tensors)
    ptrs, numels, dtypes = (ctypes.c_void_p * n)(), (ctypes.c_int64 * n)(), (ctypes.c_int32 * n)()
    for k, t in enumerate(tensors):
        ptrs[k], numels[k], dtypes[k] = t.data_ptr(), t.numel(), int(t.dtype == torch.float64)
    return bool(_lib.eapu_all_finite(ptrs, numels, dtypes, n))


def mix64(z: int) -> int:
    """SplitMix64's output function (the kernel's hash), on Python ints."""
    z &= _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def counter_uniform(key: int, n: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """The kernel's uniforms on [0, 1) for cells ``0..n-1`` under ``key``, in torch: the
    same-key reference for tests. float32: the top 24 bits of
    ``hash32((i * (k2 | 1) + k1) mod 2^32)`` (``k1``, ``k2`` the key's low and high 32 bits,
    ``k1`` shifted by ``(i >> 32) * 0x9E3779B9`` past 2^32 cells; hash32 is Wellons'
    lowbias32); float64: the top 53 bits of ``mix64(key + (i + 1) * 0x9E3779B97F4A7C15)``.
    """
    key &= _MASK
    i = torch.arange(n, dtype=torch.int64)
    if dtype == torch.float64:
        z = (i + 1) * _signed(_GOLDEN) + _signed(key)  # int64 arithmetic wraps like uint64
        z = (z ^ _shr(z, 30)) * _signed(0xBF58476D1CE4E5B9)
        z = (z ^ _shr(z, 27)) * _signed(0x94D049BB133111EB)
        z = z ^ _shr(z, 31)
        return _shr(z, 11).double() * 2.0**-53
    m32 = 0xFFFFFFFF
    k1 = ((key & m32) + (i >> 32) * 0x9E3779B9) & m32
    x = _hash32((i & m32) * ((key >> 32) | 1) + k1)  # wraps in int64: low bits exact
    return (x >> 8).to(dtype) * 2.0**-24


def _hash32(x: Tensor) -> Tensor:
    """lowbias32 on uint32 values held in int64."""
    m32 = 0xFFFFFFFF
    x = x & m32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & m32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & m32
    return x ^ (x >> 16)


def _shr(x: Tensor, k: int) -> Tensor:
    """Logical right shift of int64 values read as uint64."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def _signed(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


def eapu_counter(dw: Tensor, *, threshold: float, key: int) -> Tensor:
    """Formula (4) with the kernel's counter-based draws: ΔWn shaped like ``dw`` (0 where
    nothing is written), cell i deciding with ``counter_uniform(key, dw.numel())[i]``.

    The kernel stepping SGD at lr 1 from 0 with the gradient -ΔW and no write noise, so
    what it writes is ΔWn itself. ``dw``: float32/64 on CPU, finite; ``threshold`` > 0.
    """
    validate.number("threshold", threshold, low=0, low_open=True)
    if dw.device.type != "cpu" or dw.dtype not in (torch.float32, torch.float64):
        raise ValueError(
            f"Invalid dw: {dw.dtype} on {dw.device}; allowed: float32 or float64 on CPU"
        )
    lib = _kernel()
    if lib is None:
        raise RuntimeError("the fused kernel is unavailable; check eapu.optim.fused.available()")
    out = torch.zeros_like(dw, memory_format=torch.contiguous_format)
    grad = dw.neg().contiguous()
    job = _Job(param=out.data_ptr(), grad=grad.data_ptr(), numel=dw.numel(), kind=2)
    job.index = -1  # the key as given
    job.dtype, job.lr, job.threshold, job.rule_key = (
        int(dw.dtype == torch.float64),
        1.0,
        threshold,
        key & _MASK,
    )
    if lib.eapu_fused_step(ctypes.byref(job), 1, 1) != 0:
        raise MemoryError("the fused EaPU step could not allocate its counters")
    return out


@dataclass(frozen=True)
class FusedItem:
    """One analog parameter for the fused step."""

    group: dict[str, Any]
    param: Tensor
    threshold: float  # ΔWth in weight units, > 0
    noise_sd: float  # Rwg · SD εcell in weight units (0: no write noise)
    index: int  # the parameter's position among the analog ones (keys its draws)


def _draw_key(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**62, (), generator=generator, dtype=torch.int64))


def step(
    base: Optimizer,
    items: Sequence[FusedItem],
    *,
    generator: torch.Generator,
) -> list[list[int]]:
    """Take the fused step for ``items`` (each passed `supports`); the base's state for
    them (``step``, ``exp_avg``, ``exp_avg_sq`` / ``momentum_buffer``) is kept exactly as
    the base keeps it. Returns each item's ledger row (written, pulses = written, 0, 0,
    skipped). Draws one key from ``generator`` per step (a CPU generator: the optimizer's
    rule stream).
    """
    lib = _kernel()
    if lib is None:
        raise RuntimeError("the fused kernel is unavailable; check eapu.optim.fused.available()")
    # One draw per step; the kernel derives each tensor's keys from it and its index, the
    # noise's hashed apart from the rule's (so the decisions do not depend on the noise).
    step_key = _draw_key(generator)
    jobs = (_Job * len(items))()
    keep: list[Tensor] = []  # holds the tensors the jobs point into
    back: list[tuple[Tensor, Tensor]] = []  # (tensor, its contiguous copy) to copy back

    def copy(t: Tensor, *, write: bool = True) -> int:
        c = t.contiguous()
        keep.append(c)
        if write:
            back.append((t, c))
        return c.data_ptr()

    kind = _KIND[type(base)]
    for k, it in enumerate(items):
        p, group = it.param, it.group
        grad = p.grad
        assert grad is not None
        j = jobs[k]
        state = base.state[p]
        j.param = p.data_ptr() if p.is_contiguous() else copy(p)
        j.grad = grad.data_ptr() if grad.is_contiguous() else copy(grad, write=False)
        j.numel, j.dtype, j.kind = p.numel(), int(p.dtype == torch.float64), kind
        j.lr, j.weight_decay = group["lr"], group["weight_decay"]
        if kind == 2:
            j.momentum, j.dampening = group["momentum"], group["dampening"]
            j.nesterov = int(bool(group["nesterov"]))
            if group["momentum"] != 0:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["momentum_buffer"] = buf
                    j.first = 1
                j.exp_avg = buf.data_ptr() if buf.is_contiguous() else copy(buf)
        else:
            if not state:
                sdtype = torch.float64
                if group.get("fused") or torch.get_default_dtype() != torch.float64:
                    sdtype = torch.float32
                state["step"] = torch.zeros((), dtype=sdtype)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            step_t = state["step"]
            if step_t.dtype not in _DTYPES or not step_t.is_cpu:
                step_t = state["step"] = step_t.to("cpu", torch.float32)
            # The kernel adds 1 to the count and computes the bias corrections from it.
            j.step, j.step_dtype = step_t.data_ptr(), int(step_t.dtype == torch.float64)
            b1, b2 = group["betas"]
            j.beta1, j.beta2, j.eps = b1, b2, group["eps"]
            m, v = state["exp_avg"], state["exp_avg_sq"]
            j.exp_avg = m.data_ptr() if m.is_contiguous() else copy(m)
            j.exp_avg_sq = v.data_ptr() if v.is_contiguous() else copy(v)
        j.threshold, j.noise_sd = it.threshold, it.noise_sd
        j.rule_key, j.index = step_key, it.index
    if lib.eapu_fused_step(jobs, len(items), torch.get_num_threads()) != 0:
        raise MemoryError("the fused EaPU step could not allocate its counters")
    for dst, src in back:
        dst.copy_(src)
    return [[j.written, j.written, 0, 0, j.skipped] for j in jobs]
