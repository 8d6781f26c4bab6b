"""Mixed precision, Tiki-Taka v2, chopped TTv2 and HWA noise on eapu's tiles and ledger."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import nn

from eapu.algorithms import (
    ChoppedTTv2,
    ChoppedTTv2Config,
    MixedPrecision,
    TikiTakaConfig,
    TikiTakaV2,
    get_algorithm,
    list_algorithms,
)
from eapu.hwa import hwa_noise
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


def watched(opt: torch.optim.Optimizer, model: nn.Module) -> torch.optim.Optimizer:
    """Tiki-Taka counts samples and auto-scales from the layers' data: let it see them."""
    if isinstance(opt, TikiTakaV2):
        opt.watch(model)
    return opt


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
# Tiki-Taka in its plainest form: A takes the base's ΔW, one line read per step, H in pulses
# of C with gain transfer_lr·lr/ε (no auto-granularity), the remainder kept, no reference.
PLAIN: dict[str, Any] = dict(
    fast_lr=None,
    auto_scale=False,
    transfer_unit="steps",
    auto_granularity=0.0,
    forget_buffer=False,
    subtract_symmetry_point=False,
)
LEARNERS: dict[str, tuple[str, Callable[..., torch.optim.Optimizer]]] = {
    "mixed-precision-gaussian": ("gaussian", lambda p: MixedPrecision(p, lr=0.1)),
    "mixed-precision-sign": ("sign", lambda p: MixedPrecision(p, lr=0.1)),
    "ttv2-gamma": ("gaussian", lambda p: TikiTakaV2(p, lr=0.1, gamma=0.5, **PLAIN, transfer_lr=10)),
    "cttv2": (
        "gaussian",
        lambda p: ChoppedTTv2(
            p, lr=0.02, chopper_every=1, **PLAIN, transfer_lr=150, transfer_pulses=31
        ),
    ),
}


@pytest.mark.parametrize("name", list(LEARNERS))
def test_learns_a_linear_regression_on_the_ideal_device(name: str) -> None:
    scheme, factory = LEARNERS[name]
    model, _ = make("ideal", scheme, load_scheme="gaussian")
    opt = watched(factory(model.parameters()), model)
    before = test_loss(model)
    train(model, opt, range(250))
    after = test_loss(model)
    assert after < before / 50, (before, after)
    s = opt.ledger.summary()
    assert s.steps == 250 and s.pulses > 0 and 0 < s.rup <= 1


def test_tiki_taka_gamma_zero_moves_c_towards_the_target_first() -> None:
    model, _ = make("ideal", "gaussian", load_scheme="gaussian")
    opt = TikiTakaV2(model.parameters(), lr=0.1, **PLAIN, transfer_lr=10)
    before = test_loss(model)
    train(model, opt, range(60))
    assert test_loss(model) < before  # first quarter-period of the (undamped) oscillation
    assert torch.equal(model[0].weight, model[0].tile.weight())  # gamma 0: W = C


ALL: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "mixed-precision": lambda p: MixedPrecision(p, lr=0.05),
    # the presets' settings; A's pulses capped for speed (aligned samples ask for hundreds)
    "ttv2": lambda p: TikiTakaV2(p, lr=0.05, transfer_pulses=3, fast_max_pulses=8),
    "cttv2": lambda p: ChoppedTTv2(p, lr=0.05, gamma=0.2, fast_max_pulses=8),
}


@pytest.mark.parametrize("scheme", ["sign", "write_verify"])
@pytest.mark.parametrize("name", list(ALL))
def test_taox_stays_in_the_window_and_the_ledger_adds_up(name: str, scheme: str) -> None:
    model, xb = make("taox_1t1r", scheme, bias=True)
    opt = watched(ALL[name](model.parameters()), model)
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
    if name != "mixed-precision":  # every sample reads a line of A: 2 weights
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


