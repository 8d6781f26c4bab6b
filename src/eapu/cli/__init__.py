"""The ``eapu`` command: run, compare and report the paper's experiments, list what exists.

    eapu compare denoise --out runs/denoise           # all device-level methods, taox_1t1r
    eapu run sr2 --method eapu+mp --seed 1 --out runs/sr2-mp
    eapu characterize taox_1t1r --scheme memorial
    eapu list devices --json
    python -m eapu --version

Options come from flags or from a TOML file (``--config run.toml``) whose keys are the flag
names with underscores (``batch_size = 64``); flags given on the command line win. The run
options are built from one table, `eapu.experiments.FLAGS`; a name the registries do not
know is rejected by the parser, and ``--help`` lists the choices.

The package's rooms: `app` (the command group and its errors), `options` (flags from
`FLAGS`, ``--config``, ``KEY=V1,V2``), `tables` (what is printed), and one module per group
of commands: `train` (run, compare, report), `analysis` (energy, narrow-range, retention,
stats), `sweep`, `catalog` (list, characterize), `device` (``eapu device ...``).
"""

from __future__ import annotations

from . import analysis, catalog, sweep, train  # noqa: F401  (their commands register on app)
from .app import app, user_message
from .device import device_app

app.add_typer(device_app, name="device")

__all__ = ["app", "user_message"]
