"""The Triton kernel of `eapu.optim.triton_step` (which imports this module at first use).
Without triton the module still imports: `eapu_write` is then None and `IMPORT_ERROR` says
why.

One launch writes every weight-level analog tensor of one dtype on one device. Its programs
are laid over the tensors one after another (``prog_item[pid]``: the tensor of program
``pid``); a tensor's row of ``table`` holds its addresses and constants (`COLUMNS`), so the
launch needs no argument per tensor. Per cell, with ΔW = new - old:

    skip     = the gradient was not finite (the mask) or ΔW is not finite; then ΔW := 0
    written  = |ΔW| > u·th                       (u: the cell's counter-based uniform)
    ΔWn      = ΔW if |ΔW| >= th else sign(ΔW)·th
    cell     = old + (ΔWn + sd·z) if written else old   (z: the cell's counter-based normal)

and the tensor's ledger row gets the written cells (as ``written`` and ``pulses``) and the
skipped ones, by integer atomics (exact, so the counts do not depend on the order).

The draws are functions of (key, cell index) only, so the result does not depend on the
block size or the order of the programs. ``key_ptr`` holds the step's key (drawn from the
optimizer's generator on the device); a tensor's keys are derived from it and its index
exactly as in ``fused_kernel.c``: rule key = mix64(key + (index + 1)·golden), noise key =
mix64(rule key ^ NOISE_STREAM). The uniform of float32 cell i is the top 24 bits of
lowbias32((i·(k2 | 1) + k1) mod 2^32) (k1, k2 the rule key's halves, k1 shifted by
(i >> 32)·0x9E3779B9 past 2^32 cells), of a float64 cell the top 53 bits of
mix64(key + (i + 1)·golden): the CPU kernel's (`eapu.optim.fused.counter_uniform`).
The normal of cell i is Box-Muller's sqrt(-2 ln u1)·cos(π(2·u2 - 1)) (the argument kept in
[-π, π), where the GPU's fast cosine is accurate) from two uniforms under the noise key:
float32 x = lowbias32 of the cell's counter as above and y = lowbias32(x + 0x9E3779B9)
(u1 = ((x >> 8) + 1)·2^-24 in (0, 1], so |z| < 5.8; u2 = (y >> 8)·2^-24), float64 z0 =
mix64(key + (i + 1)·golden) and mix64(z0 + golden), 53 bits each.

Triton's interpreter (``TRITON_INTERPRET=1``) must be chosen before triton is imported (its
own ``@triton.jit`` functions, ``tl.sum`` among them, are built for one mode or the other
then), and eapu imports it with torch's dynamo: set the variable before starting Python.
"""

from __future__ import annotations

from typing import Any

__all__ = ["COLUMNS", "IMPORT_ERROR", "INTERPRETED", "eapu_write"]

#: The columns of the tensors' table (int64; the float64 constants stored as their bits).
COLUMNS = ("param", "old", "bad", "numel", "first_program", "index", "threshold", "noise_sd")


#: Why triton could not be imported (None: it was, and `eapu_write` is the kernel).
IMPORT_ERROR: ImportError | None = None
#: The kernel (a triton JIT function), or None without triton.
eapu_write: Any = None
#: Whether the kernel was built for triton's interpreter (``TRITON_INTERPRET=1`` when this
#: module was imported): it then runs on CPU tensors, and on no others.
INTERPRETED = False

try:
    import triton
    import triton.language as tl
except ImportError as e:
    IMPORT_ERROR = e

