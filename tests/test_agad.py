"""AGAD (aihwkit's DynamicTransferCompound) on eapu's tiles: its dynamic reference and its
transfer, by hand and against the pseudocode that aihwkit 1.2.0 agrees with bit for bit."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from eapu.algorithms import AGAD, ChoppedTTv2, TikiTakaV2, get_algorithm
from eapu.experiments import get_method
from eapu.ledger import FIELDS
from eapu.nn import convert

EPS = 0.1 / 80  # one pulse of the ideal device in weight units (Rwg 1/80)
_P = FIELDS.index("pulses")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make(
    n_in: int,
    n_out: int,
    *,
    device: Any = "ideal",
    scheme: str = "gaussian",
    bias: bool = False,
    seed: int = 0,
) -> tuple[nn.Module, Any]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(n_in, n_out, bias=bias))
    load = "gaussian" if device == "ideal" else None
    xb = convert(model, device=device, scheme=scheme, load_scheme=load, seed=seed)
    return model, xb


def quiet(model: nn.Module, **kw: Any) -> AGAD:
    """AGAD whose steps leave A alone (the tests set A by hand), one read per sample and
    H's gain transfer_lr·lr/ε_A (no auto-granularity)."""
    opt = AGAD(model.parameters(), **{"auto_granularity": 0.0, "fast_scheme": "gaussian", **kw})
    opt.watch(model)
    return opt


def idle_step(model: nn.Module, opt: torch.optim.Optimizer, samples: int) -> None:
    """A step whose gradient is 0 (A is not written) with ``samples`` samples: as many reads."""
    n_in = model[0].in_features
    opt.zero_grad()
    (model(torch.zeros(samples, n_in)) * 0).sum().backward()
    opt.step()


def c_pulses(model: nn.Module, c0: torch.Tensor) -> torch.Tensor:
    return (model[0].tile.weight() - c0) / EPS


# --- the dynamic reference, by hand -------------------------------------------------------
def test_an_offset_of_a_is_not_transferred_a_change_is() -> None:
    """One input line, two outputs, period n = 2, m = 1 (tail 2), gain 1 (lr = ε_A).

    Output 0: A sits at 0.2 (an offset, e.g. its symmetry point) for three reads, then moves
    to -0.6 while the chopper is -1 (a gradient of +0.8 written chopped). By hand:
      read 0: P 0,    c +1, δ 0.2,  H 0.2
      read 1: P 0,    c +1, δ 0.2,  H 0.4;  chopper flips
      read 2: P 0.2,  c -1, δ 0,    H 0.4   (P takes M = the last read, m = 1)
      read 3: P 0.2,  c -1, δ 0.8,  H 1.2 -> one SET pulse on C (the gate is open: pass 3 > n),
              H forgotten; chopper flips
      read 4, 5: P -0.6, δ 0
    Output 1: A jumps to 1.1 at read 1: H 0.1 + 1.1 = 1.2 crosses 1 while the gate is shut
    (pass 1 <= 2): the pulse is dropped and H forgotten; from read 2 on, P = 1.1 and δ = 0.
    """
    model, _ = make(1, 2)
    p = model[0].weight
    opt = quiet(model, lr=EPS, chopper_every=2, tail_weightening=2.0, transfer_lr=1.0)
    assert opt.buffer_gain(p, EPS) == pytest.approx(1.0)
    a = opt.fast_tile(p)
    c0 = model[0].tile.weight().clone()
    values = [(0.2, 0.1), (0.2, 1.1), (0.2, 1.1), (-0.6, 1.1), (-0.6, 1.1), (-0.6, 1.1)]
    want_h = [(0.2, 0.1), (0.4, 0.0), (0.4, 0.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0)]
    want_p = [(0.0, 0.0), (0.0, 0.0), (0.2, 1.1), (0.2, 1.1), (-0.6, 1.1), (-0.6, 1.1)]
    want_c = [1, -1, -1, 1, 1, -1]  # the chopper after each read
    for t, vals in enumerate(values):
        a.load(torch.tensor(vals).reshape(2, 1))
        idle_step(model, opt, 1)
        h = opt.buffer(p).reshape(-1)
        assert torch.allclose(h, torch.tensor(want_h[t]), atol=1e-4), (t, h)
        assert torch.allclose(opt.past_mean(p).reshape(-1), torch.tensor(want_p[t]), atol=1e-5)
        assert opt.chopper(p).item() == want_c[t]
        assert opt.passes(p) == t + 1
    moved = c_pulses(model, c0).reshape(-1)
    assert torch.allclose(moved, torch.tensor([1.0, 0.0]), atol=1e-3)
    assert int(opt.ledger.table()[:, 0, _P].sum()) == 1  # the one pulse on C, none dropped in


