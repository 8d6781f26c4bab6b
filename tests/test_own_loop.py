"""A researcher's own training loop on a crossbar: no silent trap.

Each test here failed on eapu before the crossbar moved into the model (a plain optimizer
trained the parameter while the cells stayed put, a deepcopy trained at weight level, an
evaluation in eval() mode changed what training read, an optimizer built before convert
stepped orphans, sd_us was ignored at device level, ...), and the last one runs the loop a
user writes against `eapu run` on the same seed.
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from eapu.experiments import Experiment, RunConfig, get_task, run
from eapu.experiments.experiment import EVAL_KEY, input_key
from eapu.ledger import FIELDS
from eapu.models import get_model
from eapu.nn import convert
from eapu.optim import AdamEaPU, SGDEaPU


def small() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 3))


def batches(n: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(16, 12, generator=g), torch.randint(0, 3, (16,), generator=g))
        for _ in range(n)
    ]


def step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: torch.optim.Adam(ps, lr=1e-2),
        lambda ps: torch.optim.Adam(ps, lr=1e-2, fused=True),
        lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9),
    ],
    ids=["adam", "fused-adam", "sgd"],
)
def test_a_plain_torch_optimizer_is_refused_before_it_moves_an_analog_weight(make) -> None:
    model = small()
    xb = convert(model, device="taox_1t1r", scheme="memorial")
    opt = make(model.parameters())
    before = [p.detach().clone() for p in model.parameters()]
    ((x, y),) = batches(1)
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    with pytest.raises(RuntimeError, match=r"without writing its cells.*in-situ optimizer"):
        opt.step()
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, b)  # nothing moved
    assert torch.equal(xb.tiles[0].weight(), model[0].weight)
    # a plain optimizer over the digital parameters only is fine
    torch.optim.SGD([model[0].bias, model[2].bias], lr=0.1).step()


def test_an_in_place_edit_behind_the_tile_is_refused_by_the_next_forward() -> None:
    model = small()
    convert(model, device="taox_1t1r", scheme="memorial")
    with torch.no_grad():
        model[0].weight.mul_(0.5)
    with pytest.raises(RuntimeError, match=r"changed behind its tile.*tile.load"):
        model(torch.randn(2, 12))


def test_a_deepcopy_is_an_analog_model_on_its_own_crossbar() -> None:
    model = small()
    convert(model, device="taox_1t1r", scheme="memorial", seed=3)
    twin = copy.deepcopy(model)
    assert twin[0].weight.eapu_tile is twin[0].tile is not model[0].tile
    assert twin[0].tile.crossbar is twin[2].tile.crossbar is not model[0].tile.crossbar
    opts = [AdamEaPU(m.parameters(), lr=1e-2, seed=1) for m in (model, twin)]
    for x, y in batches(6):
        for m, o in zip((model, twin), opts, strict=True):
            step(m, o, x, y)
    a, b = (o.ledger.summary() for o in opts)
    assert a.pulses == b.pulses > a.written > 0  # memorial pulses, not weight-level writes
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q)
    # and its state_dict round-trips bit for bit
    buf = io.BytesIO()
    torch.save(twin.state_dict(), buf)
    third = small()
    convert(third, device="taox_1t1r", scheme="memorial", seed=99)
    third.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    for (k, v), (k2, v2) in zip(twin.state_dict().items(), third.state_dict().items(), strict=True):
        if torch.is_tensor(v):
            assert k == k2 and torch.equal(v, v2), k


def test_evaluating_in_eval_mode_does_not_change_what_training_reads() -> None:
    ends = []
    for evaluate in (False, True):
        model = small()
        convert(model, device="taox_1t1r", scheme="memorial", seed=0)
        opt = AdamEaPU(model.parameters(), lr=1e-2, seed=0)
        for i, (x, y) in enumerate(batches(30)):
            step(model, opt, x, y)
            if evaluate and i % 5 == 4:
                model.eval()
                with torch.no_grad():
                    model(torch.randn(64, 12))  # reads with noise, from the evaluation stream
                model.train()
        ends.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*ends, strict=True):
        assert torch.equal(a, b)


def test_an_optimizer_built_before_convert_writes_through_the_tiles() -> None:
    results = []
    for before in (True, False):
        model = small()
        opt = SGDEaPU(model.parameters(), lr=0.05, seed=2) if before else None
        xb = convert(model, device="taox_1t1r", scheme="memorial", seed=0)
        opt = opt or SGDEaPU(model.parameters(), lr=0.05, seed=2)
        for x, y in batches(5):
            step(model, opt, x, y)
        results.append((opt.ledger.summary(), [p.detach().clone() for p in model.parameters()]))
        assert torch.equal(xb.tiles[0].weight(), model[0].weight)
    (s1, w1), (s2, w2) = results
    assert s1.pulses == s2.pulses > 0
    assert all(torch.equal(a, b) for a, b in zip(w1, w2, strict=True))


def test_device_level_sd_us_and_rwg_are_refused_and_the_threshold_used_is_shown() -> None:
    model = small()
    xb = convert(model, device="taox_1t1r", scheme="memorial")
    with pytest.raises(ValueError, match=r"Invalid sd_us: 8.*threshold_us"):
        AdamEaPU(model.parameters(), sd_us=8.0)
    with pytest.raises(ValueError, match=r"Invalid rwg_per_us: 0.025; .* mapped at Rwg 0.0125"):
        AdamEaPU(model.parameters(), rwg_per_us=1 / 40)
    opt = AdamEaPU(model.parameters())
    th = opt.thresholds()
    assert {t["name"] for t in th} == {"0", "2"}
    assert all(t["sd_us"] == xb.sd_us for t in th)
    assert all(t["threshold"] == pytest.approx(xb.sd_us / 80, rel=1e-12) for t in th)
    assert f"threshold {xb.sd_us:.4g} µS (the device's SD(εcell), characterised)" in repr(opt)
    pinned = AdamEaPU(model.parameters(), threshold_us=1.0)
    assert "threshold 1 µS (threshold_us)" in repr(pinned)


def test_torch_compile_of_the_step_runs_it() -> None:
    model = small()
    opt = AdamEaPU(model.parameters(), lr=1e-2, seed=0)
    ((x, y),) = batches(1)
    nn.functional.cross_entropy(model(x), y).backward()
    torch.compile(opt.step)()
    assert len(opt.ledger) == 1


FAST = dict(steps=12, eval_every=4, eval_samples=64)


def test_a_researchers_loop_gives_what_eapu_run_gives(tmp_path: Path) -> None:
    """convert, AdamEaPU, a deepcopy of the best model, eval() every few steps, save and
    resume halfway: the same weights, pulses and final metric as `eapu run` on the seed."""
    cfg = RunConfig(task="denoise", method="eapu+mp", seed=0, **FAST)
    ran = run(cfg, tmp_path / "run")
    resolved = cfg.resolved()
    exp = Experiment(resolved, get_task("denoise"))

    def fresh() -> tuple[nn.Module, AdamEaPU]:
        model = get_model("denoise_ae", seed=0)
        convert(model, device="taox_1t1r", scheme="memorial", seed=0)
        return model, AdamEaPU(model.parameters(), lr=resolved.lr, seed=0)

    def evaluate(model: nn.Module) -> float:
        model.eval()  # the crossbar's evaluation stream: training reads are untouched
        inp = exp.inputs(exp.test_x, key=EVAL_KEY)
        with torch.no_grad():
            out = model(inp)
        model.train()
        return float(exp.kind.evaluate(exp, model, inp, out)[0]["ssim"])

    model, opt = fresh()
    best, best_ssim = None, evaluate(model)  # where the curve starts, as eapu run's
    for s in range(FAST["steps"]):
        if s == 6:  # save, rebuild from scratch, load, go on
            blob = io.BytesIO()
            torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, blob)
            model, opt = fresh()
            ck = torch.load(io.BytesIO(blob.getvalue()), weights_only=True)
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["opt"])
        x, y = exp.batch(s)
        inp = exp.inputs(x, key=input_key(0, s))
        opt.zero_grad()
        exp.loss(model(inp), x, y).backward()
        opt.step()
        if (s + 1) % FAST["eval_every"] == 0:
            ssim = evaluate(model)
            if ssim > best_ssim:
                best, best_ssim = copy.deepcopy(model), ssim
    assert best is not None
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    for name, p in model.named_parameters():
        assert torch.equal(p, ck["model"][name]), name
    summary = opt.ledger.summary()
    assert summary.pulses == ran["pulses"] and summary.written == ran["written"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert ssim == metrics["ssim"]
    assert opt.ledger.table()[..., FIELDS.index("pulses")].sum() == ran["pulses"]
