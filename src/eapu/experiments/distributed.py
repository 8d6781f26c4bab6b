"""Data-parallel in-situ training with torch.distributed (DDP): gloo on CPU, NCCL on CUDA.

    torchrun --standalone --nproc_per_node=2 -m eapu.experiments.distributed classify \\
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
import contextlib
import datetime
import os
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
    "ddp_step",
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
def ddp_step(
    exp: Any,
    ddp: nn.Module,
    opt: torch.optim.Optimizer,
    info: DistInfo,
    *,
    check_sync_every: int = 0,
) -> Callable[[int, Tensor, Tensor, Tensor], float]:
    """The step function of `eapu.experiments.train` on this rank: its shard of the global
    batch through DDP, then the in-situ step; returns the global mean loss."""
    model = ddp.module if isinstance(ddp, DDP) else ddp

    def step_fn(step: int, x: Tensor, y: Tensor, inp: Tensor) -> float:
        xs, ys, ins = (shard(t, info.rank, info.world_size).to(info.device) for t in (x, y, inp))

        def loss_fn(out_: Tensor, t_: Tensor) -> Tensor:
            return exp.loss(out_, xs, t_)  # type: ignore[no-any-return]

        loss = ddp_train_step(ddp, opt, loss_fn, ins, ys)
        if check_sync_every and (step + 1) % check_sync_every == 0 and not params_in_sync(model):
            raise RuntimeError(f"ranks diverged at step {step + 1}")
        return float(loss)

    return step_fn


def train_ddp(
    config: Any, out_dir: str | Path, *, info: DistInfo | None = None, check_sync_every: int = 0
) -> dict[str, Any] | None:
    """`eapu.experiments.run` over the ranks of a process group (call it on every rank).

    The same runner as a single-process run (`eapu.experiments.train`) with a data-parallel
    step: rank 0 evaluates and writes the same run directory (``config.json``,
    ``history.csv``, ``metrics.json``, ``energy.json``, ``checkpoint.pt``, ...), with the
    world size in ``metrics.json``; every rank resumes from ``checkpoint.pt`` if it is there.
    Device-level methods (simulated crossbars) run on CPU only (gloo).

    Args:
        config: a `eapu.experiments.RunConfig`.
        out_dir: the run directory.
        info: from `setup` (default: ``setup()`` from the torchrun environment).
        check_sync_every: assert `params_in_sync` every N steps (0: never).

    Returns:
        The final metrics on rank 0, None on the others.
    """
    from ..rundir import hold
    from .build import build
    from .experiment import Experiment
    from .registry import get_method, get_task
    from .runner import train

    info = info or setup()
    cfg = config.resolved()
    method = get_method(cfg.method)
    if method.level == "device" and info.device.type != "cpu":
        raise ValueError(
            f"method {method.name!r} simulates crossbars on the CPU; run it with the gloo backend"
        )
    if method.level == "device" and not method.in_situ:
        raise ValueError(f"method {method.name!r} does not train in situ; use eapu run")
    if method.algorithm is not None:
        raise ValueError(
            f"method {method.name!r} ({method.algorithm}) is not supported by "
            "train_ddp; use eapu run"
        )
    if cfg.batch_size % info.world_size:
        raise ValueError(
            f"batch_size {cfg.batch_size} is not divisible by the {info.world_size} ranks"
        )
    # Rank 0 is the directory's one writer; the others only read its checkpoint, after
    # rank 0 holds the lock (so a busy directory stops every rank before any trains).
    with hold(out_dir) if info.is_main else contextlib.nullcontext(Path(out_dir)) as out:
        dist.barrier()
        torch.manual_seed(cfg.seed)
        exp = Experiment(cfg, get_task(cfg.task), device=info.device)
        built = build(cfg, exp)
        ddp = wrap(built.model, info)  # first: a resumed optimizer state lands on the device
        step_fn = ddp_step(exp, ddp, built.optimizer, info, check_sync_every=check_sync_every)
        final = train(
            cfg,
            out,
            exp,
            built,
            step_fn,
            is_main=info.is_main,
            extra={"world_size": info.world_size},
        )
        dist.barrier()
    return final


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m eapu.experiments.distributed TASK [--method ...]`` under torchrun (flags
    as ``eapu run``)."""
    from .config import FLAGS, RunConfig

    ap = argparse.ArgumentParser(
        prog="python -m eapu.experiments.distributed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("task")
    ap.add_argument("--out", required=True)
    ap.add_argument("--backend", choices=["gloo", "nccl"], default=None)
    ap.add_argument("--check-sync-every", type=int, default=0)
    for flag in FLAGS:
        choices = flag.choices() if flag.choices is not None and not flag.path_suffix else None
        ap.add_argument(
            flag.name,
            dest=flag.field,
            type=flag.type,
            choices=choices,
            default=None,
            help=flag.describe(),
        )
    a = vars(ap.parse_args(argv))
    out, backend, every = a.pop("out"), a.pop("backend"), a.pop("check_sync_every")
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