def test_a_constant_offset_leaves_c_alone_where_chopped_ttv2_writes_it() -> None:
    """A held at +0.3 everywhere (an uncalibrated symmetry point): AGAD reads it as P after
    the first period and never pulses C; c-TTv2 without a reference writes it onto C with
    alternating sign, period after period."""
    moved = {}
    for name in ("agad", "cttv2"):
        model, _ = make(4, 3)
        p = model[0].weight
        kw: dict[str, Any] = dict(lr=EPS, chopper_every=5, transfer_lr=1.0)
        if name == "agad":
            opt: TikiTakaV2 = quiet(model, tail_weightening=5.0, **kw)
        else:
            opt = ChoppedTTv2(
                model.parameters(),
                auto_granularity=0.0,
                fast_scheme="gaussian",
                subtract_symmetry_point=False,
                **kw,
            )
            opt.watch(model)
        opt.fast_tile(p).load(torch.full((3, 4), 0.3))
        for _ in range(40):  # 4 lines, 4 reads a step: 40 passes, 8 chopper periods
            idle_step(model, opt, 4)
        moved[name] = int(opt.ledger.table()[:, 0, _P].sum())
        if name == "agad":
            assert isinstance(opt, AGAD)
            assert torch.allclose(opt.past_mean(p), torch.full((3, 4), 0.3), atol=1e-5)
            assert opt.passes(p) == 40
    assert moved["agad"] == 0
    # c-TTv2, gain 1: H of a period (c = +1) 0.3, 0.6, 0.9, 1.2 -> a pulse, H 0, then 0.3;
    # the next (c = -1) 0, -0.3, -0.6, -0.9, -1.2 -> a pulse: one a period, 8 periods, 12 cells
    assert moved["cttv2"] == 8 * 12


# --- the transfer against the pseudocode aihwkit agrees with --------------------------------
class Reference:
    """aihwkit 1.2.0's DynamicTransferRPUDevice::readAndUpdate (rpu_dynamic_transfer_device.cpp
    197-344) in plain float64, one read at a time: the model /work/aihwkit/verify_agad.py
    checked against the built aihwkit bit for bit."""

    def __init__(
        self,
        n_out: int,
        n_in: int,
        n: int,
        tail: float,
        gain: float,
        *,
        forget: bool,
        correct: bool,
        cap: float,
        eps_a: float,
    ) -> None:
        self.n, self.m = n, min(tail / n, 1.0)
        self.gain, self.forget, self.correct, self.cap = gain, forget, correct, cap
        self.eps_a = eps_a
        z = lambda: torch.zeros(n_out, n_in, dtype=torch.float64)  # noqa: E731
        self.H, self.M, self.P, self.C = z(), z(), z(), z()
        self.chop = torch.ones(n_in, dtype=torch.float64)
        self.switched = torch.zeros(n_in, dtype=torch.bool)
        self.passes, self.col, self.n_in, self.pulses = 0, 0, n_in, 0

    def read(self, a: torch.Tensor) -> None:
        i = self.col
        self.col = (i + 1) % self.n_in
        v = a[:, i]
        k = self.passes % self.n + 1
        if self.switched[i]:
            self.P[:, i] = self.M[:, i]
        self.switched[i] = False
        scale = self.gain / min(k, 1 / self.eps_a) if self.correct else self.gain
        h = self.H[:, i] + self.chop[i] * (v - self.P[:, i]) * scale
        steps = torch.zeros_like(h)
        big = h.abs() >= 1
        steps[big] = torch.trunc(h[big]).clamp(-1, 1)
        if self.forget:
            h = torch.where(big, torch.zeros_like(h), h)
        else:
            h = h - steps
            if self.cap > 0:
                h = torch.where(big, h.clamp(-self.cap, self.cap), h)
        self.H[:, i] = h
        self.M[:, i] = (1 - self.m) * self.M[:, i] + self.m * v
        if self.passes > self.n:
            self.C[:, i] += steps
            self.pulses += int(steps.abs().sum())
        if k == self.n:
            self.chop[i] = -self.chop[i]
            self.switched[i] = True
        if i == self.n_in - 1:
            self.passes += 1


