"""The seam (`eapu.seam.AnalogTile`) is all the layers and optimizers use.

A second implementation, `RecordingTile`, records every call and hands it to the simulator's
tile: it passes the same conformance checks as `eapu.tiles.Tile`, and the paper's
autoencoder bound to it (`eapu.nn.bind`) trains to the same weights, pulses and ledger, bit
for bit. A chip driver would implement the same protocol; nothing above it would change.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from eapu.algorithms import MixedPrecision, TikiTakaV2
from eapu.experiments import Experiment, RunConfig, get_task
from eapu.experiments.experiment import input_key
from eapu.ledger import FIELDS
from eapu.models import get_model
from eapu.nn import bind, convert
from eapu.optim import AdamEaPU
from eapu.seam import AnalogTile


class RecordingTile:
    """An `AnalogTile` that records each call and passes it to another tile."""

    def __init__(self, inner: AnalogTile, log: Counter[str]) -> None:
        self.inner, self.log = inner, log
        self.name, self.shape, self.transposed = inner.name, inner.shape, inner.transposed

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.log[name] += 1
        return getattr(self.inner, name)(*args, **kwargs)

    # properties
    scheme = property(lambda self: self.inner.scheme)
    rwg_per_us = property(lambda self: self.inner.rwg_per_us)
    sd_us = property(lambda self: self.inner.sd_us)
    cells = property(lambda self: self.inner.cells)
    cells_per_weight = property(lambda self: self.inner.cells_per_weight)
    pulse_step_us = property(lambda self: self.inner.pulse_step_us)
    noisy_reads = property(lambda self: self.inner.noisy_reads)
    clipped = property(lambda self: self.inner.clipped)
    load_record = property(lambda self: self.inner.load_record)

    # methods
    def program(self, dwn: Tensor, *, scheme: str | None = None) -> Tensor:
        return self._call("program", dwn, scheme=scheme)

    def flush(self) -> None:
        self._call("flush")

    def load(self, weight: Tensor) -> Tensor:
        return self._call("load", weight)

    def weight(self) -> Tensor:
        return self._call("weight")

    def read(self, *, evaluation: bool = False) -> Tensor:
        return self._call("read", evaluation=evaluation)

    def symmetry_point(self) -> Tensor:
        return self._call("symmetry_point")

    def conductances(self) -> Tensor:
        return self._call("conductances")

    def reference_conductances(self) -> Tensor:
        return self._call("reference_conductances")

    def write_counts(self) -> Tensor:
        return self._call("write_counts")

    def sibling(self, suffix: str, weight: Tensor) -> AnalogTile:
        return RecordingTile(self._call("sibling", suffix, weight), self.log)

    def publish(self, parameter: Any, value: Tensor | None = None) -> None:
        self._call("publish", parameter, value)

    def check(self, parameter: Any) -> None:
        self._call("check", parameter)


def recorded(model: nn.Module) -> Counter[str]:
    """Bind every analog layer of ``model`` to a `RecordingTile` around its tile."""
    log: Counter[str] = Counter()
    for m in model.modules():
        if hasattr(m, "tile"):
            bind(m, RecordingTile(m.tile, log))
    return log


def test_the_recording_tile_is_an_analog_tile() -> None:
    model = nn.Sequential(nn.Linear(4, 3))
    convert(model, device="ideal", scheme="gaussian", load_scheme="gaussian")
    assert isinstance(RecordingTile(model[0].tile, Counter()), AnalogTile)
    with pytest.raises(TypeError, match="Invalid tile"):
        bind(model[0], object())  # type: ignore[arg-type]


@pytest.mark.parametrize("wrap", [False, True], ids=["simulator", "recording"])
def test_conformance_of_a_tile(wrap: bool) -> None:
    """What every implementation must do: a zero update writes nothing, an update moves the
    weight by about ΔWn, a non-finite entry is skipped and counted, the row is filled after a
    flush, reads are noisy around the weight, conductances and weights agree."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8, bias=False))
    convert(model, device="taox_1t1r", scheme="memorial", seed=0)
    if wrap:
        recorded(model)
    tile, p = model[0].tile, model[0].weight
    w0 = tile.weight().clone()
    row = tile.program(torch.zeros(tile.shape))
    tile.flush()
    assert int(row[FIELDS.index("written")]) == 0 and torch.equal(tile.weight(), w0)
    dwn = torch.zeros(tile.shape)
    dwn[0, :4] = 0.2
    dwn[1, 0] = float("nan")
    row = tile.program(dwn)
    tile.flush()
    assert int(row[FIELDS.index("written")]) == 4 and int(row[FIELDS.index("skipped")]) == 1
    moved = tile.weight() - w0
    assert torch.allclose(moved[0, :4], torch.full((4,), 0.2), atol=4 * tile.sd_us / 80)
    assert torch.equal(moved[2:], torch.zeros_like(moved[2:]))
    g, ref = tile.conductances(), tile.reference_conductances()
    assert torch.allclose((g - ref) * tile.rwg_per_us, tile.weight(), atol=1e-6)
    reads = torch.stack([tile.read() for _ in range(200)])
    assert tile.noisy_reads and 0 < float((reads - tile.weight()).std()) < 0.01
    tile.publish(p)
    tile.check(p)
    with torch.no_grad():
        p.add_(1.0)
    with pytest.raises(RuntimeError, match="behind its tile"):
        tile.check(p)


