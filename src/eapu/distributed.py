"""Data-parallel in-situ training with torch.distributed (DDP): gloo on CPU, NCCL on CUDA.

    torchrun --standalone --nproc_per_node=2 -m eapu.distributed classify \\
        --method eapu --steps 600 --batch-size 64 --out runs/classify-eapu-ddp

Why the ranks stay identical without ever exchanging weights: DDP all-reduces (averages)
the gradients, so every rank's base optimizer proposes the same ΔW; the rule's generator and
the weight-level write noise are seeded from the run's seed, identically on every rank, so
every rank draws the same decisions and the same noise and writes the same ΔWn. A device-
level crossbar is seeded the same way. `params_in_sync` checks it (bit for bit).

Each step takes the run's global mini-batch (``batch_size``, the same on every rank) and
gives rank r the r-th contiguous slice, so a run on N ranks follows the single-process run
on the same global batch up to the rounding of the gradient all-reduce. BatchNorm layers
see only their rank's slice (converted to SyncBatchNorm on CUDA with ``sync_bn``), so a
network with BatchNorm matches the single-process run only on CUDA with ``sync_bn``.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

__all__ = [
    "DistInfo",
    "cleanup",
    "ddp_train_step",
    "main",
    "params_in_sync",
    "setup",
    "shard",
    "train_ddp",
    "wrap",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the group."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(
    backend: str | None = None,
    *,
    init_method: str | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    timeout_s: float = 300.0,
) -> DistInfo:
    """Join the process group (environment of ``torchrun`` unless given) and pick a device.

    Args:
        backend: ``"nccl"`` (default when CUDA is available) or ``"gloo"`` (otherwise).
        init_method: e.g. ``"tcp://127.0.0.1:29500"``; default ``env://`` (torchrun).
        rank, world_size: default ``RANK`` / ``WORLD_SIZE`` from the environment.
        timeout_s: how long a collective may wait for the other ranks.
    """
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this build of torch")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    rank = int(os.environ.get("RANK", 0)) if rank is None else rank
    world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else world_size
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if backend == "nccl":
        device = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(
            backend,
            init_method=init_method or "env://",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device, backend)


def cleanup() -> None:
    """Leave the process group (if this process joined one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(x: Tensor, rank: int, world_size: int) -> Tensor:
    """Rank ``rank``'s contiguous slice of a global batch (its size must divide evenly)."""
    n = x.shape[0]
    if n % world_size:
        raise ValueError(
            f"can't split a batch of {n} into {world_size} equal shards; "
            f"use a batch size divisible by {world_size}"
        )
    k = n // world_size
    return x[rank * k : (rank + 1) * k]


def wrap(model: nn.Module, info: DistInfo, *, sync_bn: bool = True) -> DDP:
    """Move ``model`` to the rank's device and wrap it in DDP (SyncBatchNorm on CUDA)."""
    model = model.to(info.device)
    if sync_bn and info.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [info.device.index] if info.device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def ddp_train_step(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    y: Tensor,
) -> Tensor:
    """One step on this rank's shard: forward, backward (DDP averages the gradients over the
    ranks), then the in-situ step, identical on every rank. Returns the global mean loss."""
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    out = loss.detach().clone()
    if dist.is_initialized():
        dist.all_reduce(out)
        out /= dist.get_world_size()
    return out


@torch.no_grad()
def params_in_sync(module: nn.Module) -> bool:
    """Whether every parameter and buffer is bit-identical on all ranks (a collective)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return True
    mine = [t.detach() for t in list(module.parameters()) + list(module.buffers())]
    same = torch.ones((), device=mine[0].device if mine else "cpu")
    for t in mine:
        ref = t.clone()
        dist.broadcast(ref, src=0)
        # Compare the bytes: bit-identical, and NaN equals NaN.
        if not torch.equal(_bytes(ref), _bytes(t)):
            same.zero_()
    dist.all_reduce(same, op=dist.ReduceOp.MIN)
    return bool(same.item() == 1)


def _bytes(t: Tensor) -> Tensor:
    return t.reshape(-1).contiguous().view(torch.uint8)


# --------------------------------------------------------------------------- a whole run
def _evaluate(exp: Any, model: nn.Module) -> dict[str, float]:
    """The task's evaluation, which runs on the CPU (a copy of the model if it is not)."""
    if next(model.parameters()).device.type != "cpu":
        model = copy.deepcopy(model).cpu()
    return exp.evaluate(model)[0]  # type: ignore[no-any-return]


def train_ddp(
    config: Any, out_dir: str | Path, *, info: DistInfo | None = None, check_sync_every: int = 0
) -> dict[str, Any] | None:
    """`eapu.tasks.run` over the ranks of a process group (call it on every rank).

    Rank 0 evaluates and writes the run directory (``config.json``, ``history.csv``,
    ``metrics.json``, ``checkpoint.pt``); every rank resumes from ``checkpoint.pt`` if it is
    there. Device-level methods (simulated crossbars) run on CPU only (gloo).

    Args:
        config: a `eapu.tasks.RunConfig`.
        out_dir: the run directory.
        info: from `setup` (default: ``setup()`` from the torchrun environment).
        check_sync_every: assert `params_in_sync` every N steps (0: never).

    Returns:
        The final metrics on rank 0, None on the others.
    """
    from . import tasks
    from .files import write_json
    from .optim import InSituOptimizer

    info = info or setup()
    cfg = config.resolved()
    task, method = tasks.get_task(cfg["task"]), tasks.get_method(cfg["method"])
    if method.level == "device" and info.device.type != "cpu":
        raise ValueError(
            f"method {method.name!r} simulates crossbars on the CPU; run it with the gloo backend"
        )
    if method.level == "device" and not getattr(method, "in_situ", method.rule is not None):
        raise ValueError(f"method {method.name!r} does not train in situ; use eapu run")
    if getattr(method, "algorithm", None) is not None:
        raise ValueError(
            f"method {method.name!r} ({method.algorithm}) is not supported by "
            "train_ddp; use eapu run"
        )
    if cfg["batch_size"] % info.world_size:
        raise ValueError(
            f"batch_size {cfg['batch_size']} is not divisible by the {info.world_size} ranks"
        )
    out = Path(out_dir)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    ck_path = out / "checkpoint.pt"
    torch.manual_seed(cfg["seed"])
    exp = tasks._Experiment(cfg, task)
    model, xb, opt, sched = tasks._build(cfg, method, exp)
    ddp = wrap(model, info)  # first, so that a resumed optimizer state lands on the device
    start, history, wall = tasks._resume(ck_path, cfg, model, xb, opt, sched, None)
    if info.is_main:
        write_json(out / "config.json", cfg)
    t0 = time.perf_counter() - wall
    steps, every = cfg["steps"], cfg["eval_every"]
    if start == 0 and info.is_main:
        history.append({"step": 0, **_evaluate(exp, model)})
    for step in range(start, steps):
        x, y = exp.batch(step)
        inp = exp.inputs(x, key=cfg["seed"] * 7_919 + step)  # the same corruption as run()
        xs, ys, ins = (shard(t, info.rank, info.world_size).to(info.device) for t in (x, y, inp))

        def loss_fn(out_: Tensor, t_: Tensor, xs: Tensor = xs) -> Tensor:
            return exp.loss(out_, xs, t_)  # type: ignore[no-any-return]

        loss = ddp_train_step(ddp, opt, loss_fn, ins, ys)
        if sched is not None:
            sched.step()
        if check_sync_every and (step + 1) % check_sync_every == 0 and not params_in_sync(model):
            raise RuntimeError(f"ranks diverged at step {step + 1}")
        row: dict[str, Any] = {"step": step + 1, "loss": float(loss)}
        if info.is_main and ((step + 1) % every == 0 or step + 1 == steps):
            row.update(_evaluate(exp, model))
            if step + 1 < steps:
                tasks._checkpoint(
                    ck_path,
                    cfg,
                    model,
                    xb,
                    opt,
                    sched,
                    None,
                    step + 1,
                    [*history, row],
                    time.perf_counter() - t0,
                )
        history.append(row)
    if not info.is_main:
        dist.barrier()
        return None
    final: dict[str, Any] = {k: v for k, v in history[-1].items() if k != "step"}
    if isinstance(opt, InSituOptimizer):
        s = opt.ledger.summary()
        final.update(
            {
                "rup": s.rup,
                "nup": s.nup,
                "ncell": s.ncell,
                "pulses": s.pulses,
                "written": s.written,
                "cells": s.cells,
            }
        )
        for row, r, n in zip(
            history[1:], opt.ledger.rup().tolist(), opt.ledger.nup().tolist(), strict=False
        ):
            row["rup"], row["nup"] = r, n
    final.update(
        {
            "task": cfg["task"],
            "method": cfg["method"],
            "steps": steps,
            "world_size": info.world_size,
            "wall_s": time.perf_counter() - t0,
        }
    )
    tasks._write_history(out / "history.csv", history)
    tasks._checkpoint(ck_path, cfg, model, xb, opt, sched, None, steps, history, final["wall_s"])
    write_json(out / "metrics.json", final)
    dist.barrier()
    return final


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m eapu.distributed TASK [--method ...]`` under torchrun (flags as ``eapu run``)."""
    from .tasks import RunConfig

    ap = argparse.ArgumentParser(
        prog="python -m eapu.distributed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("task")
    ap.add_argument("--out", required=True)
    ap.add_argument("--backend", choices=["gloo", "nccl"], default=None)
    ap.add_argument("--check-sync-every", type=int, default=0)
    for name, typ in (
        ("method", str),
        ("device", str),
        ("seed", int),
        ("steps", int),
        ("batch-size", int),
        ("lr", float),
        ("eval-every", int),
        ("sd-us", float),
        ("rwg", float),
        ("threshold-us", float),
        ("model", str),
        ("data", str),
        ("data-dir", str),
        ("optimizer", str),
        ("schedule", str),
        ("width", int),
    ):
        ap.add_argument(f"--{name}", type=typ, default=None)
    a = vars(ap.parse_args(argv))
    out, backend, every = a.pop("out"), a.pop("backend"), a.pop("check_sync_every")
    a["rwg_per_us"] = a.pop("rwg")
    cfg = RunConfig(**{k: v for k, v in a.items() if v is not None})
    info = setup(backend)
    try:
        final = train_ddp(cfg, out, info=info, check_sync_every=every)
        if final is not None:
            print({k: v for k, v in final.items() if not isinstance(v, str)})
    finally:
        cleanup()


if __name__ == "__main__":
    main()