CASES = [  # n, tail, forget, correct, cap, samples per step
    (3, 1.5, True, False, 0.0, 1),
    (4, 1.0, True, False, 0.0, 6),  # six reads a step: a line twice, a pass boundary inside
    (3, 5.0, False, False, 0.5, 1),
    (5, 2.0, True, True, 0.0, 3),
    (2, 8.0, False, True, 0.0, 9),
]


@pytest.mark.parametrize(("n", "tail", "forget", "correct", "cap", "per_step"), CASES)
def test_transfer_matches_aihwkits_pseudocode(
    n: int, tail: float, forget: bool, correct: bool, cap: float, per_step: int
) -> None:
    model, _ = make(4, 3)
    p = model[0].weight
    lr = 3 * EPS
    opt = quiet(
        model,
        lr=lr,
        chopper_every=n,
        tail_weightening=tail,
        forget_buffer=forget,
        correct_accumulation=correct,
        buffer_cap=cap,
    )
    ref = Reference(
        3, 4, n, tail, opt.buffer_gain(p, lr), forget=forget, correct=correct, cap=cap, eps_a=EPS
    )
    a_tile = opt.fast_tile(p)
    c0 = model[0].tile.weight().clone()
    gen = torch.Generator().manual_seed(1)
    a = torch.zeros(3, 4)
    for t in range(60):
        # A drifts with a sign that follows a slow square wave, plus jitter (verify_agad.py)
        drift = 0.02 * math.copysign(1.0, math.sin(t / 7.0))
        a = (a + drift + 0.05 * torch.randn(3, 4, generator=gen)).clamp(-0.9, 0.9)
        a_tile.load(a)
        a_read = a_tile.weight().double()
        for _ in range(per_step):
            ref.read(a_read)
        idle_step(model, opt, per_step)
        for name, got, want in (
            ("H", opt.buffer(p), ref.H),
            ("M", opt.running_mean(p), ref.M),
            ("P", opt.past_mean(p), ref.P),
            ("C", c_pulses(model, c0), ref.C),
        ):
            err = float((got.double() - want).abs().max())
            assert err < 1e-3 * (1 + float(want.abs().max())), (t, name, got, want)
        assert torch.equal(opt.chopper(p).double(), ref.chop)
        assert opt.passes(p) == ref.passes
    assert int(opt.ledger.table()[:, 0, _P].sum()) == ref.pulses > 0  # and saw pulses onto C


def test_the_write_gate_and_the_periods_triangular_weighting() -> None:
    """n = 3, m = 1, gain 1, one line. Reads 0-2 (c = +1, P = 0): A climbs 0.5, 1.0, 1.5, so
    H crosses 1 at reads 1 and 2, but passes 1, 2 <= n: both pulses are dropped. Read 3 (c = -1)
    takes P = 1.5. Reads 4, 5: A has fallen to 0 (a chopped gradient of +1.5): δ = 1.5 at each
    read of the period, P being frozen for it, so C takes a pulse at both (the change is
    counted once per remaining read). Read 6 takes P = 0 and nothing more moves."""
    model, _ = make(1, 1)
    p = model[0].weight
    opt = quiet(model, lr=EPS, chopper_every=3, tail_weightening=3.0)
    c0 = model[0].tile.weight().clone()
    a = [0.5, 1.0, 1.5, 1.5, 0.0, 0.0, 0.0, 0.0]
    want = [0, 0, 0, 0, 1, 2, 2, 2]
    for t in range(8):
        opt.fast_tile(p).load(torch.tensor([[a[t]]]))
        idle_step(model, opt, 1)
        assert float(c_pulses(model, c0).item()) == pytest.approx(want[t], abs=1e-3), t
    assert opt.passes(p) == 8 and opt.past_mean(p).item() == pytest.approx(0.0, abs=1e-6)


# --- the optimizer's contract ---------------------------------------------------------------
def test_learns_a_linear_regression_on_the_ideal_device() -> None:
    target = torch.tensor([[0.6, -0.3, 0.2, -0.5], [0.1, 0.4, -0.6, 0.3]])
    model, _ = make(4, 2)
    opt = AGAD(
        model.parameters(),
        lr=0.02,
        chopper_every=2,
        tail_weightening=2.0,
        fast_lr=None,
        auto_scale=False,
        transfer_unit="steps",
        auto_granularity=0.0,
        forget_buffer=False,
        transfer_lr=50,
        transfer_pulses=31,
    )

    def loss() -> float:
        x = torch.randn(512, 4, generator=torch.Generator().manual_seed(99))
        with torch.no_grad():
            return float(nn.functional.mse_loss(model(x), x @ target.t()))

    before = loss()
    for i in range(250):
        x = torch.randn(32, 4, generator=torch.Generator().manual_seed(1000 + i))
        opt.zero_grad()
        nn.functional.mse_loss(model(x), x @ target.t()).backward()
        opt.step()
    assert loss() < before / 50, (before, loss())


