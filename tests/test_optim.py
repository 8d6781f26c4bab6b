"""InSituOptimizer: the torch optimizer contract, EaPU on analog parameters, resume, bad input."""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
import torch
from torch import nn

from eapu.ledger import FIELDS
from eapu.optim import AdamEaPU, AdamNoise, InSituOptimizer, SGDEaPU, SGDNoise

BASES: list[tuple[type[torch.optim.Optimizer], dict[str, Any]]] = [
    (torch.optim.SGD, {"lr": 0.1}),
    (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    (torch.optim.Adam, {"lr": 1e-2}),
    (torch.optim.AdamW, {"lr": 1e-2, "weight_decay": 0.1}),
]


def net(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 2)).to(dtype)


def batch(i: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + i)
    return torch.randn(8, 1, 4, 4, generator=g, dtype=dtype), torch.randn(
        8, 2, generator=g, dtype=dtype
    )


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: range) -> None:
    dtype = next(model.parameters()).dtype
    for i in steps:
        x, y = batch(i, dtype)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize(("base", "kw"), BASES)
@pytest.mark.parametrize("rule", ["eapu", "exact"])
def test_threshold_zero_and_no_noise_reproduce_the_base(base, kw, rule) -> None:
    ref, m = net(), net()
    train(ref, base(ref.parameters(), **kw), range(6))
    opt = InSituOptimizer(m.parameters(), base, rule=rule, threshold=0.0, sd_us=0.0, **kw)
    train(m, opt, range(6))
    for a, b in zip(params(ref), params(m), strict=True):
        assert torch.equal(a, b)


def test_digital_parameters_follow_the_base_exactly() -> None:
    ref, m = net(), net()
    # One step: afterwards the gradients differ because the analog weights do.
    train(ref, torch.optim.Adam(ref.parameters(), lr=1e-2, fused=True), range(1))
    train(m, AdamEaPU(m.parameters(), lr=1e-2, sd_us=2.0), range(1))
    for (name, a), b in zip(ref.named_parameters(), m.parameters(), strict=True):
        if a.dim() == 1:
            assert torch.equal(a, b), name
        else:
            assert not torch.equal(a, b), name


def test_named_optimizers_take_the_fused_kernel_unless_told_otherwise() -> None:
    m = net()
    assert AdamEaPU(m.parameters()).base.defaults["fused"] is True
    assert SGDNoise(m.parameters(), lr=0.1).base.defaults["fused"] is True
    opt = AdamEaPU(m.parameters(), foreach=False)
    assert opt.base.defaults["fused"] is None and opt.base.defaults["foreach"] is False
    assert not InSituOptimizer(m.parameters()).base.defaults["fused"]


def test_sgd_eapu_writes_with_probability_dw_over_threshold() -> None:
    # Constant gradient g, SGD lr: ΔW = -lr·g known exactly, so P(write) = lr·g / ΔWth.
    w = nn.Parameter(torch.zeros(200, 500, dtype=torch.float64))
    opt = SGDEaPU([w], lr=0.01, threshold=0.025, sd_us=0.0)
    w.grad = torch.full_like(w, 0.5)  # |ΔW| = 0.005 -> p = 0.2
    opt.step()
    written = (w != 0).double().mean().item()
    assert abs(written - 0.2) < 5 * math.sqrt(0.2 * 0.8 / w.numel())
    assert torch.all((w == 0) | (w == -0.025))
    s = opt.ledger.summary()
    assert s.written == int((w != 0).sum())
    assert s.rup == pytest.approx(written)


def test_weight_level_write_noise_has_the_promised_sd() -> None:
    w = nn.Parameter(torch.zeros(400, 500, dtype=torch.float64))
    sd_us, rwg = 2.0, 1 / 80
    opt = SGDNoise([w], lr=0.1, sd_us=sd_us, rwg_per_us=rwg)
    w.grad = torch.ones_like(w)
    w.grad[:, :100] = 0  # never written: stays exactly 0
    opt.step()
    assert torch.count_nonzero(w[:, :100]) == 0
    err = w[:, 100:] + 0.1
    assert abs(err.mean().item()) < 5 * sd_us * rwg / math.sqrt(err.numel())
    assert err.std().item() == pytest.approx(sd_us * rwg, rel=0.02)
    assert opt.ledger.summary().written == 400 * 400


def test_threshold_defaults_to_sd_times_rwg_and_can_be_overridden() -> None:
    w = nn.Parameter(torch.zeros(3, 3))
    assert AdamEaPU([w], sd_us=2.0, rwg_per_us=1 / 80).threshold_for(w, _g(w)) == pytest.approx(
        0.025
    )
    o = AdamEaPU([w], sd_us=2.0, rwg_per_us=1 / 80, threshold_us=4.0)
    assert o.threshold_for(w, o.param_groups[0]) == pytest.approx(0.05)
    o = AdamEaPU([w], threshold=0.3)
    assert o.threshold_for(w, o.param_groups[0]) == 0.3