@pytest.mark.parametrize("mapping", ["reference_column", "differential"])
def test_mixed_precision_sends_n_pulses_per_cell_in_one_train(mapping: str) -> None:
    # n granules are n pulses of the device on each cell holding the weight (both cells of a
    # differential pair), sent as one pulse train: pulses = cells per weight x sum |n|.
    model, _ = make("ideal", "sign", load_scheme="gaussian", mapping=mapping)
    p = model[0].weight
    opt = MixedPrecision(model.parameters(), lr=0.5, max_pulses=1000)
    x, y = batch(0)
    opt.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    dw = -0.5 * p.grad.clone()
    opt.step()
    n = ((dw - opt._slots[id(p)]["chi"]) / opt.epsilon(p)).round()
    assert int(n.abs().max()) > 1  # several pulses on some cells
    pair = 2 if mapping == "differential" else 1
    assert opt.ledger.summary().pulses == pair * int(n.abs().sum())


# --- Tiki-Taka v2 against small hand-computed cases ------------------------------------
EPS_IDEAL = 0.1 / 80  # one pulse of the ideal device in weight units (Rwg 1/80)


def one_sample_step(
    model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, d: torch.Tensor
) -> torch.Tensor:
    """One step on the batch ``x`` whose output error is ``d`` (loss = Σ out·d)."""
    opt.zero_grad()
    (model(x) * d).sum().backward()
    grad = model[0].weight.grad.clone()
    opt.step()
    return grad


def quiet_ttv2(model: nn.Module, **kw: Any) -> TikiTakaV2:
    """TTv2 on the ideal device with exact writes onto A (``gaussian``), watched."""
    opt = TikiTakaV2(model.parameters(), **{"fast_scheme": "gaussian", **kw})
    opt.watch(model)
    return opt


def test_transfer_schedule_counts_samples_and_reads_per_transfer() -> None:
    model, _ = make("ideal", "gaussian", load_scheme="gaussian")
    p = model[0].weight
    opt = quiet_ttv2(model, lr=1e-3, transfer_every=8, n_reads_per_transfer=3)
    slot = opt._slots[id(p)]
    # 10 samples a step, a transfer every 8 samples, 3 lines (of 4) per transfer:
    # after 10, 20, 30, 40 samples: 1, 2, 3, 5 transfers so far.
    reads_per_step = []
    for i in range(4):
        x = torch.randn(10, 4, generator=torch.Generator().manual_seed(i))
        one_sample_step(model, opt, x, torch.ones(10, 2))
        reads_per_step.append(int(opt.ledger.table()[-1, 0, FIELDS.index("reads")]))
    assert reads_per_step == [3 * 2, 3 * 2, 3 * 2, 6 * 2]  # lines read × 2 weights a line
    assert slot.samples == 40 and slot.next_line == 15 % 4
    assert slot.reads.tolist() == [4, 4, 4, 3]  # lines 0,1,2 | 3,0,1 | 2,3,0 | 1,2,3,0,1,2


def test_transfer_schedule_in_steps() -> None:
    model, _ = make("ideal", "gaussian", load_scheme="gaussian")
    opt = TikiTakaV2(
        model.parameters(),
        lr=1e-3,
        transfer_unit="steps",
        transfer_every=2,
        n_reads_per_transfer=5,
        auto_scale=False,
    )  # no watch needed
    train(model, opt, range(4))
    reads = opt.ledger.table()[:, 0, FIELDS.index("reads")].tolist()
    assert reads == [0, 5 * 2, 0, 5 * 2]
    slot = opt._slots[id(model[0].weight)]
    assert slot.reads.tolist() == [3, 3, 2, 2] and slot.next_line == 2


def test_many_reads_in_one_step_visit_lines_in_rounds() -> None:
    model, _ = make("ideal", "gaussian", load_scheme="gaussian")
    opt = quiet_ttv2(model, lr=1e-3)
    one_sample_step(model, opt, torch.randn(10, 4), torch.ones(10, 2))  # 10 reads, 4 lines
    slot = opt._slots[id(model[0].weight)]
    assert slot.reads.tolist() == [3, 3, 2, 2] and slot.next_line == 2


def test_unwatched_sample_counting_raises() -> None:
    model, _ = make("ideal", "gaussian", load_scheme="gaussian")
    opt = TikiTakaV2(model.parameters(), lr=1e-3)
    with pytest.raises(RuntimeError, match=r"call opt\.watch\(model\)"):
        train(model, opt, range(1))
    with pytest.raises(ValueError, match="Invalid model"):
        opt.watch(nn.Linear(2, 2))