def _train(model: nn.Module, opt: torch.optim.Optimizer, exp: Experiment, steps: int) -> None:
    for s in range(steps):
        x, y = exp.batch(s)
        inp = exp.inputs(x, key=input_key(0, s))
        opt.zero_grad()
        exp.loss(model(inp), x, y).backward()
        opt.step()


def test_the_demo_trains_to_the_same_result_through_a_second_implementation() -> None:
    cfg = RunConfig(task="denoise", method="eapu+mp", steps=12, eval_samples=16).resolved()
    exp = Experiment(cfg, get_task("denoise"))
    ends = []
    for wrap in (False, True):
        model = get_model("denoise_ae", seed=0)
        convert(model, device="taox_1t1r", scheme="memorial", seed=0)
        log = recorded(model) if wrap else Counter()
        opt = AdamEaPU(model.parameters(), lr=cfg.lr, seed=0)
        _train(model, opt, exp, cfg.steps)
        ends.append(([p.detach().clone() for p in model.parameters()], opt.ledger.table()))
        if wrap:  # every write, read and weight went through the seam
            assert log["program"] == 3 * cfg.steps and log["read"] >= 3 * cfg.steps
            assert log["publish"] >= 3 * cfg.steps and log["check"] >= 3 * cfg.steps
    (w1, t1), (w2, t2) = ends
    assert all(torch.equal(a, b) for a, b in zip(w1, w2, strict=True))
    assert torch.equal(t1, t2) and int(t1[..., FIELDS.index("pulses")].sum()) > 0


@pytest.mark.parametrize(
    "make",
    [lambda ps: MixedPrecision(ps, lr=0.05), lambda ps: TikiTakaV2(ps, lr=0.05, seed=0)],
    ids=["mixed-precision", "ttv2"],
)
def test_the_other_algorithms_run_through_the_seam_alike(make: Any) -> None:
    ends = []
    for wrap in (False, True):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.Tanh(), nn.Linear(8, 3))
        convert(model, device="taox_1t1r", scheme="sign", seed=0)
        if wrap:
            recorded(model)
        opt = make(model.parameters())
        if hasattr(opt, "watch"):
            opt.watch(model)
        g = torch.Generator().manual_seed(1)
        for _ in range(5):
            x = torch.rand(8, 1, 6, 6, generator=g)
            y = torch.randint(0, 3, (8,), generator=g)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        ends.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*ends, strict=True))
