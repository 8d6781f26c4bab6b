"""Your own fitted device: measured pulse trains in, a device file out, then train on it.

A pulse-response measurement (SET and RESET ramps, one CSV column per ramp, one row per
pulse) is all `eapu.devices.fit` needs. Here the "measurement" is written by eapu itself
from the paper's cell (`write_example_trains`), so the fit's answer is known: the fitted
device-to-device spread should come back near ``taox_1t1r``'s 0.2 and its SD(εcell) near the
preset's. Give your own CSV files to ``--set`` and ``--reset`` to fit your cell instead.

What pulse trains do not contain (relaxation after a write, read noise, the verify
tolerance) is given in µS, as ``eapu device fit`` takes it in flags.

    python examples/own_device.py --out runs/example-device
    python examples/own_device.py --set my/SET.csv --reset my/RESET.csv --units uS
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from sklearn.datasets import load_digits

from eapu import AdamEaPU
from eapu.devices import get_device, save_device
from eapu.devices.fit import fit_device, read_pulse_trains, write_example_trains
from eapu.nn import convert
from eapu.programming import characterize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", type=Path, help="SET pulse trains (CSV); default: an example")
    parser.add_argument("--reset", type=Path, help="RESET pulse trains (CSV)")
    parser.add_argument("--units", default="uS", help="S, mS or uS")
    parser.add_argument("--relaxation-sd-us", type=float, default=2.0)
    parser.add_argument("--read-noise-sd-us", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=200, help="training mini-batches of 64")
    parser.add_argument("--out", type=Path, default=Path("runs/example-device"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    if args.set is None or args.reset is None:
        args.set, args.reset = write_example_trains(args.out, "taox_1t1r", ramps=100, pulses=40)
        print(f"example pulse trains of taox_1t1r: {args.set}, {args.reset}")
    trains = [
        read_pulse_trains(args.set, units=args.units, polarity="set"),
        read_pulse_trains(args.reset, units=args.units, polarity="reset"),
    ]
    fit = fit_device(
        trains,
        name="my-cell",
        relaxation_sd_us=args.relaxation_sd_us,
        read_noise_sd_us=args.read_noise_sd_us,
    )
    cell = fit.device
    path = args.out / "my-cell.toml"
    save_device(cell, path, extra={"fit": fit.stats})
    print(
        f"fitted {path}: window {cell.g_min_us:.1f}-{cell.g_max_us:.1f} µS, device-to-device "
        f"spread {fit.stats['set_dtod_sd']:.3f} (SET) / {fit.stats['reset_dtod_sd']:.3f} (RESET)"
    )

    # A device file is used like a preset's name, everywhere a device is asked for.
    mine = get_device(str(path))
    for name, device in (("my-cell.toml", mine), ("taox_1t1r", get_device("taox_1t1r"))):
        c = characterize(device, "write_verify", n_cells=2048)
        print(
            f"SD(εcell) under write-verify, {name:12s}: {c.sd_us:.2f} µS "
            f"({c.pulses_per_write:.1f} pulses per write)"
        )

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
    xbar = convert(model, device=str(path), scheme="memorial")
    opt = AdamEaPU(model.parameters(), lr=1e-2, seed=0)  # ΔWth from the fitted cell's εcell
    batches = torch.Generator().manual_seed(0)
    for _ in range(args.steps):
        idx = torch.randint(360, len(y), (64,), generator=batches)  # the first 360: test
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    model.eval()
    with torch.no_grad(), xbar.evaluation():
        acc = (model(x[:360]).argmax(1) == y[:360]).float().mean().item()
    s = opt.ledger.summary()
    print(
        f"trained on my-cell.toml: test accuracy {100 * acc:.1f} %, Rup {100 * s.rup:.1f} %, "
        f"Nup {s.nup:.3f}"
    )


if __name__ == "__main__":
    main()