def test_fast_array_has_its_own_rate() -> None:
    model, _ = make("ideal", "gaussian", load_scheme="gaussian")
    p = model[0].weight
    opt = quiet_ttv2(model, lr=0.1, fast_lr=0.5, auto_scale=False, transfer_every=1000)
    a = opt.fast_tile(p)
    a0 = a.weight().clone()
    grad = one_sample_step(model, opt, torch.randn(3, 4), torch.tensor([[0.3, -0.6]]))
    assert opt.fast_rate(p) == 0.5
    assert torch.allclose(a.weight() - a0, -0.5 * grad, atol=1e-5)  # ΔA = -fast_lr·grad
    # the learning rate may be scheduled: A's rate is not
    opt.param_groups[0]["lr"] = 0.01
    a1 = a.weight().clone()
    grad = one_sample_step(model, opt, torch.randn(3, 4), torch.tensor([[0.3, -0.6]]))
    assert torch.allclose(a.weight() - a1, -0.5 * grad, atol=1e-5)
    # fast_lr None: A takes the base's ΔW = -lr·grad
    model2, _ = make("ideal", "gaussian", load_scheme="gaussian")
    opt2 = quiet_ttv2(model2, lr=0.1, fast_lr=None, auto_scale=False, transfer_every=1000)
    a2 = opt2.fast_tile(model2[0].weight)
    b0 = a2.weight().clone()
    grad = one_sample_step(model2, opt2, torch.randn(3, 4), torch.tensor([[0.3, -0.6]]))
    assert torch.allclose(a2.weight() - b0, -0.1 * grad, atol=1e-5)


