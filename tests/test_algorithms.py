"""Mixed precision, Tiki-Taka v2, chopped TTv2 and HWA noise on eapu's tiles and ledger."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import nn

from eapu.algorithms import (
    ChoppedTTv2,
    MixedPrecision,
    TikiTakaV2,
    get_algorithm,
    hwa_noise,
    list_algorithms,
)
from eapu.ledger import FIELDS
from eapu.nn import convert


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # These models are tiny: thread start-up dominates, and the CI box may be shared.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TARGET = torch.tensor([[0.6, -0.3, 0.2, -0.5], [0.1, 0.4, -0.6, 0.3]])


def make(
    device: Any = "ideal", scheme: str = "gaussian", *, bias: bool = False, seed: int = 0, **kw: Any
) -> tuple[nn.Module, Any]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 2, bias=bias))
    xb = convert(model, device=device, scheme=scheme, seed=seed, **kw)
    return model, xb


def batch(i: int, n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + i)
    x = torch.randn(n, 4, generator=g)
    return x, x @ TARGET.t()


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: range) -> None:
    for i in steps:
        x, y = batch(i)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def test_loss(model: nn.Module) -> float:
    x, y = batch(-1, 512)
    with torch.no_grad():
        return float(nn.functional.mse_loss(x @ model[0].weight.t(), y))


test_loss.__test__ = False  # type: ignore[attr-defined]

# The ideal device with the abstract ``gaussian`` scheme writes exactly what is asked (no
# noise, no nonlinearity): what remains is the algorithm itself. Mixed precision is also run
# with ``sign``, the faithful scheme for it (n identical pulses, no verify); Tiki-Taka's A is
# written by identical pulses whatever the crossbar's scheme (fast_scheme="pulsed").
# Tiki-Taka with gamma = 0 on a perfectly symmetric device is an undamped double integrator
# (A integrates the gradient, C integrates A; the damping of the papers comes from the
# devices' decay towards their symmetric point), so TTv2 is checked with gamma = 0.5 (the
# TTv1 coupling, a damping term) and c-TTv2, whose choppers remove the integral, with 0.
LEARNERS: dict[str, tuple[str, Callable[..., torch.optim.Optimizer]]] = {
    "mixed-precision-gaussian": ("gaussian", lambda p: MixedPrecision(p, lr=0.1)),
    "mixed-precision-sign": ("sign", lambda p: MixedPrecision(p, lr=0.1)),
    "ttv2-gamma": ("gaussian", lambda p: TikiTakaV2(p, lr=0.1, gamma=0.5)),
    "cttv2": (
        "gaussian",
        lambda p: ChoppedTTv2(p, lr=0.02, chopper_every=1, transfer_lr=3.0, transfer_pulses=31),
    ),
}


@pytest.mark.parametrize("name", list(LEARNERS))
def test_learns_a_linear_regression_on_the_ideal_device(name: str) -> None:
    scheme, factory = LEARNERS[name]
    model, _ = make("ideal", scheme, load_scheme="gaussian")
    opt = factory(model.parameters())
    before = test_loss(model)
    train(model, opt, range(250))
    after = test_loss(model)
    assert after < before / 50, (before, after)
    s = opt.ledger.summary()
    assert s.steps == 250 and s.pulses > 0 and 0 < s.rup <= 1


def test_tiki_taka_gamma_zero_moves_c_towards_the_target_first() -> None:
    model, _ = make("ideal", "gaussian", load_scheme="gaussian")
    opt = TikiTakaV2(model.parameters(), lr=0.1)
    before = test_loss(model)
    train(model, opt, range(60))
    assert test_loss(model) < before  # first quarter-period of the (undamped) oscillation
    assert torch.equal(model[0].weight, model[0].tile.weight())  # gamma 0: W = C


ALL: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "mixed-precision": lambda p: MixedPrecision(p, lr=0.05),
    "ttv2": lambda p: TikiTakaV2(p, lr=0.05, transfer_pulses=3),
    "cttv2": lambda p: ChoppedTTv2(p, lr=0.05, gamma=0.2),
}


@pytest.mark.parametrize("scheme", ["sign", "write_verify"])
@pytest.mark.parametrize("name", list(ALL))
def test_taox_stays_in_the_window_and_the_ledger_adds_up(name: str, scheme: str) -> None:
    model, xb = make("taox_1t1r", scheme, bias=True)
    opt = ALL[name](model.parameters())
    train(model, opt, range(25))
    dev = xb.device_model
    for tile in xb.tiles:
        g = tile.state.g_us
        assert bool(((g >= dev.g_min_us) & (g <= dev.g_max_us)).all()), tile.name
    t = opt.ledger.table()
    assert t.shape == (25, 1, len(FIELDS))
    written, pulses = t[..., FIELDS.index("written")], t[..., FIELDS.index("pulses")]
    assert bool((pulses >= written).all()) and bool((written >= 0).all())
    tile = model[0].tile
    extra = opt.fast_tile(model[0].weight).cells if name != "mixed-precision" else 0
    assert opt.ledger.cells == [tile.cells + extra]
    assert bool((written <= tile.cells + extra).all())
    s = opt.ledger.summary()
    assert s.pulses > 0
    assert s.nup == pytest.approx(s.ncell * s.rup)
    assert s.rup == pytest.approx(float(opt.ledger.rup().mean()))
    if scheme == "write_verify":
        assert s.reads > 0
    if name != "mixed-precision":  # every step reads one line of A: 2 weights
        assert s.reads >= 25 * 2


def test_mixed_precision_writes_whole_granules_and_keeps_the_rest() -> None:
    model, _ = make("ideal", "gaussian", load_scheme="gaussian")
    p = model[0].weight
    opt = MixedPrecision(model.parameters(), lr=0.01)
    eps = opt.epsilon(p)
    assert eps == pytest.approx(0.1 / 80)  # ideal: 0.1 µS steps, Rwg = 1/80
    w0 = p.detach().clone()
    total = torch.zeros_like(w0)
    for i in range(20):
        x, y = batch(i)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        total -= 0.01 * p.grad
        opt.step()
        chi = opt._slots[id(p)]["chi"]
        assert bool((chi.abs() < eps * (1 + 1e-5)).all())
    moved = p.detach() - w0
    steps = moved / eps
    assert torch.allclose(steps, steps.round(), atol=1e-2)  # whole granules only
    assert torch.allclose(moved + chi, total, atol=1e-5)  # nothing lost: written + χ = ΣΔW


def test_mixed_precision_sign_scheme_spends_one_pulse_per_granule() -> None:
    model, _ = make("ideal", "sign", load_scheme="gaussian")
    p = model[0].weight
    opt = MixedPrecision(model.parameters(), lr=0.2)
    w0 = p.detach().clone()
    train(model, opt, range(5))
    granules = ((p.detach() - w0) / opt.epsilon(p)).abs().round()
    s = opt.ledger.summary()
    # Every granule is one identical pulse; a cell may go up and down across steps.
    assert s.pulses >= int(granules.sum()) and s.pulses > s.written > 0
    assert s.reads == 0


def test_ttv2_leaves_c_alone_until_h_reaches_the_threshold() -> None:
    model, _ = make("ideal", "gaussian", load_scheme="gaussian")
    p = model[0].weight
    opt = TikiTakaV2(model.parameters(), lr=1e-3, transfer_lr=0.01)
    c = model[0].tile
    eps = 0.1 / 80
    assert opt.threshold_for(p) == pytest.approx(eps)
    g0 = c.state.g_us.clone()
    quiet, first = 0, None
    for i in range(200):
        h_before = opt.buffer(p).abs().max().item()
        g_before = c.state.g_us.clone()
        train(model, opt, range(i, i + 1))
        changed = not torch.equal(c.state.g_us, g_before)
        if not changed:
            quiet += 1
            continue
        first = i
        dw = (c.state.g_us - g_before) * c.rwg_per_us
        assert h_before < eps  # nothing moved while |H| was below the threshold
        assert torch.allclose(dw.abs()[dw != 0], torch.tensor(eps), rtol=1e-3)  # one step
        break
    assert first is not None and quiet >= 25, (quiet, first)
    assert not torch.equal(c.state.g_us, g0)
    assert torch.equal(p.detach(), c.weight())
    assert float(opt.fast_tile(p).weight().abs().max()) > 0  # A took the gradient meanwhile


def test_chopper_flips_and_signs_the_fast_array() -> None:
    model, _ = make("ideal", "gaussian", load_scheme="gaussian")
    p = model[0].weight
    opt = ChoppedTTv2(
        model.parameters(), lr=1e-3, chopper_every=2, fast_scheme="gaussian", h_threshold=1e3
    )  # H never transfers: C stays put, A is the record
    history = []
    total = torch.zeros_like(p)
    a = opt.fast_tile(p)
    for i in range(16):
        c = opt.chopper(p).clone()
        x, y = batch(i)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        total += c[torch.arange(4)].expand(2, 4) * (-1e-3 * p.grad)
        opt.step()
        history.append(opt.chopper(p).clone())
    # 4 lines, one read per step: line j is read at steps j, j+4, ...; flips every 2nd read.
    h = torch.stack(history)
    assert torch.equal(h[3], torch.ones(4))
    assert torch.equal(h[7], -torch.ones(4))
    assert torch.equal(h[11], -torch.ones(4))
    assert torch.equal(h[15], torch.ones(4))
    assert torch.allclose(a.weight(), total, atol=1e-5)  # A holds Σ c·ΔW
    random = ChoppedTTv2(make()[0].parameters(), lr=1e-3, chopper_probability=1.0)
    assert random.chopped and TikiTakaV2(make()[0].parameters()).chopped is False


def _snapshot(model: nn.Module, xb: Any, opt: torch.optim.Optimizer) -> bytes:
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "xbar": xb.state_dict(), "opt": opt.state_dict()}, buf)
    return buf.getvalue()


RESUMABLE: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "mixed-precision": lambda p: MixedPrecision(p, lr=0.05, momentum=0.5),
    "ttv2": lambda p: TikiTakaV2(p, lr=0.05, gamma=0.3, transfer_every=2, seed=3),
    "cttv2": lambda p: ChoppedTTv2(p, lr=0.05, chopper_probability=0.5, seed=5),
}


@pytest.mark.parametrize("name", list(RESUMABLE))
def test_resume_equals_the_uninterrupted_run(name: str) -> None:
    factory = RESUMABLE[name]
    model, xb = make("taox_1t1r", "sign", bias=True)
    opt = factory(model.parameters())
    train(model, opt, range(12))
    blob = _snapshot(model, xb, opt)
    train(model, opt, range(12, 24))

    model2, xb2 = make("taox_1t1r", "sign", bias=True)
    opt2 = factory(model2.parameters())  # places its arrays before the crossbar is loaded
    ck = torch.load(io.BytesIO(blob), weights_only=True)
    model2.load_state_dict(ck["model"])
    xb2.load_state_dict(ck["xbar"])
    opt2.load_state_dict(ck["opt"])
    train(model2, opt2, range(12, 24))

    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(a, b)
    for t1, t2 in zip(xb.tiles, xb2.tiles, strict=True):
        assert torch.equal(t1.state.g_us, t2.state.g_us), t1.name
    assert torch.equal(opt.ledger.table(), opt2.ledger.table())
    assert torch.equal(xb.generator.get_state(), xb2.generator.get_state())
    assert torch.equal(opt.generator.get_state(), opt2.generator.get_state())


def test_digital_parameters_follow_sgd_and_schedulers_work() -> None:
    model, _ = make("ideal", "gaussian", bias=True, load_scheme="gaussian")
    opt = TikiTakaV2(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for i in range(3):
        x, y = batch(i)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        b0 = model[0].bias.detach().clone()
        lr = opt.param_groups[0]["lr"]
        expect = b0 - lr * model[0].bias.grad
        opt.step()
        sched.step()
        assert torch.equal(model[0].bias.detach(), expect)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 / 8)
    assert opt.base.param_groups is opt.param_groups


def test_nonfinite_gradients_are_skipped_and_counted() -> None:
    model, _ = make("ideal", "gaussian", load_scheme="gaussian")
    opt = MixedPrecision(model.parameters(), lr=0.1)
    x, y = batch(0)
    nn.functional.mse_loss(model(x), y).backward()
    model[0].weight.grad[0, 0] = float("nan")
    opt.step()
    assert torch.isfinite(model[0].weight).all()
    assert int(opt.ledger.table()[0, 0, FIELDS.index("skipped")]) == 1


def test_hwa_noise_is_straight_through_fresh_and_leaves_no_trace() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    keys = list(model.state_dict())
    clean = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(16, 4)
    ref = model(x).detach()
    gen = torch.Generator().manual_seed(7)
    handle = hwa_noise(model, sd_us=2.0, rwg_per_us=1 / 80, generator=gen)
    state = handle.state_dict()
    out1 = model(x)
    out1.pow(2).sum().backward()
    out2 = model(x).detach()
    assert not torch.equal(out1.detach(), out2) and not torch.equal(out1.detach(), ref)
    # The gradient is the one at the perturbed weights, applied to the clean parameters.
    twin = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    g2 = torch.Generator()
    g2.set_state(state["generator"])
    with torch.no_grad():
        for p, q in zip(model.parameters(), twin.parameters(), strict=True):
            noise = torch.randn(p.shape, generator=g2) if p.dim() > 1 else 0
            q.copy_(p + 2.0 / 80 * noise)
    twin(x).pow(2).sum().backward()
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-6)
    for p, c in zip(model.parameters(), clean, strict=True):
        assert torch.equal(p.detach(), c)
    assert list(model.state_dict()) == keys
    model.eval()
    assert torch.equal(model(x).detach(), ref)  # eval mode: noise-free
    model.train()
    handle.remove()
    assert torch.equal(model(x).detach(), ref)
    assert not any("weight" in m.__dict__ for m in model.modules())


def test_hwa_noise_has_the_promised_sd() -> None:
    lin = nn.Linear(200, 200, bias=False)
    x = torch.eye(200)
    with hwa_noise(lin, sd_us=4.0, rwg_per_us=1 / 40):
        noisy = lin(x).detach().t()
    assert (noisy - lin.weight.detach()).std().item() == pytest.approx(0.1, rel=0.03)


BAD: list[tuple[Callable[..., Any], dict[str, Any], str]] = [
    (MixedPrecision, {"lr": 0.0}, "lr"),
    (MixedPrecision, {"lr": float("nan")}, "lr"),
    (MixedPrecision, {"granularity_us": -1.0}, "granularity_us"),
    (MixedPrecision, {"max_pulses": 0}, "max_pulses"),
    (MixedPrecision, {"seed": -1}, "seed"),
    (TikiTakaV2, {"lr": -0.1}, "lr"),
    (TikiTakaV2, {"transfer_every": 0}, "transfer_every"),
    (TikiTakaV2, {"transfer_every": 1.5}, "transfer_every"),
    (TikiTakaV2, {"transfer_lr": 0.0}, "transfer_lr"),
    (TikiTakaV2, {"h_threshold": 0.0}, "h_threshold"),
    (TikiTakaV2, {"transfer_pulses": 0}, "transfer_pulses"),
    (TikiTakaV2, {"forget_buffer": 1}, "forget_buffer"),
    (TikiTakaV2, {"gamma": 1.5}, "gamma"),
    (TikiTakaV2, {"gamma": -0.1}, "gamma"),
    (TikiTakaV2, {"chopper_probability": 1.1}, "chopper_probability"),
    (TikiTakaV2, {"chopper_every": 0}, "chopper_every"),
    (TikiTakaV2, {"chopper_every": 2, "chopper_probability": 0.5}, "chopper_every"),
    (TikiTakaV2, {"fast_scheme": "magic"}, "fast_scheme"),
    (TikiTakaV2, {"fast_max_pulses": 0}, "fast_max_pulses"),
    (ChoppedTTv2, {"chopper_probability": 0.0}, "chopper_probability"),
    (lambda p, **kw: hwa_noise(nn.Linear(2, 2), **kw), {"sd_us": -1.0}, "sd_us"),
    (
        lambda p, **kw: hwa_noise(nn.Linear(2, 2), sd_us=1.0, **kw),
        {"rwg_per_us": 0.0},
        "rwg_per_us",
    ),
]


@pytest.mark.parametrize(("cls", "kw", "name"), BAD)
def test_bad_hyperparameters_raise_naming_the_argument(
    cls: Any, kw: dict[str, Any], name: str
) -> None:
    model, _ = make()
    with pytest.raises(ValueError, match=rf"Invalid {name}: .*allowed"):
        cls(model.parameters(), **kw)


def test_registry() -> None:
    assert list_algorithms() == ["mixed-precision", "ttv2", "cttv2"]
    assert get_algorithm("cttv2") is ChoppedTTv2
    with pytest.raises(ValueError, match="unknown algorithm 'sgd'; available: mixed-precision"):
        get_algorithm("sgd")
    with pytest.raises(ValueError, match="Invalid params"):
        MixedPrecision([])


@pytest.mark.parametrize("cls", [MixedPrecision, TikiTakaV2, ChoppedTTv2])
def test_the_default_seed_follows_torch_manual_seed(cls: type) -> None:
    """The algorithms share InSituOptimizer's skeleton: no seed draws one from torch's
    global generator, ``seed=`` pins it, and the state goes under their own key."""
    model, _ = make("ideal", "sign")  # (make seeds torch itself)
    seeds = []
    for _ in range(2):
        torch.manual_seed(3)
        seeds.append(cls(model.parameters(), lr=0.1).seed)
    assert seeds[0] == seeds[1] != cls(model.parameters(), lr=0.1).seed
    opt = cls(model.parameters(), lr=0.1, seed=11)
    assert opt.seed == 11 and opt.state_dict()["algorithm"]["seed"] == 11