def _g(w: torch.Tensor) -> dict[str, Any]:
    return AdamEaPU([w], sd_us=2.0, rwg_per_us=1 / 80).param_groups[0]


def test_resume_equals_uninterrupted_run_bit_for_bit() -> None:
    ref = net()
    opt = AdamEaPU(ref.parameters(), lr=1e-2, sd_us=2.0, seed=7)
    sched = torch.optim.lr_scheduler.StepLR(opt, 3, 0.5)
    for i in range(10):
        train(ref, opt, range(i, i + 1))
        sched.step()

    m = net()
    opt1 = AdamEaPU(m.parameters(), lr=1e-2, sd_us=2.0, seed=7)
    sched1 = torch.optim.lr_scheduler.StepLR(opt1, 3, 0.5)
    for i in range(5):
        train(m, opt1, range(i, i + 1))
        sched1.step()
    buf = io.BytesIO()
    torch.save(
        {"model": m.state_dict(), "opt": opt1.state_dict(), "sched": sched1.state_dict()}, buf
    )
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)

    m2 = net(seed=123)
    m2.load_state_dict(ck["model"])
    opt2 = AdamEaPU(m2.parameters(), lr=1e-2, sd_us=2.0, seed=0)  # seed comes from the checkpoint
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, 3, 0.5)
    opt2.load_state_dict(ck["opt"])
    sched2.load_state_dict(ck["sched"])
    for i in range(5, 10):
        train(m2, opt2, range(i, i + 1))
        sched2.step()
    for a, b in zip(params(ref), params(m2), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(opt.ledger.table(), opt2.ledger.table())


def test_scheduler_really_changes_the_lr() -> None:
    m = net()
    opt = AdamEaPU(m.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 0.0)  # lr -> 0 at once
    assert opt.param_groups[0]["lr"] == 0.0
    assert opt.base.param_groups[0]["lr"] == 0.0
    before = params(m)
    train(m, opt, range(3))
    sched.step()
    for a, b in zip(before, params(m), strict=True):
        assert torch.equal(a, b)
    assert opt.ledger.summary().written == 0


def test_closure_zero_grad_and_add_param_group() -> None:
    m = net()
    opt = SGDEaPU(list(m.parameters())[:2], lr=0.1, momentum=0.9)
    x, y = batch(0)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.mse_loss(m(x), y)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor)
    opt.add_param_group({"params": list(m.parameters())[2:], "lr": 0.01, "threshold_us": 1.0})
    g = opt.param_groups[1]
    assert g["rule"] == "eapu" and g["momentum"] == 0.9 and g["threshold_us"] == 1.0
    assert opt.base.param_groups is opt.param_groups
    opt.step(closure)
    assert len(opt.ledger.cells) == 2  # the two weight matrices
    opt.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_analog_predicate_and_group_override() -> None:
    m = net()
    opt = AdamEaPU(m.parameters(), analog=lambda p: p.shape == (2, 12))
    assert [tuple(p.shape) for p in opt.analog_parameters()] == [(2, 12)]
    w = [p for p in m.parameters() if p.dim() > 1]
    b = [p for p in m.parameters() if p.dim() == 1]
    opt = AdamEaPU([{"params": w, "analog": False}, {"params": b, "analog": True}])
    assert [p.dim() for p in opt.analog_parameters()] == [1, 1]


def test_nan_and_inf_gradients_never_reach_a_weight() -> None:
    m = net()
    opt = AdamNoise(m.parameters(), lr=1e-2, sd_us=1.0)
    before = params(m)
    x, y = batch(0)
    nn.functional.mse_loss(m(x), y).backward()
    conv_w, conv_b = m[0].weight, m[0].bias
    conv_w.grad[0, 0, 0, 0] = float("nan")
    conv_w.grad[1, 0, 1, 1] = float("inf")
    conv_b.grad[2] = float("-inf")
    opt.step()
    after = params(m)
    assert all(torch.isfinite(p).all() for p in after)
    assert after[0][0, 0, 0, 0] == before[0][0, 0, 0, 0]
    assert after[0][1, 0, 1, 1] == before[0][1, 0, 1, 1]
    assert after[1][2] == before[1][2]
    assert (after[0] != before[0]).sum() > 20  # the rest was written
    skipped = opt.ledger.table()[0, :, FIELDS.index("skipped")]
    assert skipped.tolist() == [2, 0]
    # The moments were not poisoned: the next step is finite everywhere.
    opt.zero_grad()
    train(m, opt, range(1, 2))
    assert all(torch.isfinite(p).all() for p in m.parameters())