def test_fast_rate_auto_scales_by_max_input_and_error() -> None:
    model, _ = make("ideal", "gaussian", load_scheme="gaussian")
    p = model[0].weight
    opt = quiet_ttv2(model, lr=0.1, transfer_every=1000)  # fast_lr 0.5, 31 pulses: preset
    a = opt.fast_tile(p)
    a0 = a.weight().clone()
    x = torch.tensor([[1.0, -2.0, 0.5, 0.0]])
    grad = one_sample_step(model, opt, x, torch.tensor([[0.3, -0.6]]))
    # one sample: m_x = 2, m_d = 0.6 (the first values seed the averages)
    rate = 0.5 * 31 * EPS_IDEAL / (2.0 * 0.6)
    assert opt.fast_rate(p) == pytest.approx(rate)
    assert torch.allclose(a.weight() - a0, -rate * grad, atol=1e-6)
    # two samples: per sample m ← (1 - τ)·m + τ·v, τ = (1 - 0.99) / 2
    x = torch.tensor([[4.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    one_sample_step(model, opt, x, torch.tensor([[0.3, -0.6]]))
    tau = 0.01 / 2
    m_x = (1 - tau) * ((1 - tau) * 2.0 + tau * 4.0) + tau * 1.0
    slot = opt._slots[id(p)]
    assert slot.m_x == pytest.approx(m_x) and slot.m_d == pytest.approx(0.6)


def test_buffer_rule_by_hand() -> None:
    # Lines 4, ε_A = ε_C = 0.1/80: g_H = ε_A · 1000 / (4 lines · 1 sample) = 0.3125, so one
    # read of A adds A · transfer_lr · lr / g_H = 1.28·A to H (lr 0.4). A[:, 0] = (0.5, -1)
    # (within the window's w_max = 1) gives H = (0.64, -1.28): the second weight takes one
    # RESET pulse on C.
    for forget, momentum, h_after in [(True, 0.0, 0.0), (False, 0.0, -0.28), (True, 0.5, -0.64)]:
        model, _ = make("ideal", "gaussian", load_scheme="gaussian")
        p = model[0].weight
        opt = quiet_ttv2(
            model,
            lr=0.4,
            forget_buffer=forget,
            momentum=momentum,
            subtract_symmetry_point=False,
        )
        a = opt.fast_tile(p)
        a.load(torch.tensor([[0.5, 0.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0]]))
        assert opt.buffer_gain(p, 0.4) == pytest.approx(1.28)
        c0 = model[0].tile.weight().clone()
        one_sample_step(model, opt, torch.zeros(1, 4), torch.zeros(1, 2))  # ΔW = 0: A stays
        h = opt.buffer(p)
        assert h[0, 0].item() == pytest.approx(0.64)
        assert h[1, 0].item() == pytest.approx(h_after)
        moved = (model[0].tile.weight() - c0) / EPS_IDEAL
        want = torch.zeros(2, 4)
        want[1, 0] = -1
        assert torch.allclose(moved, want, atol=1e-3)
        assert torch.equal(h[:, 1:], torch.zeros(2, 3))  # lines not read keep their H


def test_symmetry_point_of_taox_and_the_reference_subtraction() -> None:
    dev_kw = {"dtod_sd": 0.0, "c2c_sd": 0.0}
    from eapu.devices import get_device, pulse

    model, xb = make(get_device("taox_1t1r", **dev_kw), "sign")
    p = model[0].weight
    opt = TikiTakaV2(model.parameters(), lr=0.1)
    a = opt.fast_tile(p)
    sp = a.symmetry_point()
    # b* = (2.0 - 2.4) / (0.4·2.0 + 0.4·2.4) = -0.2273: G = 5 + (1 - 0.2273)·80 = 66.82 µS,
    # about -0.23 in weight units against a reference cell near 85 µS
    g_sp = 5.0 + (1 - 0.4 / 1.76) / 2 * 160.0
    want = a.weight() + (g_sp - a.state.g_us) * a.rwg_per_us
    assert torch.allclose(sp, want, atol=1e-5)
    assert abs(float(sp.mean()) + 0.227) < 0.05
    # at the symmetry point, a SET and a RESET move a cell by the same amount
    g_sp = a.state.g_us + (sp - a.weight()) / a.rwg_per_us
    up = pulse(g_sp, torch.ones_like(g_sp), xb.device_model, a.params, generator=_g())
    down = pulse(g_sp, -torch.ones_like(g_sp), xb.device_model, a.params, generator=_g())
    assert torch.allclose(up - g_sp, g_sp - down, atol=1e-4)
    # A starts at its symmetry point (loaded there), which is its reference: reads of ~0
    assert torch.allclose(opt.reference(p), sp, atol=1e-6)
    assert float((a.weight() - sp).abs().max()) < 4 * 2.0 / 80  # write-verify + relaxation
    plain = TikiTakaV2(
        make(get_device("taox_1t1r", **dev_kw), "sign")[0].parameters(),
        lr=0.1,
        subtract_symmetry_point=False,
    )
    assert torch.equal(
        plain.reference(next(iter(plain.param_groups[0]["params"]))), torch.zeros(2, 4)
    )


def test_symmetry_point_of_a_measured_device_is_where_its_steps_meet() -> None:
    """A fitted device has no nonlinearity fields (they are 0): its symmetry point is found on
    its tables, not re-derived from a soft bound it does not have (that gave the window's
    centre, 85 µS, for taox_1t1r's tables; the true point is 66.8 µS)."""
    from eapu.devices import MeasuredDevice, get_device, pulse

    base = get_device("taox_1t1r", dtod_sd=0.0, c2c_sd=0.0)
    measured = MeasuredDevice.from_device(base, points=65)
    for dev in (base, measured):
        model, _ = make(dev, "sign")
        opt = TikiTakaV2(model.parameters(), lr=0.1)
        a = opt.fast_tile(model[0].weight)
        g_sp = a.state.g_us + (a.symmetry_point() - a.weight()).double() / a.rwg_per_us
        assert torch.allclose(g_sp, torch.full_like(g_sp, 66.82), atol=0.05), dev.name
        up = pulse(g_sp, torch.ones_like(g_sp), dev, a.params.to("cpu"), generator=_g())
        down = pulse(g_sp, -torch.ones_like(g_sp), dev, a.params, generator=_g())
        assert torch.allclose(up - g_sp, g_sp - down, atol=2e-3), dev.name
        # Tiki-Taka reads A against it
        assert torch.allclose(opt.reference(model[0].weight), a.symmetry_point(), atol=1e-6)


def test_symmetry_points_at_the_window_edge_are_not_counted_beyond_it() -> None:
    # With device-to-device spread some cells' steps never meet: b* is clamped to the edge,
    # and the float32 round trip through weight units misses it by ~1e-5 µS.
    import warnings

    from eapu.devices import get_device

    lin = nn.Sequential(nn.Linear(400, 120))
    xb = convert(lin, device=get_device("taox_1t1r"), scheme="sign", seed=0)
    a = xb.add_tile("A", torch.zeros(120, 400))
    sp = a.symmetry_point()
    g_sp = a.state.g_us + (sp - a.weight()).double() / a.rwg_per_us
    assert int((g_sp <= xb.device_model.g_min_us + 1e-3).sum()) > 10  # clamped cells
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "beyond what device ... holds"
        a.load(sp)
    assert int(a.clipped) == 0
    a.program(torch.full((120, 400), -0.5))  # but a real miss still counts
    assert int(a.clipped) > 0


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_chopper_flips_and_signs_the_fast_array() -> None:
    model, _ = make("ideal", "gaussian", load_scheme="gaussian")
    p = model[0].weight
    opt = ChoppedTTv2(
        model.parameters(),
        lr=1e-3,
        chopper_every=2,
        fast_lr=None,
        auto_scale=False,
        transfer_unit="steps",
        fast_scheme="gaussian",
        buffer_granularity=1e9,
    )  # H never reaches a pulse: C stays put, A is the record
    history = []
    total = torch.zeros_like(p)
    a = opt.fast_tile(p)
    a0 = a.weight().clone()
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
    assert torch.allclose(a.weight() - a0, total, atol=1e-5)  # A holds Σ c·ΔW
    random = ChoppedTTv2(make()[0].parameters(), lr=1e-3, chopper_probability=1.0)
    assert random.config.chopped and TikiTakaV2(make()[0].parameters()).config.chopped is False
    assert ChoppedTTv2(make()[0].parameters()).config.chopper_probability == 0.01  # the preset's


def test_old_checkpoints_load_with_h_in_pulses() -> None:
    model, _ = make("ideal", "gaussian", load_scheme="gaussian")
    p = model[0].weight
    opt = quiet_ttv2(model, lr=0.1)
    sd = opt.state_dict()
    old = {
        k: v
        for k, v in sd["algorithm"]["slots"][0].items()
        if k in ("A", "H", "c", "reads", "next")
    }
    old["H"] = torch.full((2, 4), 3 * EPS_IDEAL)  # weight units against a threshold of ε_C
    sd["algorithm"]["slots"] = [old]
    opt.load_state_dict(sd)
    assert torch.allclose(opt.buffer(p), torch.full((2, 4), 3.0))
    assert torch.equal(opt.reference(p), torch.zeros(2, 4))


def _snapshot(model: nn.Module, xb: Any, opt: torch.optim.Optimizer) -> bytes:
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "xbar": xb.state_dict(), "opt": opt.state_dict()}, buf)
    return buf.getvalue()


RESUMABLE: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "mixed-precision": lambda p: MixedPrecision(p, lr=0.05, momentum=0.5),
    "ttv2": lambda p: TikiTakaV2(
        p, lr=0.05, gamma=0.3, transfer_every=2, fast_max_pulses=8, seed=3
    ),
    "cttv2": lambda p: ChoppedTTv2(p, lr=0.05, chopper_probability=0.5, fast_max_pulses=8, seed=5),
}


