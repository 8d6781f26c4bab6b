"""DDP over two CPU processes (gloo): ranks stay bit-identical and follow one process."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn import functional as F

from eapu.experiments import RunConfig, run
from eapu.experiments.distributed import shard
from eapu.optim import AdamEaPU

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available",
)

WORLD, STEPS, BATCH = 2, 6, 16
DDP_RUN = {
    "task": "denoise",
    "method": "eapu",
    "steps": 4,
    "eval_every": 2,
    "batch_size": 8,
    "eval_samples": 16,
}


def _model() -> nn.Module:
    torch.manual_seed(0)
    # Linear layers only: float64 convolutions are slow on the CPU.
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 5)).double()


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    return (
        torch.randn(BATCH, 1, 6, 6, generator=g, dtype=torch.float64),
        torch.randint(0, 5, (BATCH,), generator=g),
    )


def _opt(model: nn.Module) -> AdamEaPU:
    # lr well above ΔWth so that both branches of the rule (pass / probabilistic) occur.
    return AdamEaPU(model.parameters(), lr=2e-2, sd_us=2.0, rwg_per_us=1 / 80, seed=3)


def _worker(rank: int, port: int, out: str) -> None:
    from eapu.experiments.distributed import (
        cleanup,
        ddp_train_step,
        params_in_sync,
        setup,
        train_ddp,
        wrap,
    )

    torch.set_num_threads(1)
    info = setup(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD, timeout_s=60
    )
    try:
        model = _model()
        ddp = wrap(model, info)
        opt = _opt(model)
        snaps, synced = [], []
        for step in range(STEPS):
            x, y = _batch(step)
            ddp_train_step(ddp, opt, F.cross_entropy, shard(x, rank, WORLD), shard(y, rank, WORLD))
            snaps.append([p.detach().clone() for p in model.parameters()])
            synced.append(params_in_sync(model))
        torch.save(
            {"snaps": snaps, "synced": synced, "written": opt.ledger.summary().written},
            Path(out) / f"rank{rank}.pt",
        )
        train_ddp(RunConfig(**DDP_RUN), Path(out) / "ddp_run", info=info, check_sync_every=1)
    finally:
        cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(out: Path, timeout_s: float = 300.0) -> None:  # a busy 2-core machine
    ctx = mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + timeout_s
    while not ctx.join(timeout=1.0):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                if p.is_alive():
                    p.terminate()
            pytest.fail(f"the {WORLD} DDP processes did not finish in {timeout_s} s")


@pytest.fixture(scope="module")
def ddp_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    _spawn(out)
    return out


def test_ranks_hold_bit_identical_parameters_after_every_step(ddp_out: Path) -> None:
    r0, r1 = (torch.load(ddp_out / f"rank{r}.pt") for r in range(WORLD))
    assert r0["synced"] == [True] * STEPS and r1["synced"] == [True] * STEPS
    for s0, s1 in zip(r0["snaps"], r1["snaps"], strict=True):
        for a, b in zip(s0, s1, strict=True):
            assert torch.equal(a.view(-1).view(torch.uint8), b.view(-1).view(torch.uint8))
    assert r0["written"] == r1["written"] > 0


def test_ddp_matches_one_process_on_the_global_batch(ddp_out: Path) -> None:
    model = _model()
    opt = _opt(model)
    ranks = torch.load(ddp_out / "rank0.pt")
    for step in range(STEPS):
        x, y = _batch(step)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        for a, b in zip(ranks["snaps"][step], model.parameters(), strict=True):
            torch.testing.assert_close(a, b.detach(), rtol=1e-9, atol=1e-12)
    assert opt.ledger.summary().written == ranks["written"]


def test_train_ddp_writes_a_run_that_follows_the_single_process_run(
    ddp_out: Path, tmp_path: Path
) -> None:
    d = ddp_out / "ddp_run"
    got = json.loads((d / "metrics.json").read_text())
    want = run(RunConfig(**DDP_RUN), tmp_path / "single")
    # One runner: the same files, and the same metrics keys plus the world size.
    assert {p.name for p in d.iterdir()} == {p.name for p in (tmp_path / "single").iterdir()}
    assert "energy.json" in {p.name for p in d.iterdir()}
    assert set(got) == set(want) | {"world_size"}
    assert {"reads", "failed"} <= set(got)
    assert got["world_size"] == WORLD and got["steps"] == DDP_RUN["steps"]
    assert got["cells"] == want["cells"]
    # float32 network: the all-reduce rounds differently, so loose tolerances; the
    # rule's decisions almost never straddle such a difference.
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-3)
    assert got["ssim"] == pytest.approx(want["ssim"], rel=1e-2, abs=1e-3)
    assert got["written"] == pytest.approx(want["written"], rel=0.02)
