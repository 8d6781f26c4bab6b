"""``eapu list`` and ``eapu characterize``: what exists, and a device's SD(εcell)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from ..experiments import get_flag
from .app import app, console
from .options import Json, SchemeName, registry_or_file
from .tables import dump_json

__all__ = ["MAX_CELLS", "characterize", "list_", "registries"]

#: The most cells a characterisation sweep takes (a few hundred MB of tensors; 4096 is
#: plenty for an SD to 2 %).
MAX_CELLS = 1 << 22


def registries() -> dict[str, Any]:
    """What ``eapu list`` lists: one registry per kind of named thing."""
    from ..algorithms import ALGORITHMS
    from ..data import DATASETS
    from ..devices import DEVICES
    from ..experiments import METHODS, TASKS
    from ..models import MODELS
    from ..programming import SCHEMES
    from ..rules import RULES

    return {
        "devices": DEVICES,
        "schemes": SCHEMES,
        "rules": RULES,
        "tasks": TASKS,
        "methods": METHODS,
        "models": MODELS,
        "datasets": DATASETS,
        "algorithms": ALGORITHMS,
    }


@app.command("list")
def list_(
    what: Annotated[
        Literal[
            "devices", "schemes", "rules", "tasks", "methods", "models", "datasets", "algorithms"
        ],
        typer.Argument(help="what to list"),
    ],
    pattern: Annotated[str, typer.Argument(help="shell-style pattern of names")] = "*",
    json_: Json = False,
) -> None:
    """List what is registered (built in, or added by installed packages)."""
    reg = registries()[what]
    table = [(n, reg.description(n)) for n in reg.names(pattern)]
    if json_:
        dump_json([{"name": n, "description": d} for n, d in table])
        return
    t = Table(title=what)
    t.add_column("name")
    t.add_column("description")
    for name, desc in table:
        t.add_row(name, desc)
    console.print(t)


@app.command()
def characterize(
    device: Annotated[
        str,
        typer.Argument(
            help="device preset (eapu list devices) or a device file *.toml",
            parser=registry_or_file(get_flag("device")),
            metavar="DEVICE",
        ),
    ],
    scheme: Annotated[
        SchemeName | None,
        typer.Option(help="programming scheme (default: the device's verified one)"),
    ] = None,
    cells: Annotated[int, typer.Option(help="cells in the sweep", min=2, max=MAX_CELLS)] = 4096,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    max_pulses: Annotated[
        int | None,
        typer.Option(
            help="pulse budget per write of a verified scheme (default: the scheme's; "
            "write-verify's follows the device: 1.2 full swings, at least 100)",
            min=1,
        ),
    ] = None,
) -> None:
    """Measure SD(εcell) of a device under a scheme by a write/read sweep over the window."""
    from ..devices import get_device
    from ..experiments.config import usable_device
    from ..programming import characterize as char

    dev = get_device(device)
    if scheme is None:  # the device's own: a device file may name one that does not exist
        usable_device(dev, device)
    options = {} if max_pulses is None else {"max_pulses": max_pulses}
    c = char(dev, scheme, n_cells=cells, seed=seed, **options)
    t = Table(title=f"{c.device} / {c.scheme}: SD(εcell) = {c.sd_us:.3g} µS")
    t.add_column("target G (µS)", justify="right")
    t.add_column("SD εcell (µS)", justify="right")
    for g, sd in zip(c.g_centers_us, c.sd_by_g_us, strict=True):
        t.add_row(f"{g:.1f}", f"{sd:.3g}")
    console.print(t)
    console.print(
        f"mean εcell {c.mean_us:.3g} µS, pulses per write {c.pulses_per_write:.3g}, "
        f"verify reads per write {c.reads_per_write:.3g}, fail rate {c.fail_rate:.3g}"
    )
    if c.max_pulses is not None:
        console.print(f"budget: {c.max_pulses} pulses per write", markup=False)
    if c.budget_limited > 0.01:
        console.print(
            f"warning: {c.budget_limited:.1%} of the writes failed having spent the whole "
            f"{c.max_pulses}-pulse budget: SD(εcell) reflects the budget, not the device; "
            "give a larger --max-pulses",
            markup=False,
        )