def _snapshot(model: nn.Module, xb: Any, opt: torch.optim.Optimizer) -> bytes:
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "xbar": xb.state_dict(), "opt": opt.state_dict()}, buf)
    return buf.getvalue()


def _train(model: nn.Module, opt: torch.optim.Optimizer, steps: range) -> None:
    for i in steps:
        g = torch.Generator().manual_seed(1000 + i)
        x = torch.randn(8, 4, generator=g)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), x[:, :2] * 0.5).backward()
        opt.step()


def test_resume_equals_the_uninterrupted_run() -> None:
    def build() -> tuple[nn.Module, Any, AGAD]:
        model, xb = make(4, 2, device="taox_1t1r", scheme="sign", bias=True)
        opt = AGAD(model.parameters(), lr=0.05, chopper_every=3, fast_max_pulses=8, seed=3)
        opt.watch(model)
        return model, xb, opt

    model, xb, opt = build()
    _train(model, opt, range(10))
    blob = _snapshot(model, xb, opt)
    _train(model, opt, range(10, 20))
    model2, xb2, opt2 = build()
    ck = torch.load(io.BytesIO(blob), weights_only=True)
    model2.load_state_dict(ck["model"])
    xb2.load_state_dict(ck["xbar"])
    opt2.load_state_dict(ck["opt"])
    _train(model2, opt2, range(10, 20))
    p, p2 = model[0].weight, model2[0].weight
    assert torch.equal(p, p2)
    for t1, t2 in zip(xb.tiles, xb2.tiles, strict=True):
        assert torch.equal(t1.state.g_us, t2.state.g_us), t1.name
    for get in ("running_mean", "past_mean", "buffer", "chopper"):
        assert torch.equal(getattr(opt, get)(p), getattr(opt2, get)(p2)), get
    assert opt.passes(p) == opt2.passes(p2) > 0
    assert torch.equal(opt.ledger.table(), opt2.ledger.table())
    slot = opt.state_dict()["algorithm"]["slots"][0]
    assert {"M", "P", "switched", "passes"} <= set(slot)


def test_defaults_are_aihwkits_agad_reram_sb_preset_but_read_raw() -> None:
    model, _ = make(4, 2)
    opt = AGAD(model.parameters())
    cfg = opt.config
    assert (cfg.fast_lr, cfg.auto_scale, cfg.desired_bl) == (0.5, True, 31)
    assert (opt.period, cfg.tail_weightening, opt.mean_momentum) == (50, 5.0, 0.1)
    assert (cfg.auto_granularity, cfg.transfer_pulses, cfg.forget_buffer) == (1000.0, 1, True)
    assert cfg.transfer_every == 1 and cfg.transfer_unit == "samples"
    assert not cfg.subtract_symmetry_point and not cfg.correct_accumulation
    assert torch.equal(opt.reference(model[0].weight), torch.zeros(2, 4))
    assert get_algorithm("agad") is AGAD
    m = get_method("agad")
    assert (m.algorithm, m.optimizer, m.scheme, m.in_situ) == ("agad", "sgd", "sign", True)


BAD = [
    ({"chopper_every": 1}, "chopper_every"),
    ({"chopper_every": 2.5}, "chopper_every"),
    ({"tail_weightening": 0.0}, "tail_weightening"),
    ({"buffer_cap": -1.0, "forget_buffer": False}, "buffer_cap"),
    ({"buffer_cap": 2.0}, "buffer_cap"),  # a cap on a forgotten buffer would do nothing
    ({"chopper_probability": 0.1}, "chopper_probability"),
    ({"correct_accumulation": 1}, "correct_accumulation"),
    ({"base": torch.optim.Adam}, "base"),
]


@pytest.mark.parametrize(("kw", "name"), BAD)
def test_bad_hyperparameters_raise_naming_the_argument(kw: dict[str, Any], name: str) -> None:
    model, _ = make(4, 2)
    with pytest.raises(ValueError, match=rf"Invalid {name}: .*allowed"):
        AGAD(model.parameters(), **kw)
