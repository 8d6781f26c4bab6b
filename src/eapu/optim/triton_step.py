"""The weight-level EaPU write on a GPU in one Triton kernel launch for all the tensors.

On the sync-free path (`eapu.runtime`) `InSituOptimizer` lets the base optimizer step the
parameters and then writes each weight-level analog tensor with torch operations: ΔW, the
non-finite checks, the rule's dense form (one uniform per cell), the write noise and the
counts, some fifteen kernels per tensor, several hundred per step of a ResNet. Here one
launch does all of it for every tensor of a dtype: each cell is read once (the proposal,
the old value and the gradient's non-finite mask) and written once, and each tensor's ledger
row (written, pulses, skipped) is counted on the device, a tensor, so the step still makes
no host synchronisation. Formula (4) of Liu et al. (2025), with ΔW = new - old:
``|ΔW| >= ΔWth``: ΔWn = ΔW; below, ΔWn = sign(ΔW)·ΔWth with probability |ΔW| / ΔWth, else
the cell is not written; a written cell becomes old + ΔWn + Rwg·N(0, SD εcell), as on the
torch path. A cell whose gradient or ΔW is not finite keeps its value and is counted as
skipped.

Randomness is counter-based, as in the CPU kernel (`eapu.optim.fused`): one key per step is
drawn from the optimizer's rule generator on the parameters' device (no host round trip;
the generator's state is the optimizer's, saved in its ``state_dict``), and a cell's draws
are hashes of (key, tensor index, cell index): a run is reproducible from its seed, resumes
exactly, and does not depend on the block size or on how the programs are scheduled. The
decisions use the CPU kernel's uniforms (`eapu.optim.fused.counter_uniform` is their
reference); the normals are Box-Muller's, one per cell (`counter_normal`). The numbers
differ from the torch path's (same distribution, other draws). The kernel and its hash are
described in ``triton_kernel.py``.

It serves float32 and float64 tensors in the plain (contiguous) layout on CUDA where triton
is installed (torch's CUDA wheels bring it); ``EAPU_TRITON=0`` turns it off. Under triton's
interpreter (``TRITON_INTERPRET=1`` set before Python starts: triton reads it when it is
imported) it runs on CPU tensors instead, and on no others: that is how it is tested
without a GPU (``make test-gpu``). Everything else takes
the torch path, which stays the reference. If the kernel cannot be built (no working
toolchain), one warning is given and the torch path is used from then on.

>>> import torch
>>> from eapu.optim import triton_step
>>> out, written, skipped = triton_step.reference_write(
...     torch.tensor([0.5, -0.02, 0.0]), torch.zeros(3), None,
...     threshold=0.025, noise_sd=0.0, rule_key=8, noise_key=9)
>>> out, int(written), int(skipped)
(tensor([ 0.5000, -0.0250,  0.0000]), 2, 0)
"""

from __future__ import annotations

import math
import os
import struct
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .. import validate
from .fused import counter_uniform, mix64

__all__ = [
    "BLOCK",
    "WriteItem",
    "available",
    "counter_normal",
    "interpreted",
    "item_keys",
    "reference_write",
    "supports",
    "unavailable_reason",
    "write",
]

#: Cells per program (a power of two). Any other gives the same result.
BLOCK = 1024
_GOLDEN = 0x9E3779B97F4A7C15
_NOISE_STREAM = 0x6A09E667F3BCC909  # as in fused_kernel.c
_MASK = (1 << 64) - 1
_DTYPES = (torch.float32, torch.float64)

_lock = threading.Lock()
_module: Any = None  # eapu.optim.triton_kernel, once imported
_reason: str | None = None  # why it cannot be had (import or build failure)
_failed = False  # the kernel failed to build or launch: the torch path from then on
_programs: dict[tuple[Any, ...], Tensor] = {}  # program -> tensor maps, by layout
_ready: set[tuple[str, torch.dtype, int]] = set()  # (device, dtype, block) that ran
_MAX_LAYOUTS = 16