def test_ledger_ratios() -> None:
    m = net()
    opt = AdamEaPU(m.parameters(), lr=1e-2)
    train(m, opt, range(5))
    s = opt.ledger.summary()
    assert s.steps == 5 and s.cells == 27 + 24
    assert s.nup == pytest.approx(s.ncell * s.rup)
    assert opt.ledger.rup().shape == (5,)
    assert opt.ledger.rup().mean().item() == pytest.approx(s.rup)
    assert 0 < s.rup < 1


class NotAnOptimizer:
    pass


W = [nn.Parameter(torch.zeros(2, 2))]
BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"sd_us": -1.0}, ValueError, r"Invalid sd_us: -1.0; allowed: None or a finite number >= 0"),
    ({"sd_us": float("nan")}, ValueError, r"Invalid sd_us: nan"),
    ({"sd_us": float("inf")}, ValueError, r"Invalid sd_us: inf"),
    (
        {"rwg_per_us": 0.0},
        ValueError,
        r"Invalid rwg_per_us: 0.0; allowed: None or a finite number > 0",
    ),
    ({"rwg_per_us": -0.1}, ValueError, r"Invalid rwg_per_us: -0.1"),
    ({"rwg_per_us": float("inf")}, ValueError, r"Invalid rwg_per_us: inf"),
    (
        {"threshold": -0.1},
        ValueError,
        r"Invalid threshold: -0.1; allowed: None or a finite number >= 0",
    ),
    ({"threshold": float("nan")}, ValueError, r"Invalid threshold: nan"),
    ({"threshold_us": float("inf")}, ValueError, r"Invalid threshold_us: inf"),
    ({"threshold": 0.1, "threshold_us": 1.0}, ValueError, r"not both"),
    ({"rule": "magic"}, ValueError, r"unknown rule 'magic'; available: exact, eapu"),
    ({"base": NotAnOptimizer}, TypeError, r"Invalid base: .*NotAnOptimizer.*Optimizer subclass"),
    ({"base": torch.optim.Adam([nn.Parameter(torch.zeros(1))])}, TypeError, r"Invalid base"),
    ({"analog": 3}, TypeError, r"Invalid analog: 3; allowed: a callable"),
    ({"seed": -1}, ValueError, r"Invalid seed: -1; allowed: None or an integer >= 0"),
    ({"lr": -1.0}, ValueError, r"Invalid learning rate"),  # the base's own check
]


@pytest.mark.parametrize(("kw", "exc", "msg"), BAD)
def test_bad_input_raises_the_promised_error(kw: dict[str, Any], exc: type, msg: str) -> None:
    with pytest.raises(exc, match=msg):
        InSituOptimizer(W, **kw)


def test_empty_parameter_list_raises() -> None:
    with pytest.raises(ValueError, match="Invalid params: the parameter list is empty"):
        AdamEaPU([])


def test_bad_group_option_raises() -> None:
    opt = AdamEaPU(W)
    with pytest.raises(ValueError, match="Invalid sd_us: -2"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(2, 2))], "sd_us": -2})
    with pytest.raises(ValueError, match="Invalid analog: 'yes'"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(2, 2))], "analog": "yes"})


def test_non_contiguous_parameters_are_written_like_contiguous_ones() -> None:
    torch.manual_seed(0)
    w = torch.randn(4, 3, 3, 3)
    grads = [torch.randn(4, 3, 3, 3) for _ in range(3)]
    results = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        p = nn.Parameter(w.clone().to(memory_format=fmt))
        opt = AdamEaPU([p], lr=0.01, sd_us=2.0, seed=3)
        for g in grads:
            p.grad = g.clone().to(memory_format=fmt)
            opt.step()
        results.append(p.detach().contiguous())
    assert not results[1].equal(w)
    assert torch.equal(results[0], results[1])


def test_parameters_keep_their_memory_and_views_see_the_writes() -> None:
    m = net()
    opt = AdamEaPU(m.parameters(), lr=1e-2, sd_us=2.0)
    w = m[0].weight
    ptr, view = w.data_ptr(), w.detach().view(-1)
    before = view.clone()
    train(m, opt, range(3))
    assert w.data_ptr() == ptr
    assert torch.equal(view, w.detach().view(-1)) and not torch.equal(view, before)
    sd = opt.state_dict()  # the workspace is not state: a checkpoint holds Adam's own
    assert set(sd) == {"state", "param_groups", "insitu"}
    assert all(set(st) == {"step", "exp_avg", "exp_avg_sq"} for st in sd["state"].values())


