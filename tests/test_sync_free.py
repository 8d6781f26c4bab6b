"""No host synchronisation in a training step on the sync-free path (what a GPU runs).

`eapu.runtime.force_sync_free` runs the GPU's code path on the CPU; `count_syncs` counts the
calls eapu's own code makes that would wait for a GPU (``.item()``, ``.tolist()``,
``.cpu()``, ``.numpy()``, ``bool()`` / ``int()`` / ``float()`` of a tensor, ``nonzero``,
``masked_select``) during forward, backward and ``step()``. Calls inside torch are not
counted (torch's own optimizers read their CPU step counters; that is not a device wait).
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from eapu.algorithms import AGAD, ChoppedTTv2, MixedPrecision, TikiTakaV2
from eapu.nn import convert
from eapu.optim import AdamEaPU, AdamNoise, SGDEaPU
from eapu.runtime import force_sync_free

SRC = str(Path(__file__).resolve().parents[1] / "src" / "eapu")
_METHODS = (
    "item",
    "tolist",
    "cpu",
    "numpy",
    "__bool__",
    "__int__",
    "__float__",
    "nonzero",
    "masked_select",
)


@contextlib.contextmanager
def count_syncs() -> Iterator[Counter[str]]:
    """Count the host-synchronising calls made from eapu's source while the block runs."""
    counts: Counter[str] = Counter()
    saved: dict[tuple[object, str], Callable[..., object]] = {}

    def wrap(owner: object, name: str) -> None:
        original = getattr(owner, name)
        saved[(owner, name)] = original

        def spy(*args: object, **kwargs: object) -> object:
            caller = sys._getframe(1)
            if caller.f_code.co_filename.startswith(SRC):
                counts[f"{name} at {Path(caller.f_code.co_filename).name}:{caller.f_lineno}"] += 1
            return original(*args, **kwargs)

        setattr(owner, name, spy)

    for name in _METHODS:
        wrap(torch.Tensor, name)
    wrap(torch, "nonzero")
    wrap(torch, "masked_select")
    try:
        yield counts
    finally:
        for (owner, name), original in saved.items():
            setattr(owner, name, original)


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)
    )


def data(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(k)
    return torch.rand(8, 1, 6, 6, generator=g), torch.randint(0, 5, (8,), generator=g)


def steps_syncs(model: nn.Module, opt: torch.optim.Optimizer, n: int = 3) -> list[int]:
    """Syncs of each of ``n`` steps (forward, backward, step), after two warm-up steps."""
    out = []
    for k in range(n + 2):
        x, y = data(k)
        with count_syncs() as c:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        if k >= 2:
            out.append(sum(c.values()))
    return out


def test_the_counter_sees_a_sync_in_eapu_and_not_in_torch() -> None:
    from eapu import runtime

    t = torch.ones(3)
    with count_syncs() as c:
        runtime.round_done(t > 0, 0)  # bool() of a tensor, in eapu's code
        float(t.sum())  # here, in a test: not eapu's
    assert sum(c.values()) == 1


def test_weight_level_optimizers_make_no_sync() -> None:
    with force_sync_free():
        for cls in (AdamEaPU, SGDEaPU, AdamNoise):
            model = net()
            assert steps_syncs(model, cls(model.parameters(), lr=1e-2, seed=0)) == [0, 0, 0]


#: Device-level writes check whether a pulse loop is done after rounds 1, 2, 4, 8 ...
#: (`eapu.runtime.round_done`): a scheme makes about log2(rounds) + 1 syncs per step for the
#: whole crossbar (one write batch), never one per layer or per cell.
DEVICE_LEVEL = [
    # the binary search's guard (1), its probes checked after 1, 2, 4 (3), the retries' guard
    # (1) and their checks after 1, 2 (2): 7 measured
    ("memorial", 8),
    ("write_verify", 6),  # the verify loop checked after rounds 1, 2, 4, 8 ...: 4-5 measured
    ("two_pulse", 0),
    ("sign", 0),
    ("gaussian", 0),
]


@pytest.mark.parametrize(("scheme", "limit"), DEVICE_LEVEL)
def test_device_level_eapu_syncs_a_few_times_per_step_whatever_the_network(
    scheme: str, limit: int
) -> None:
    with force_sync_free():
        model = net()
        convert(model, device="taox_1t1r", scheme=scheme, seed=0)
        counts = steps_syncs(model, AdamEaPU(model.parameters(), lr=3e-2, seed=0))
    assert max(counts) <= limit, counts


#: A pulse train on the sync-free path reads its length (max n) once: one per write batch.
ALGORITHMS = [
    ("mixed-precision", lambda ps: MixedPrecision(ps, lr=0.05), "sign", 1),  # one batch
    ("ttv2", lambda ps: TikiTakaV2(ps, lr=0.05), "sign", 2),  # A's batch, then C's
    ("cttv2", lambda ps: ChoppedTTv2(ps, lr=0.05), "sign", 2),
    ("agad", lambda ps: AGAD(ps, lr=0.05, chopper_every=2), "sign", 2),
]


@pytest.mark.parametrize(("name", "make", "scheme", "limit"), ALGORITHMS)
def test_the_other_algorithms_sync_a_few_times_per_step(
    name: str, make: Callable[..., torch.optim.Optimizer], scheme: str, limit: int
) -> None:
    with force_sync_free():
        model = net()
        convert(model, device="taox_1t1r", scheme=scheme, seed=0)
        opt = make(model.parameters())
        if hasattr(opt, "watch"):
            opt.watch(model)
        counts = steps_syncs(model, opt)
    assert max(counts) <= limit, counts


def test_the_count_does_not_grow_with_the_network() -> None:
    """One batch of writes per step for the whole crossbar: 2 layers or 6, the same syncs."""
    counts = []
    for depth in (1, 5):
        torch.manual_seed(0)
        layers: list[nn.Module] = [nn.Flatten(), nn.Linear(36, 16), nn.Tanh()]
        for _ in range(depth - 1):
            layers += [nn.Linear(16, 16), nn.Tanh()]
        model = nn.Sequential(*layers, nn.Linear(16, 5))
        with force_sync_free():
            convert(model, device="taox_1t1r", scheme="memorial", seed=0)
            counts.append(max(steps_syncs(model, AdamEaPU(model.parameters(), lr=3e-2, seed=0))))
    assert counts[0] == counts[1] > 0, counts
