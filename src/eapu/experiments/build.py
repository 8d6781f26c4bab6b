"""Build a run's objects from its resolved config: network, crossbar, optimizer, schedule."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..algorithms import get_algorithm
from ..devices import Device, get_device
from ..files import load_checkpoint
from ..hwa import HWANoise, hwa_noise
from ..models import get_model, model_info
from ..nn import convert, load_legacy_state
from ..optim import AdamEaPU, AdamNoise, InSituOptimizer, SGDEaPU, SGDNoise
from ..rundir import RunDir
from ..tiles import Crossbar
from .config import OPTIMIZERS, ResolvedConfig, method_options
from .experiment import Experiment
from .registry import MethodInfo, get_method, get_task

__all__ = ["Built", "build", "build_model", "load_model_state", "load_run", "place", "run_device"]

#: The named optimizer of each (base optimizer, rule): what a run builds where one fits.
NAMED: dict[tuple[type[torch.optim.Optimizer], str | None], type[InSituOptimizer]] = {
    (torch.optim.Adam, "eapu"): AdamEaPU,
    (torch.optim.SGD, "eapu"): SGDEaPU,
    (torch.optim.Adam, "exact"): AdamNoise,
    (torch.optim.SGD, "exact"): SGDNoise,
}

# The hardware-aware noise draws from its own stream.
_HWA_SEED_OFFSET = 0x5EED


@dataclass
class Built:
    """The objects of one run."""

    model: nn.Module
    crossbar: Crossbar | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    hwa: HWANoise | None


def build_model(cfg: ResolvedConfig, exp: Experiment) -> nn.Module:
    """The task's network, sized to the data where its factory takes those arguments."""
    task = get_task(cfg.task)
    kw: dict[str, Any] = dict(task.model_kw) if cfg.model == task.model else {}
    kw.update(exp.kind.model_kw(exp))
    if cfg.width is not None:
        kw["width"] = cfg.width
    factory = model_info(cfg.model).factory
    cls = typing.get_type_hints(factory).get("return")
    accepted = inspect.signature(cls).parameters if isinstance(cls, type) else kw
    if cfg.width is not None and "width" not in accepted:
        raise ValueError(
            f"Invalid width: {cfg.width!r}; model {cfg.model!r} has no width "
            "(preact_resnet* have one); leave --width out"
        )
    return get_model(cfg.model, seed=cfg.seed, **{k: v for k, v in kw.items() if k in accepted})


def run_device(cfg: ResolvedConfig) -> Device:
    """The run's device model: the preset with the run's stuck-cell fractions."""
    dev = get_device(cfg.device)
    if cfg.stuck_off or cfg.stuck_on:
        dev = dataclasses.replace(
            dev, stuck_off_fraction=cfg.stuck_off, stuck_on_fraction=cfg.stuck_on
        )
    return dev


def place(model: nn.Module, cfg: ResolvedConfig, method: MethodInfo) -> Crossbar:
    """Put the network on the run's crossbar (device, the method's scheme, Rwg, seed).

    A device kind with its own weight unit (`eapu.devices.AihwkitDevice`: aihwkit's w = 0 at
    ``g_zero_us``, weights set exactly as aihwkit's ``set_weights``) names the reference, the
    load scheme and SD(εcell) in ``crossbar_defaults()``; the method's own load scheme comes
    first.
    """
    dev = run_device(cfg)
    own = dev.crossbar_defaults()
    return convert(
        model,
        device=dev,
        scheme=method.scheme,
        load_scheme=method.load_scheme or own.get("load_scheme"),
        rwg_per_us=cfg.rwg_per_us,
        g_ref_us=own.get("g_ref_us"),
        sd_us=own.get("sd_us"),
        seed=cfg.seed,
    )