def _kernel_module() -> Any:
    """The kernel's module, imported at first use; None where triton cannot be had."""
    global _module, _reason
    if _module is not None or _reason is not None:
        return _module
    with _lock:
        if _module is None and _reason is None:
            try:
                from . import triton_kernel as mod
            except Exception as e:  # a broken triton install: the torch path still works
                _reason = f"triton failed to load ({type(e).__name__}: {e})"
            else:
                if mod.IMPORT_ERROR is not None:
                    _reason = f"triton is not importable ({mod.IMPORT_ERROR}); pip install triton"
                else:
                    _module = mod
    return _module


def _reset() -> None:
    """Forget the kernel and a failure, so that the next use imports and tries it anew
    (tests)."""
    global _module, _reason, _failed
    import sys

    from .. import optim

    with _lock:
        sys.modules.pop(f"{__package__}.triton_kernel", None)
        optim.__dict__.pop("triton_kernel", None)
        _module, _reason, _failed = None, None, False
        _programs.clear()
        _ready.clear()


def available() -> bool:
    """Whether the Triton write can be used here: triton is importable, its kernel has not
    failed to build, and ``EAPU_TRITON`` is not ``0``."""
    if os.environ.get("EAPU_TRITON", "1") == "0":
        return False
    return _kernel_module() is not None and not _failed


def unavailable_reason() -> str | None:
    """Why `available` is False (None where it is True)."""
    if os.environ.get("EAPU_TRITON", "1") == "0":
        return "turned off (EAPU_TRITON=0)"
    _kernel_module()
    return _reason


def interpreted() -> bool:
    """Whether the kernel runs under triton's interpreter (on CPU tensors); False where it
    is compiled (CUDA) or unavailable."""
    mod = _kernel_module()
    return bool(mod is not None and mod.INTERPRETED)


def supports(p: Tensor, old: Tensor, bad: Tensor | None = None) -> bool:
    """Whether weight-level parameter ``p`` (its old values ``old``, the mask ``bad`` of
    cells whose gradient was not finite) can be written by the kernel: triton available,
    float32 or float64, ``old`` and ``bad`` shaped like ``p``, all three contiguous (the
    cells in their logical order) on one device: CUDA, or the CPU under the interpreter."""
    if not available() or p.dtype not in _DTYPES or p.numel() == 0:
        return False
    want = "cpu" if interpreted() else "cuda"
    for t in (p, old) if bad is None else (p, old, bad):
        if t.device != p.device or t.shape != p.shape or not t.is_contiguous():
            return False
    if p.device.type != want or old.dtype != p.dtype:
        return False
    return bad is None or bad.dtype == torch.bool


@dataclass(frozen=True)
class WriteItem:
    """One weight-level tensor to write: ``param`` holds the base's proposal and gets the
    written values; ``old`` its values before the step; ``bad`` the cells whose gradient
    was not finite (or None); ``threshold`` ΔWth > 0 and ``noise_sd`` Rwg·SD εcell in
    weight units; ``index`` keys its draws (its position among the step's analog tensors)."""

    param: Tensor
    old: Tensor
    bad: Tensor | None
    threshold: float
    noise_sd: float
    index: int


def _bits(x: float) -> int:
    return int(struct.unpack("<q", struct.pack("<d", x))[0])


def _to_device(t: Tensor, device: torch.device) -> Tensor:
    """A CPU tensor on ``device`` without a host wait (from pinned memory, asynchronously)."""
    if device.type == "cpu":
        return t
    return t.pin_memory().to(device, non_blocking=True)


