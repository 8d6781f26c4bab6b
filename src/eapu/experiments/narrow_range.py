"""The paper's narrow-range comparison: EaPU at Rwg 1/40 against BP at Rwg 1/4000.

Liu et al. (2025) report that EaPU trains at Rwg = 1/40 µS⁻¹ better than plain BP at
1/4000 (Supplementary Table 2), and that the narrower conductance range makes inference
35.51× cheaper (19.71 µJ against 700 µJ at 180 nm, Fig. 6a). With a fixed weight range
``w_max`` the operating range is Gmax = w_max / Rwg (`eapu.tiles.operating_range`), so BP
at 1/4000 reads about 100× larger conductances::

    >>> from eapu.experiments.narrow_range import narrow_range_comparison
    >>> result = narrow_range_comparison(task="denoise", out_dir="runs/nr")  # doctest: +SKIP
    >>> result["ratio"]  # BP's inference energy over EaPU's  # doctest: +SKIP

The two trainings are ordinary runs of the one runner (`eapu.experiments.run`): the run
directories ``OUT/eapu`` (method ``eapu+gaussian``) and ``OUT/bp`` (``bp+gaussian``), which
``eapu report``, ``eapu energy`` and ``eapu stats`` open like any other, and which a second
call resumes (or, finished, does not train again). The comparison is computed from what
they wrote (``metrics.json``, ``energy.json``).

Both runs use the weight-level ``gaussian`` write at device level (a written cell, the
initial weights included, lands at its target + N(0, ``sd_us``), the paper's simulation),
on a ``gaussian`` device with the ``taox_1t1r`` floor of 5 µS and a window exactly as wide
as each Rwg needs, written as the device file ``device.toml`` in each run directory: no
1T1R cell spans the 8000 µS that BP at 1/4000 needs with w_max = 1, which is why the
paper's comparison is a simulation. The EaPU threshold is pinned to ``sd_us`` (ΔWth =
sd_us · Rwg, the paper's). The periphery costs of the energy model are estimates; the
result also lists the inference ratio as they vary, the periphery factor and the read
integration time (``t_read_s``, `eapu.energy.fit_read_time`) at which the crossbar-scope
ratio would equal the paper's, and the ratio on the node ``180nm-fit``, whose ``t_read_s``
was fitted so on the denoise autoencoder's runs (`FITTED`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..devices import device_toml, get_device, save_device
from ..energy import (
    Counts,
    energy,
    fit_read_time,
    get_node,
    periphery_sweep,
    scale_periphery,
)
from ..files import read_json
from ..rundir import RunDir
from ..tiles import operating_range
from .config import RunConfig
from .registry import get_task
from .runner import run

__all__ = ["FITTED", "PAPER", "narrow_range_comparison"]

#: The paper's figures (Fig. 6a, Supplementary Note 2): inference energy at 180 nm.
PAPER: dict[str, float] = {
    "eapu_rwg_per_us": 1 / 40,
    "bp_rwg_per_us": 1 / 4000,
    "eapu_inference_uj": 19.71,
    "bp_inference_uj": 700.0,
    "ratio": 700.0 / 19.71,
}
#: What the node ``180nm-fit`` (``energy_nodes.toml``) was fitted to: its ``t_read_s`` gives
#: the paper's ratio in the crossbar scope on the inference counts of the denoise
#: autoencoder at these mean read conductances, those of ``eapu narrow-range --task
#: denoise`` (seed 0, 1100 steps: EaPU at 1/40, BP at 1/4000, reference cells included).
FITTED: dict[str, Any] = {
    "node": "180nm-fit",
    "task": "denoise",
    "seed": 0,
    "steps": 1100,
    "eapu_g_mean_us": 44.33,
    "bp_g_mean_us": 4158.0,
    "scope": "crossbar",
}
_FLOOR_US = 5.0  # the taox_1t1r window's floor (devices.taox_1t1r)
#: The two runs: directory name, method, rule.
_RUNS = (("eapu", "eapu+gaussian", "eapu"), ("bp", "bp+gaussian", "exact"))


def _run(
    run_dir: Path,
    task: str,
    method: str,
    rule: str,
    rwg: float,
    *,
    sd_us: float,
    steps: int,
    seed: int,
    eval_samples: int,
) -> dict[str, Any]:
    """Train (or resume) one of the two runs in ``run_dir``; its row from what it wrote."""
    device = get_device(
        "gaussian",
        sd_us=sd_us,
        g_min_us=_FLOOR_US,
        g_max_us=_FLOOR_US + 2 / rwg,  # the reference column's 2·Gmax above the floor
    )
    path = run_dir.resolve() / "device.toml"  # config.json names it: absolute, for any cwd
    if path.exists() and path.read_text() != device_toml(device):
        raise ValueError(
            f"Invalid out_dir: {run_dir.parent} holds a narrow-range run on another device "
            f"({path}, e.g. another sd_us or Rwg); give another out_dir (--runs)"
        )
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        save_device(device, path)
    cfg = RunConfig(
        task=task,
        method=method,
        device=str(path),
        seed=seed,
        steps=steps,
        rwg_per_us=rwg,
        threshold_us=sd_us,  # the device's SD(εcell) is sd_us: its threshold, pinned
        eval_samples=eval_samples,
    )
    run(cfg, run_dir)
    metrics = read_json(RunDir(run_dir).metrics)
    acc = read_json(RunDir(run_dir).energy)
    return {
        "rule": rule,
        "rwg_per_us": rwg,
        "g_range_us": list(operating_range(device, "reference_column", rwg)),
        "g_mean_us": acc["g_mean_us"],
        "clipped": metrics["clipped"],
        "rup": metrics["rup"],
        "ssim": metrics["ssim"],
        "psnr": metrics["psnr"],
        "run_dir": str(run_dir),
        "_counts": Counts(**acc["inference_per_sample"]),
    }


def narrow_range_comparison(
    *,
    task: str = "denoise",
    eapu_rwg_per_us: float = 1 / 40,
    bp_rwg_per_us: float = 1 / 4000,
    sd_us: float = 2.0,
    w_max: float = 1.0,
    steps: int | None = None,
    seed: int = 0,
    eval_samples: int = 512,
    node: str = "180nm",
    nodes_file: str | Path | None = None,
    periphery_factors: tuple[float, ...] = (0.0, 0.01, 0.1, 1.0),
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train ``task`` with EaPU at ``eapu_rwg_per_us`` and with BP at ``bp_rwg_per_us`` and
    compare their quality and inference energy per sample on ``node``.

    The runs are the run directories ``out_dir/eapu`` and ``out_dir/bp`` (default
    ``out_dir``: ``runs/TASK-narrow-range``); a run already there resumes, a finished one is
    not trained again (one of another config is refused). ``w_max`` must be 1 (the weight
    range of a run's crossbar, the paper's Wmax).

    Returns a JSON-ready dict: one row per method (SSIM, PSNR, conductance range and mean,
    out-of-window targets, inference energy by category and scope in J per sample, its run
    directory), the ratio BP / EaPU of inference energy (total and analog scope), the analog
    ratio as the periphery estimate is scaled by each of ``periphery_factors`` and by the
    factor at which it equals the paper's 35.51 (``periphery_factor_for_paper_ratio``, None if
    no factor >= 0 does), the integration time at which the crossbar-scope ratio does
    (``t_read_s_for_paper_ratio``, None if none > 0 does), the crossbar-scope ratio on the
    fitted node (``fitted_node``: `FITTED` and the ratio), and `PAPER`.
    """
    for name, v in (("eapu_rwg_per_us", eapu_rwg_per_us), ("bp_rwg_per_us", bp_rwg_per_us)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"Invalid {name}: {v!r}; allowed: a finite number > 0")
    if w_max != 1.0:
        raise ValueError(
            f"Invalid w_max: {w_max!r}; allowed: 1.0 (a run's crossbar holds |W| <= 1, the "
            "paper's Wmax; change the range with the Rwg instead)"
        )
    info = get_task(task)
    if info.kind not in ("denoise", "sr"):
        raise ValueError(f"Invalid task: {task!r}; allowed: a denoise or sr task")
    steps = info.steps if steps is None else steps
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"Invalid steps: {steps!r}; allowed: an integer >= 1")
    n = get_node(node, nodes_file)
    out = Path("runs") / f"{task}-narrow-range" if out_dir is None else Path(out_dir)
    rows = []
    for (label, method, rule), rwg in zip(_RUNS, (eapu_rwg_per_us, bp_rwg_per_us), strict=True):
        r = _run(
            out / label,
            task,
            method,
            rule,
            rwg,
            sd_us=sd_us,
            steps=steps,
            seed=seed,
            eval_samples=eval_samples,
        )
        counts = r["_counts"]
        r["method"] = label
        r["inference_j"] = energy(counts, n).as_dict()
        r["periphery"] = periphery_sweep(counts, n, list(periphery_factors))
        rows.append(r)
    eapu_c, bp_c = rows[0].pop("_counts"), rows[1].pop("_counts")
    e_eapu, e_bp = rows[0]["inference_j"], rows[1]["inference_j"]
    # analog(f) = cells + f · periphery for each method; solve bp(f) / eapu(f) = paper ratio
    cells = [energy(c, scale_periphery(n, 0.0)).scope("analog") for c in (eapu_c, bp_c)]
    periph = [
        energy(c, n).scope("analog") - cell for c, cell in zip((eapu_c, bp_c), cells, strict=True)
    ]
    r_paper = PAPER["ratio"]
    denom = r_paper * periph[0] - periph[1]
    f_paper = (cells[1] - r_paper * cells[0]) / denom if denom != 0 else None
    if f_paper is not None and f_paper < 0:
        f_paper = None
    try:
        t_paper: float | None = fit_read_time(eapu_c, bp_c, n, r_paper, "crossbar")
    except ValueError:
        t_paper = None
    fitted = get_node(FITTED["node"], nodes_file)
    e_fit = [energy(c, fitted).scope("crossbar") for c in (eapu_c, bp_c)]
    factors = list(periphery_factors) + ([f_paper] if f_paper is not None else [])
    by_factor = [
        {
            "factor": f,
            "ratio_analog": energy(bp_c, scale_periphery(n, f)).scope("analog")
            / energy(eapu_c, scale_periphery(n, f)).scope("analog"),
        }
        for f in factors
    ]
    return {
        "task": task,
        "steps": steps,
        "seed": seed,
        "sd_us": sd_us,
        "w_max": w_max,
        "node": node,
        "out_dir": str(out),
        "rows": rows,
        "ratio": e_bp["total"] / e_eapu["total"],
        "ratio_analog": e_bp["scope_analog"] / e_eapu["scope_analog"],
        "ratio_analog_by_periphery": by_factor,
        "periphery_factor_for_paper_ratio": f_paper,
        "t_read_s_for_paper_ratio": t_paper,
        "fitted_node": {
            **FITTED,
            "ratio_crossbar": e_fit[1] / e_fit[0],
            "inference_crossbar_j": {"eapu": e_fit[0], "bp": e_fit[1]},
        },
        "paper": dict(PAPER),
        "device": f"gaussian (SD {sd_us:g} µS) with a window from {_FLOOR_US:g} µS as wide as "
        "each Rwg needs",
    }