@pytest.mark.parametrize("name", list(RESUMABLE))
def test_resume_equals_the_uninterrupted_run(name: str) -> None:
    factory = RESUMABLE[name]
    model, xb = make("taox_1t1r", "sign", bias=True)
    opt = watched(factory(model.parameters()), model)
    train(model, opt, range(12))
    blob = _snapshot(model, xb, opt)
    train(model, opt, range(12, 24))

    model2, xb2 = make("taox_1t1r", "sign", bias=True)
    # places its arrays before the crossbar is loaded
    opt2 = watched(factory(model2.parameters()), model2)
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
    opt = watched(TikiTakaV2(model.parameters(), lr=0.1), model)
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
    (TikiTakaV2, {"transfer_every": 0.2}, "transfer_every"),
    (TikiTakaV2, {"transfer_unit": "epochs"}, "transfer_unit"),
    (TikiTakaV2, {"n_reads_per_transfer": 0}, "n_reads_per_transfer"),
    (TikiTakaV2, {"fast_lr": 0.0}, "fast_lr"),
    (TikiTakaV2, {"fast_lr": None}, "fast_lr"),
    (TikiTakaV2, {"auto_momentum": 1.0}, "auto_momentum"),
    (TikiTakaV2, {"desired_bl": 0}, "desired_bl"),
    (TikiTakaV2, {"buffer_granularity": 0.0}, "buffer_granularity"),
    (TikiTakaV2, {"auto_granularity": -1.0}, "auto_granularity"),
    (TikiTakaV2, {"momentum": 1.5}, "momentum"),
    (TikiTakaV2, {"subtract_symmetry_point": "yes"}, "subtract_symmetry_point"),
    (TikiTakaV2, {"transfer_lr": 0.0}, "transfer_lr"),
    (TikiTakaV2, {"transfer_pulses": 0}, "transfer_pulses"),
    (TikiTakaV2, {"forget_buffer": 1}, "forget_buffer"),
    (TikiTakaV2, {"gamma": 1.5}, "gamma"),
    (TikiTakaV2, {"gamma": -0.1}, "gamma"),
    (TikiTakaV2, {"chopper_probability": 1.1}, "chopper_probability"),
    (TikiTakaV2, {"chopper_every": 0}, "chopper_every"),
    (TikiTakaV2, {"chopper_every": 2, "chopper_probability": 0.5}, "chopper_every"),
    (TikiTakaV2, {"fast_scheme": "magic"}, "fast_scheme"),
    (TikiTakaV2, {"fast_max_pulses": 0}, "fast_max_pulses"),
    (TikiTakaV2, {"base": torch.optim.Adam}, "base"),
    (ChoppedTTv2, {"base": torch.optim.Adam}, "base"),
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
    assert list_algorithms() == ["mixed-precision", "ttv2", "cttv2", "agad"]
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


