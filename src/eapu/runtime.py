"""Which code path a step takes: host-checked (CPU) or sync-free (GPUs and other accelerators).

On the CPU a step may look at its data whenever it likes: ``bool(mask.any())`` to stop a
pulse loop, ``nonzero`` to hand a scheme only the cells EaPU writes (a few percent), a Python
int of a count. On a GPU each of those waits for the device (a host synchronisation), and a
step of a ResNet would make hundreds. The sync-free path instead works on whole tensors with
masks (fixed shapes), keeps every counter a tensor, and checks whether a pulse loop is done
only after rounds 1, 2, 4, 8, ... (`round_done`), so a loop of n rounds costs about
log2(n) + 1 synchronisations and at most twice the rounds it needs.

`sync_free(t)` says which path a tensor takes: the sync-free one on any device but the CPU,
or everywhere inside `force_sync_free` (for tests: the GPU's code path, run on the CPU).

>>> import torch
>>> sync_free(torch.zeros(2))
False
>>> with force_sync_free():
...     sync_free(torch.zeros(2))
True
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from torch import Tensor

__all__ = ["force_sync_free", "round_done", "sync_free"]

_state = threading.local()


def sync_free(t: Tensor) -> bool:
    """Whether work on ``t`` takes the sync-free path (not on the CPU, or forced)."""
    return t.device.type != "cpu" or bool(getattr(_state, "forced", False))


@contextlib.contextmanager
def force_sync_free() -> Iterator[None]:
    """Inside this block every tensor takes the sync-free path, on the CPU too: the code a GPU
    runs, with its counts of host synchronisations, can be tested without one."""
    before = getattr(_state, "forced", False)
    _state.forced = True
    try:
        yield
    finally:
        _state.forced = before


def round_done(active: Tensor, rnd: int) -> bool:
    """Whether a pulse loop can stop after round ``rnd`` (0-based): no cell is ``active``.

    Host-checked path: looked at every round. Sync-free path: only after rounds 0, 1, 3, 7,
    15, ... (one synchronisation each); between them the loop goes on with masked work, which
    leaves the finished cells untouched.
    """
    if sync_free(active) and (rnd + 1) & rnd:
        return False
    return not bool(active.any())