def build(cfg: ResolvedConfig, exp: Experiment) -> Built:
    """Every object of the run ``cfg`` (resolved), fresh: nothing is loaded from disk except
    the ``init_from`` weights."""
    method = get_method(cfg.method)
    model = build_model(cfg, exp)
    exp.check_fits(model)
    if cfg.init_from:  # transfer learning: start from another run's weights
        path = Path(cfg.init_from)
        if not path.exists():
            raise ValueError(f"Invalid init_from: {path} does not exist; give a run directory")
        ck = load_checkpoint(RunDir(path).checkpoint if path.is_dir() else path)
        try:
            model.load_state_dict(
                {k: v for k, v in ck["model"].items() if not k.endswith("_extra_state")}
            )
        except RuntimeError:
            theirs = ck.get("config", {}).get("model", "another network")
            raise ValueError(
                f"Invalid init_from: {path} holds a {theirs!r} run; this run's model is "
                f"{cfg.model!r} (give --model {theirs} or a run of {cfg.model})"
            ) from None
    xb = place(model, cfg, method) if method.in_situ else None
    model.to(exp.device)
    base: Any
    base, base_kw = OPTIMIZERS[cfg.optimizer]
    opt: torch.optim.Optimizer
    if method.algorithm is not None:
        # built after convert: it places its own arrays
        algo: Any = get_algorithm(method.algorithm)
        # the run options its algorithm declares, where the run sets them (--fast-lr ...)
        own = {k: getattr(cfg, k) for k in method_options(method.name)}
        own = {k: v for k, v in own.items() if v is not None}
        opt = algo(model.parameters(), lr=cfg.lr, base=base, seed=cfg.seed, **own, **base_kw)
        if hasattr(opt, "watch"):  # Tiki-Taka counts samples and scales A by the layers' data
            opt.watch(model)
    elif method.rule is None:
        opt = base(model.parameters(), lr=cfg.lr, **base_kw)
    else:
        # the named optimizers where one fits, so that a user's loop with AdamEaPU (or SGDEaPU,
        # AdamNoise, SGDNoise) gives what the run gives
        cls = NAMED.get((base, method.rule))
        options: dict[str, Any] = dict(
            # at device level the tile brings its device's SD(εcell) and its crossbar's Rwg
            sd_us=cfg.sd_us if method.level == "weight" else None,
            rwg_per_us=cfg.rwg_per_us if method.level == "weight" else None,
            threshold_us=cfg.threshold_us,
            seed=cfg.seed,
            lr=cfg.lr,
            **base_kw,
        )
        if cls is not None:
            opt = cls(model.parameters(), **options)
        else:
            opt = InSituOptimizer(model.parameters(), base, rule=method.rule, **options)
    steps = cfg.steps
    sched: Any = None
    if cfg.schedule == "step":
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [steps // 2, steps * 3 // 4], 0.1)
    elif cfg.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    hwa = None
    if method.hardware_aware:
        g = torch.Generator().manual_seed(cfg.seed + _HWA_SEED_OFFSET)
        assert cfg.sd_us is not None  # hwa trains in software: its noise is sd_us's
        hwa = hwa_noise(model, cfg.sd_us, cfg.rwg_per_us, g)
    return Built(model, xb, opt, sched, hwa)


def load_run(run_dir: str | Path) -> tuple[nn.Module, Crossbar | None, Experiment, ResolvedConfig]:
    """Rebuild a finished run's network (and crossbar) from its checkpoint."""
    ck_path = RunDir(run_dir).checkpoint
    if not ck_path.exists():
        raise FileNotFoundError(f"no checkpoint.pt in {run_dir}; run the task first")
    ck = load_checkpoint(ck_path)
    cfg = ResolvedConfig.from_dict(ck["config"])
    method = get_method(cfg.method)
    exp = Experiment(cfg, get_task(cfg.task))
    model = build_model(cfg, exp)
    xb = None
    if method.level == "device":
        xb = place(model, cfg, method)
        if method.algorithm is not None:
            # its extra arrays, placed as in the run
            algo: Any = get_algorithm(method.algorithm)
            algo(model.parameters(), lr=cfg.lr)
    load_model_state(model, ck)
    return model, xb, exp, cfg


def load_model_state(model: nn.Module, ck: dict[str, Any]) -> None:
    """Load a checkpoint's network (and its crossbar, part of the model's state); one from
    before the crossbar moved into the model's state is converted (`load_legacy_state`)."""
    if ck.get("crossbar"):
        load_legacy_state(model, ck["model"], ck["crossbar"])
    else:
        model.load_state_dict(ck["model"])