def _program_map(device: torch.device, numels: tuple[int, ...], block: int) -> Tensor:
    """int32 tensor on ``device``: the item each program works on (cached by layout)."""
    key = (str(device), numels, block)
    got = _programs.get(key)
    if got is None:
        blocks = torch.tensor([-(-n // block) for n in numels], dtype=torch.int64)
        items = torch.arange(len(numels), dtype=torch.int32)
        got = _to_device(torch.repeat_interleave(items, blocks), device)
        if len(_programs) >= _MAX_LAYOUTS:
            _programs.pop(next(iter(_programs)))
        _programs[key] = got
    return got


def _launch(items: Sequence[WriteItem], key: Tensor, block: int) -> Tensor:
    """One launch for ``items`` (one device, one dtype); their ledger rows (n, 6) int64."""
    mod = _module
    p0 = items[0].param
    numels = tuple(it.param.numel() for it in items)
    rows, first = [], 0
    for it, n in zip(items, numels, strict=True):
        bad = 0 if it.bad is None else it.bad.data_ptr()
        rows.append(
            [
                it.param.data_ptr(),
                it.old.data_ptr(),
                bad,
                n,
                first,
                it.index,
                _bits(it.threshold),
                _bits(it.noise_sd),
            ]
        )
        first += -(-n // block)
    table = _to_device(torch.tensor(rows, dtype=torch.int64), p0.device)
    prog = _program_map(p0.device, numels, block)
    counts = torch.zeros(len(items), 6, dtype=torch.int64, device=p0.device)
    mod.eapu_write[(first,)](
        table, prog, key, counts, BLOCK=block, IS64=p0.dtype == torch.float64, num_warps=4
    )
    return counts


def _check(device: torch.device, dtype: torch.dtype, block: int) -> None:
    """Build and run the kernel once on a scratch cell (first use of a device, dtype and
    block), so that a kernel that cannot be had fails before any key is drawn or any
    parameter touched."""
    key = (str(device), dtype, block)
    if key in _ready:
        return
    cell = torch.zeros(1, dtype=dtype, device=device)
    scratch = WriteItem(cell, cell.clone(), None, 1.0, 0.0, 0)
    _launch([scratch], torch.zeros(1, dtype=torch.int64, device=device), block)
    _ready.add(key)


def write(
    items: Sequence[WriteItem],
    *,
    generator: torch.Generator | Callable[[torch.device], torch.Generator],
    block: int = BLOCK,
) -> list[Tensor | None]:
    """Write ``items`` (each passed `supports`): one launch per device and dtype.

    Returns each item's ledger row (an int64 tensor on its device: written, pulses = written,
    0, 0, skipped, 0), or None for an item the kernel could not write (it failed to build or
    run, which is tried on a scratch cell first: one warning, and `available` is False from
    then on); such an item is left as it was, and nothing was drawn from its generator, for
    the torch path to write.

    Args:
        items: the tensors to write (`WriteItem`).
        generator: the rule generator on the items' device, or a function giving it for a
            device; one key (an int64 tensor, on the device) is drawn from it per launch.
        block: cells per program, a power of two from 16 to 65536 (the result is the same
            for every block size).
    """
    global _reason, _failed
    validate.integer("block", block, low=16, high=65536)
    if block & (block - 1):
        raise ValueError(f"Invalid block: {block!r}; allowed: a power of two from 16 to 65536")
    for it in items:
        validate.number("threshold", it.threshold, low=0, low_open=True)
        validate.number("noise_sd", it.noise_sd, low=0)
        validate.integer("index", it.index, low=0)
    out: list[Tensor | None] = [None] * len(items)
    if not items or not available():
        return out
    groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for k, it in enumerate(items):
        groups.setdefault((it.param.device, it.param.dtype), []).append(k)
    for (device, dtype), ks in groups.items():
        try:
            _check(device, dtype, block)
        except Exception as e:  # the kernel does not build or run here: nothing was written
            _failed = True
            _reason = f"the Triton kernel failed ({type(e).__name__}: {e})"
            warnings.warn(
                f"eapu: {_reason}; the weight-level writes take the torch path",
                RuntimeWarning,
                stacklevel=2,
            )
            return out
        gen = generator if isinstance(generator, torch.Generator) else generator(device)
        key = torch.randint(0, 2**62, (1,), generator=gen, device=device, dtype=torch.int64)
        counts = _launch([items[k] for k in ks], key, block)
        for j, k in enumerate(ks):
            out[k] = counts[j]
            # Autograd sees the parameter changed, as after an in-place torch operation.
            torch.autograd.graph.increment_version(items[k].param)
    return out


# ------------------------------------------------------------------ torch reference
def item_keys(step_key: int, index: int) -> tuple[int, int]:
    """(rule key, noise key) of tensor ``index`` under a step's key, as the kernel derives
    them (and the CPU kernel, ``fused_kernel.c``)."""
    rule = mix64((step_key & _MASK) + (index + 1) * _GOLDEN)
    return rule, mix64(rule ^ _NOISE_STREAM)


def _hash32(x: Tensor) -> Tensor:
    """lowbias32 on uint32 values held in int64."""
    m32 = 0xFFFFFFFF
    x = x & m32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & m32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & m32
    return x ^ (x >> 16)


def _signed(x: int) -> int:
    x &= _MASK
    return x - (1 << 64) if x >= 1 << 63 else x


def _shr(x: Tensor, k: int) -> Tensor:
    return (x >> k) & ((1 << (64 - k)) - 1)


def _mix64_t(z: Tensor) -> Tensor:
    z = (z ^ _shr(z, 30)) * _signed(0xBF58476D1CE4E5B9)
    z = (z ^ _shr(z, 27)) * _signed(0x94D049BB133111EB)
    return z ^ _shr(z, 31)


def counter_normal(key: int, n: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """The kernel's standard normals for cells ``0..n-1`` under (noise) ``key``, in torch:
    Box-Muller's sqrt(-2 ln u1)·cos(π(2·u2 - 1)), computed in ``dtype`` (float32 or
    float64), from two uniforms per cell (``triton_kernel.py`` says which)."""
    if dtype not in _DTYPES:
        raise ValueError(f"Invalid dtype: {dtype}; allowed: torch.float32 or torch.float64")
    key &= _MASK
    i = torch.arange(n, dtype=torch.int64)
    if dtype == torch.float64:
        z0 = _mix64_t((i + 1) * _signed(_GOLDEN) + _signed(key))
        u1 = (_shr(z0, 11).double() + 1.0) * 2.0**-53
        u2 = _shr(_mix64_t(z0 + _signed(_GOLDEN)), 11).double() * 2.0**-53
        pi = torch.tensor(math.pi, dtype=dtype)
    else:
        m32 = 0xFFFFFFFF
        k1 = ((key & m32) + (i >> 32) * 0x9E3779B9) & m32
        x = _hash32((i & m32) * ((key >> 32) | 1) + k1)
        y = _hash32(x + 0x9E3779B9)
        u1 = ((x >> 8).float() + 1.0) * 2.0**-24
        u2 = (y >> 8).float() * 2.0**-24
        pi = torch.tensor(math.pi, dtype=dtype)
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(pi * (2.0 * u2 - 1.0))


def reference_write(
    new: Tensor,
    old: Tensor,
    bad: Tensor | None,
    *,
    threshold: float,
    noise_sd: float,
    rule_key: int,
    noise_key: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """What the kernel writes, in torch on the CPU (the same-key reference of the tests):
    (the cells' new values, written count, skipped count) for a tensor whose base proposed
    ``new`` from ``old``, under the tensor's keys (`item_keys`). ``new``, ``old``: float32
    or float64 CPU tensors of one shape; ``bad``: the non-finite-gradient mask or None."""
    validate.number("threshold", threshold, low=0, low_open=True)
    validate.number("noise_sd", noise_sd, low=0)
    if new.dtype not in _DTYPES or new.device.type != "cpu" or old.dtype != new.dtype:
        raise ValueError(
            f"Invalid new: {new.dtype} on {new.device} (old: {old.dtype}); allowed: float32 or "
            "float64 on CPU, old alike"
        )
    dw = new - old
    skip = ~dw.isfinite()
    if bad is not None:
        skip |= bad
    dw = torch.where(skip, 0.0, dw)
    n = dw.numel()
    u = counter_uniform(rule_key, n, dw.dtype).view(dw.shape)
    z = counter_normal(noise_key, n, dw.dtype).view(dw.shape)
    th = torch.tensor(threshold, dtype=dw.dtype)
    sd = torch.tensor(noise_sd, dtype=dw.dtype)
    a = dw.abs()
    written = a > u * th
    val = torch.where(a >= th, dw, torch.where(dw > 0, th, -th))
    out = torch.where(written, old + (val + z * sd), old)
    return out, written.sum(), skip.sum()