def test_parameters_of_two_dtypes_are_written_alike() -> None:
    # SGD, constant gradient, SD 0: a written cell moves by exactly -ΔWth, others not at all.
    w32 = nn.Parameter(torch.zeros(100, 100))
    w64 = nn.Parameter(torch.zeros(100, 100, dtype=torch.float64))
    opt = SGDEaPU([w32, w64], lr=0.01, threshold=0.025, sd_us=0.0)
    for w in (w32, w64):
        w.grad = torch.full_like(w, 0.5)  # P(write) = 0.2
    opt.step()
    rows = opt.ledger.table()[0, :, FIELDS.index("written")].tolist()
    for w, n in zip((w32, w64), rows, strict=True):
        assert torch.all((w == 0) | (w == -0.025))
        assert int((w != 0).sum()) == n
        assert abs(n / w.numel() - 0.2) < 5 * math.sqrt(0.2 * 0.8 / w.numel())
    assert w64.dtype == torch.float64


class AssigningSGD(torch.optim.Optimizer):
    """Old-style code: replaces ``p.data`` instead of updating it in place."""

    def __init__(self, params: Any, lr: float = 0.1) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.data = p.data - group["lr"] * p.grad


def test_a_base_that_replaces_parameter_data_is_followed() -> None:
    ref, m = net(), net()
    train(ref, AssigningSGD(ref.parameters(), lr=0.1), range(3))
    opt = InSituOptimizer(m.parameters(), AssigningSGD, rule="exact", sd_us=0.0, lr=0.1)
    train(m, opt, range(3))
    for a, b in zip(params(ref), params(m), strict=True):
        assert torch.equal(a, b)


def test_lbfgs_base_gets_the_closure_and_matches_torch_when_writes_are_exact() -> None:
    """InSituOptimizer(base=LBFGS): the closure reaches the base; with the exact rule and no
    write noise the in-situ step is torch's LBFGS step."""
    torch.manual_seed(0)
    x, y = torch.randn(32, 4, dtype=torch.float64), torch.randn(32, 2, dtype=torch.float64)
    ref = torch.nn.Linear(4, 2).double()
    net = torch.nn.Linear(4, 2).double()
    net.load_state_dict(ref.state_dict())
    opts = [
        torch.optim.LBFGS(ref.parameters(), lr=0.5, max_iter=5),
        InSituOptimizer(
            net.parameters(), torch.optim.LBFGS, rule="exact", sd_us=0.0, lr=0.5, max_iter=5
        ),
    ]
    for model, opt in zip((ref, net), opts, strict=True):
        for _ in range(3):

            def closure(model: torch.nn.Module = model, opt: Any = opt) -> torch.Tensor:
                opt.zero_grad()
                loss = (model(x) - y).pow(2).mean()
                loss.backward()
                return loss

            loss = opt.step(closure)
            assert torch.is_tensor(loss)
    for a, b in zip(ref.parameters(), net.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert opts[1].ledger.summary().written > 0


@pytest.mark.parametrize("cls", [AdamEaPU, SGDEaPU, AdamNoise, SGDNoise])
def test_the_default_seed_follows_torch_manual_seed(cls: type) -> None:
    """No seed: drawn from torch's global generator (manual_seed governs, runs differ
    otherwise); seed= pins it."""
    w = torch.nn.Parameter(torch.zeros(4, 4))
    torch.manual_seed(5)
    a = cls([w], lr=0.1).seed
    torch.manual_seed(5)
    b = cls([w], lr=0.1).seed
    c = cls([w], lr=0.1).seed
    assert a == b != c
    assert cls([w], lr=0.1, seed=7).seed == 7
    assert cls([w], lr=0.1, seed=7).state_dict()["insitu"]["seed"] == 7


@pytest.mark.parametrize("cls", [AdamEaPU, SGDEaPU, AdamNoise, SGDNoise])
def test_generator_param_groups_keep_their_parameters_and_train(cls: type) -> None:
    """torch's convention: a group's "params" may be a generator (model.parameters())."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Linear(5, 3))
    opt = cls(
        [{"params": m[0].parameters()}, {"params": m[1].parameters(), "lr": 1e-3}],
        lr=1e-1,
        threshold=1e-4,
        seed=0,
    )
    assert [len(g["params"]) for g in opt.param_groups] == [2, 2]
    assert [g["lr"] for g in opt.param_groups] == [1e-1, 1e-3]
    before = [p.detach().clone() for p in m.parameters()]
    x, y = torch.randn(32, 6), torch.randn(32, 3)
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.mse_loss(m(x), y).backward()
        opt.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, m.parameters(), strict=True))


@pytest.mark.parametrize("cls", [AdamEaPU, SGDEaPU, AdamNoise, SGDNoise])
def test_a_parameter_listed_twice_is_refused(cls: type) -> None:
    w, b = torch.nn.Parameter(torch.randn(3, 3)), torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match=r"position 1 .* appears twice"):
        cls([w, w, b])
    opt = cls([w])
    with pytest.raises(ValueError, match="appears twice"):
        opt.add_param_group({"params": [b, b]})