def test_tiki_taka_options_are_a_frozen_record_saved_and_checked_on_load() -> None:
    model, _ = make("ideal", "gaussian", load_scheme="gaussian")
    opt = ChoppedTTv2(model.parameters(), lr=0.1, fast_lr=0.2, seed=1)
    assert opt.config == ChoppedTTv2Config(fast_lr=0.2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opt.config.fast_lr = 0.5  # type: ignore[misc]
    sd = opt.state_dict()
    assert sd["algorithm"]["config"]["kind"] == "ChoppedTTv2Config"
    # Other knobs: refused, naming the one that differs and how to rebuild.
    other, _ = make("ideal", "gaussian", load_scheme="gaussian")
    with pytest.raises(ValueError, match=r"fast_lr: 0.2 saved, 0.05 here.*from_state"):
        ChoppedTTv2(other.parameters(), lr=0.1, fast_lr=0.05).load_state_dict(sd)
    # The saved record rebuilds an optimizer that loads it; keywords override a record.
    again, _ = make("ideal", "gaussian", load_scheme="gaussian")
    cfg = ChoppedTTv2Config.from_state(sd["algorithm"]["config"])
    ChoppedTTv2(again.parameters(), lr=0.1, config=cfg).load_state_dict(sd)
    tuned = ChoppedTTv2(make()[0].parameters(), config=cfg, fast_lr=0.05)
    assert tuned.config == dataclasses.replace(cfg, fast_lr=0.05)
    # A record of another kind, or an invalid field, names the argument.
    with pytest.raises(ValueError, match="Invalid config: TikiTakaConfig; allowed: a Chopped"):
        ChoppedTTv2(make()[0].parameters(), config=TikiTakaConfig())
    with pytest.raises(ValueError, match="Invalid state: a TikiTakaConfig"):
        ChoppedTTv2Config.from_state(TikiTakaConfig().to_state())
    with pytest.raises(ValueError, match="Invalid momentum"):
        TikiTakaConfig(momentum=2.0)
    # A state from before the record was saved loads as it is.
    del sd["algorithm"]["config"]
    ChoppedTTv2(again.parameters(), lr=0.1, fast_lr=0.05).load_state_dict(sd)