if IMPORT_ERROR is None:

    @triton.jit
    def _mix64(z):
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB
        return z ^ (z >> 31)

    @triton.jit
    def _hash32(x):
        x = x ^ (x >> 16)
        x = x * 0x7FEB352D
        x = x ^ (x >> 15)
        x = x * 0x846CA68B
        return x ^ (x >> 16)

    @triton.jit
    def _counter32(key, offs):
        """lowbias32 of cell ``offs``'s counter under ``key`` (uint64), as uint32."""
        k1 = (key & 0xFFFFFFFF).to(tl.uint32) + (offs >> 32).to(tl.uint32) * 0x9E3779B9
        k2 = (key >> 32).to(tl.uint32) | 1
        return _hash32(offs.to(tl.uint32) * k2 + k1)

    @triton.jit
    def eapu_write(table, prog_item, key_ptr, counts, BLOCK: tl.constexpr, IS64: tl.constexpr):
        pid = tl.program_id(0)
        item = tl.load(prog_item + pid)
        row = table + item.to(tl.int64) * 8
        numel = tl.load(row + 3)
        first = tl.load(row + 4)
        index = tl.load(row + 5)
        if IS64:
            p_ptr = tl.load(row + 0).to(tl.pointer_type(tl.float64))
            old_ptr = tl.load(row + 1).to(tl.pointer_type(tl.float64))
            th = tl.load(row + 6).to(tl.float64, bitcast=True)
            sd = tl.load(row + 7).to(tl.float64, bitcast=True)
        else:
            p_ptr = tl.load(row + 0).to(tl.pointer_type(tl.float32))
            old_ptr = tl.load(row + 1).to(tl.pointer_type(tl.float32))
            th = tl.load(row + 6).to(tl.float64, bitcast=True).to(tl.float32)
            sd = tl.load(row + 7).to(tl.float64, bitcast=True).to(tl.float32)
        bad_addr = tl.load(row + 2)
        bad_ptr = bad_addr.to(tl.pointer_type(tl.int8))

        golden = 0x9E3779B97F4A7C15
        step_key = tl.load(key_ptr).to(tl.uint64, bitcast=True)
        rule_key = _mix64(step_key + (index + 1).to(tl.uint64) * golden)
        noise_key = _mix64(rule_key ^ 0x6A09E667F3BCC909)

        offs = (pid - first).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        m = offs < numel
        new = tl.load(p_ptr + offs, mask=m, other=0.0)
        old = tl.load(old_ptr + offs, mask=m, other=0.0)
        has_bad = tl.full([BLOCK], 0, tl.int64) + bad_addr != 0  # (no mask: nothing read)
        bad = tl.load(bad_ptr + offs, mask=m & has_bad, other=0) != 0
        dw = new - old
        skip = m & (bad | ~(tl.abs(dw) < float("inf")))
        dw = tl.where(skip, 0.0, dw)
        a = tl.abs(dw)

        if IS64:
            c = offs.to(tl.uint64) + 1
            u = (_mix64(rule_key + c * golden) >> 11).to(tl.float64) * 1.1102230246251565e-16
            z0 = _mix64(noise_key + c * golden)
            u1 = ((z0 >> 11).to(tl.float64) + 1.0) * 1.1102230246251565e-16
            u2 = (_mix64(z0 + golden) >> 11).to(tl.float64) * 1.1102230246251565e-16
            # (a float literal would be rounded to float32 first)
            pi = tl.full([BLOCK], 3.141592653589793, tl.float64)
        else:
            u = (_counter32(rule_key, offs) >> 8).to(tl.float32) * 5.960464477539063e-08
            x = _counter32(noise_key, offs)
            y = _hash32(x + 0x9E3779B9)
            u1 = ((x >> 8).to(tl.float32) + 1.0) * 5.960464477539063e-08
            u2 = (y >> 8).to(tl.float32) * 5.960464477539063e-08
            pi = tl.full([BLOCK], 3.141592653589793, tl.float32)
        written = m & (a > u * th)
        val = tl.where(a >= th, dw, tl.where(dw > 0, th, -th))
        z = tl.sqrt(-2.0 * tl.log(u1)) * tl.cos(pi * (2.0 * u2 - 1.0))
        out = tl.where(written, old + (val + z * sd), old)
        tl.store(p_ptr + offs, out, mask=m)

        n_written = tl.sum(written.to(tl.int64), axis=0)
        n_skipped = tl.sum(skip.to(tl.int64), axis=0)
        crow = counts + item.to(tl.int64) * 6
        tl.atomic_add(crow + 0, n_written)  # written
        tl.atomic_add(crow + 1, n_written)  # pulses: one per written cell at weight level
        if n_skipped > 0:
            tl.atomic_add(crow + 4, n_skipped)

    INTERPRETED = isinstance(eapu_write, triton.runtime.interpreter.InterpretedFunction)
