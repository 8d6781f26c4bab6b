"""The GPU's weight-level write (eapu.optim.triton_step), tested on the CPU under triton's
interpreter: the same-key reference, the rule's statistics (E[ΔWn] = ΔW, P(write) =
|ΔW| / ΔWth), the write noise's SD, reproducibility and independence of the block size,
the optimizer's sync-free path, and the fallback to the torch path.

The kernel's tests need triton (``pip install -e '.[gpu]'``, or ``make test-gpu``); without it
they are skipped, and what remains checks the torch reference and the fallback. Triton reads
``TRITON_INTERPRET`` when it is imported (eapu imports it, with torch's dynamo), so it is set
before Python starts: ``make test-gpu`` runs this file under ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import importlib.util
import io
import math
import os
import warnings

import pytest
import torch
from torch import nn

from eapu.optim import AdamEaPU, InSituOptimizer, fused, triton_step
from eapu.optim.triton_step import WriteItem
from eapu.runtime import force_sync_free

HAS_TRITON = importlib.util.find_spec("triton") is not None
NO_TRITON = (
    "triton is not installed: the Triton kernel's tests run under its interpreter on the CPU "
    "where it is (pip install -e '.[gpu]'; make test-gpu)"
)
TH = 0.025
DTYPES = [torch.float32, torch.float64]


@pytest.fixture(scope="module")
def interp() -> None:
    """The kernel, built for triton's interpreter (so it runs on CPU tensors)."""
    if not HAS_TRITON:
        pytest.skip(NO_TRITON)
    if os.environ.get("EAPU_TRITON") == "0" or not triton_step.interpreted():
        pytest.skip(
            "the Triton kernel's tests need TRITON_INTERPRET=1 set before Python starts (triton "
            "reads it when it is imported) and EAPU_TRITON unset: make test-gpu"
        )


def step_key(seed: int, draws: int = 1) -> list[int]:
    """The keys the kernel's launches draw from a generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return [
        int(torch.randint(0, 2**62, (1,), generator=g, dtype=torch.int64)) for _ in range(draws)
    ]


def kernel(
    new: torch.Tensor,
    old: torch.Tensor,
    bad: torch.Tensor | None = None,
    *,
    th: float = TH,
    sd: float = 0.0,
    seed: int = 0,
    index: int = 0,
    block: int = triton_step.BLOCK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel's write of one tensor: (its cells, its ledger row)."""
    p = new.clone()
    gen = torch.Generator().manual_seed(seed)
    [row] = triton_step.write([WriteItem(p, old, bad, th, sd, index)], generator=gen, block=block)
    assert row is not None
    return p, row


def proposal(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 1) -> tuple[torch.Tensor, ...]:
    """(new, old, bad): ΔW over ±3 ΔWth, a few non-finite proposals and gradients."""
    g = torch.Generator().manual_seed(seed)
    old = torch.randn(shape, generator=g, dtype=dtype)
    new = old + (torch.rand(shape, generator=g, dtype=dtype) - 0.5) * 6 * TH
    flat = new.view(-1)
    flat[3], flat[17], flat[-1] = math.nan, math.inf, -math.inf
    bad = torch.zeros(shape, dtype=torch.bool)
    bad.view(-1)[[5, 40, 41]] = True
    return new, old, bad


# ------------------------------------------------------------ without the kernel
@pytest.mark.skipif(HAS_TRITON, reason="triton is installed here")
def test_without_triton_the_module_imports_and_says_why() -> None:
    from eapu.optim import triton_kernel

    assert triton_kernel.eapu_write is None and triton_kernel.IMPORT_ERROR is not None
    assert not triton_step.available() and not triton_step.interpreted()
    assert "triton is not importable" in (triton_step.unavailable_reason() or "")
    p = torch.zeros(4)
    assert not triton_step.supports(p, p.clone())
    gen = torch.Generator().manual_seed(0)
    assert triton_step.write([WriteItem(p, p.clone(), None, TH, 0.0, 0)], generator=gen) == [None]


def test_eapu_triton_0_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EAPU_TRITON", "0")
    assert not triton_step.available()
    assert triton_step.unavailable_reason() == "turned off (EAPU_TRITON=0)"
    p = torch.zeros(4)
    assert not triton_step.supports(p, p.clone())


@pytest.mark.parametrize("dtype", DTYPES)
def test_counter_normals_are_standard_normal_and_independent(dtype: torch.dtype) -> None:
    n = 200_000
    z = triton_step.counter_normal(12345, n, dtype).double()
    assert z.dtype == torch.float64 and z.isfinite().all()
    assert abs(z.mean().item()) < 5 / math.sqrt(n)
    assert z.std().item() == pytest.approx(1.0, abs=5 * math.sqrt(2 / n))
    assert (z.abs() > 2).double().mean().item() == pytest.approx(0.0455, abs=0.003)
    assert (z**4).mean().item() == pytest.approx(3.0, rel=0.05)
    if dtype == torch.float32:
        assert z.abs().max().item() < 5.8  # 24-bit uniforms: sqrt(-2 ln 2^-24) = 5.77
    pairs = [(z[:-lag], z[lag:]) for lag in (1, 2, 1024)]
    pairs.append((z, triton_step.counter_normal(12346, n, dtype).double()))
    pairs.append((z**2, triton_step.counter_normal(12346, n, dtype).double() ** 2))
    for a, b in pairs:
        assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1].item()) < 5 / math.sqrt(a.numel())


def test_item_keys_are_the_cpu_kernels() -> None:
    rule, noise = triton_step.item_keys(7, 2)
    assert rule == fused.mix64(7 + 3 * 0x9E3779B97F4A7C15)
    assert noise == fused.mix64(rule ^ 0x6A09E667F3BCC909)
    assert triton_step.item_keys(7, 3) != (rule, noise)


@pytest.mark.skipif(not fused.available(), reason="no C compiler here (the CPU kernel)")
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_reference_decides_as_the_cpu_kernel_under_one_key(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(1)
    dw = (torch.rand(3001, generator=g, dtype=dtype) - 0.5) * 0.08
    rule, noise = triton_step.item_keys(99, 0)
    zero = torch.zeros_like(dw)
    out, written, _ = triton_step.reference_write(
        dw, zero, None, threshold=TH, noise_sd=0.0, rule_key=rule, noise_key=noise
    )
    assert torch.equal(out, fused.eapu_counter(dw, threshold=TH, key=rule))
    assert int(written) == int((out != 0).sum())


def test_bad_input_is_refused_naming_it() -> None:
    p = torch.zeros(8)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="Invalid block: 100"):
        triton_step.write([WriteItem(p, p.clone(), None, TH, 0.0, 0)], generator=gen, block=100)
    with pytest.raises(ValueError, match="Invalid block: 8"):
        triton_step.write([], generator=gen, block=8)
    with pytest.raises(ValueError, match="Invalid threshold: 0"):
        triton_step.write([WriteItem(p, p.clone(), None, 0.0, 0.0, 0)], generator=gen)
    with pytest.raises(ValueError, match="Invalid noise_sd: -1"):
        triton_step.write([WriteItem(p, p.clone(), None, TH, -1.0, 0)], generator=gen)
    with pytest.raises(ValueError, match=r"Invalid new: torch\.float16"):
        h = p.half()
        triton_step.reference_write(h, h, None, threshold=TH, noise_sd=0, rule_key=1, noise_key=2)
    with pytest.raises(ValueError, match="Invalid dtype"):
        triton_step.counter_normal(1, 4, torch.float16)


# --------------------------------------------------------------- the kernel itself
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("seed", "index"), [(0, 0), (5, 3)])
def test_kernel_equals_the_same_key_reference(interp, dtype, seed, index) -> None:
    new, old, bad = proposal((3, 1001), dtype)
    sd = 2.0 / 80
    out, row = kernel(new, old, bad, sd=sd, seed=seed, index=index, block=256)
    rule, noise = triton_step.item_keys(step_key(seed)[0], index)
    ref, written, skipped = triton_step.reference_write(
        new, old, bad, threshold=TH, noise_sd=sd, rule_key=rule, noise_key=noise
    )
    assert torch.equal(out != old, ref != old)  # the same cells written (decisions exact)
    tol = dict(rtol=0, atol=4e-7) if dtype == torch.float32 else dict(rtol=0, atol=1e-14)
    torch.testing.assert_close(out, ref, **tol)  # the noise: log and cos to an ulp or so
    assert row.tolist() == [int(written), int(written), 0, 0, int(skipped), 0]
    assert int(skipped) == 6  # 3 non-finite proposals, 3 non-finite gradients
    assert out.isfinite().all()
    unwritten = out == old
    assert torch.equal(out[unwritten], old[unwritten])


@pytest.mark.parametrize("dtype", DTYPES)
def test_unbiased_and_writes_with_probability_dw_over_threshold(interp, dtype) -> None:
    n = 200_000
    zero = torch.zeros(n, dtype=dtype)
    for k, d in enumerate((0.004, -0.011, 0.02)):
        out, row = kernel(torch.full((n,), d, dtype=dtype), zero, seed=k, block=4096)
        p = abs(d) / TH
        assert abs((out != 0).double().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)
        se = TH * math.sqrt(p * (1 - p) / n)
        assert abs(out.double().mean().item() - d) < 5 * se  # E[ΔWn] = ΔW
        assert torch.all((out == 0) | (out == math.copysign(TH, d)))
        assert int(row[0]) == int((out != 0).sum()) == int(row[1])
    # At or above the threshold every cell is written with ΔW itself.
    dw = torch.tensor([TH, -TH, 0.03, -0.5], dtype=dtype).repeat(1000)
    out, row = kernel(dw, torch.zeros_like(dw))
    assert torch.equal(out, dw) and int(row[0]) == dw.numel()


def test_write_fraction_is_dw_over_threshold_in_every_bin(interp) -> None:
    bins, per = 20, 20_000
    g = torch.Generator().manual_seed(3)
    level = (torch.arange(bins, dtype=torch.float64) + 0.5) / bins  # |ΔW| / ΔWth
    sign = torch.randint(0, 2, (bins, per), generator=g) * 2 - 1
    dw = (level[:, None] * TH * sign).float()
    out, _ = kernel(dw, torch.zeros_like(dw), seed=11, block=4096)
    frac = (out != 0).double().mean(1)
    se = (level * (1 - level) / per).sqrt()
    assert torch.all((frac - level).abs() < 5 * se), (frac - level) / se
    assert torch.all((out == 0) | (out.sign() == dw.sign()))


@pytest.mark.parametrize("dtype", DTYPES)
def test_write_noise_is_normal_with_the_promised_sd(interp, dtype) -> None:
    sd = 2.0 / 80
    old = torch.zeros(500, 400, dtype=dtype)
    new = torch.full_like(old, 0.03)  # above the threshold: every cell written
    new[:, :100] = 0  # ΔW = 0: never written, stays exactly 0
    out, row = kernel(new, old, sd=sd, seed=4, block=4096)
    assert torch.count_nonzero(out[:, :100]) == 0
    err = (out[:, 100:] - 0.03).double().flatten() / sd
    n = err.numel()
    assert abs(err.mean().item()) < 5 / math.sqrt(n)
    assert err.std().item() == pytest.approx(1.0, rel=0.02)
    assert (err.abs() > 2).double().mean().item() == pytest.approx(0.0455, abs=0.003)
    assert (err**4).mean().item() == pytest.approx(3.0, rel=0.05)
    assert int(row[0]) == 500 * 300
    assert abs(torch.corrcoef(torch.stack([err[:-1], err[1:]]))[0, 1].item()) < 5 / math.sqrt(n)


def test_reproducible_and_independent_of_the_block_size(interp) -> None:
    new, old, bad = proposal((3, 700), torch.float32)
    sd = 2.0 / 80
    first, row = kernel(new, old, bad, sd=sd, seed=8, block=1024)
    again, row2 = kernel(new, old, bad, sd=sd, seed=8, block=1024)
    assert torch.equal(first, again) and torch.equal(row, row2)
    for block in (16, 128, 2048, 16384):
        out, r = kernel(new, old, bad, sd=sd, seed=8, block=block)
        assert torch.equal(out, first), block
        assert torch.equal(r, row), block
    other, _ = kernel(new, old, bad, sd=sd, seed=9, block=1024)
    assert not torch.equal(other, first)


def test_one_call_writes_several_tensors_as_one_by_one(interp) -> None:
    # Three float32 tensors share one launch (and one key); the float64 one has its own
    # launch and draws the second key.
    specs = [((33, 17), torch.float32, 0.02), ((5000,), torch.float32, 0.03),
             ((2, 3, 4, 5), torch.float64, 0.025), ((1,), torch.float32, 0.01)]  # fmt: skip
    items, refs = [], []
    keys = step_key(21, draws=2)
    for index, (shape, dtype, th) in enumerate(specs):
        new, old, bad = proposal(shape, dtype, seed=index) if shape[0] > 1 else (
            torch.tensor([0.004], dtype=dtype), torch.zeros(1, dtype=dtype), None)  # fmt: skip
        p = new.clone()
        items.append(WriteItem(p, old, bad, th, 0.01, index))
        key = keys[1] if dtype == torch.float64 else keys[0]
        rule, noise = triton_step.item_keys(key, index)
        refs.append(
            triton_step.reference_write(
                new, old, bad, threshold=th, noise_sd=0.01, rule_key=rule, noise_key=noise
            )
        )
    rows = triton_step.write(items, generator=torch.Generator().manual_seed(21), block=512)
    for it, row, (ref, written, skipped) in zip(items, rows, refs, strict=True):
        assert torch.equal(it.param != it.old, ref != it.old)
        torch.testing.assert_close(it.param, ref, rtol=0, atol=4e-7)
        assert row is not None and row.tolist() == [written, written, 0, 0, skipped, 0]


def test_supports_only_what_the_kernel_computes(interp) -> None:
    w = torch.zeros(6, 4)
    assert triton_step.supports(w, w.clone(), torch.zeros(6, 4, dtype=torch.bool))
    assert triton_step.supports(w.double(), w.double(), None)
    assert not triton_step.supports(w.half(), w.half())  # float32 and float64 only
    assert not triton_step.supports(w.t(), w.t().clone())  # the cells in logical order
    assert not triton_step.supports(w, w.clone(), torch.zeros(4, 6, dtype=torch.bool).t())
    assert not triton_step.supports(w, w.double())
    assert not triton_step.supports(w, torch.zeros(24))
    assert not triton_step.supports(w, w.clone(), torch.zeros(6, 4))  # a bool mask
    assert not triton_step.supports(torch.zeros(0), torch.zeros(0))


# ------------------------------------------------------------------ in the optimizer
def test_the_optimizer_writes_through_the_kernel_on_the_sync_free_path(interp) -> None:
    torch.manual_seed(0)
    w0 = torch.randn(40, 30)
    grad = torch.randn(40, 30) * 0.02
    grad[0, 0], grad[3, 7] = math.inf, math.nan
    w = nn.Parameter(w0.clone())
    sd_us, rwg, seed = 2.0, 1 / 80, 3
    opt = InSituOptimizer([w], torch.optim.SGD, lr=1.0, sd_us=sd_us, rwg_per_us=rwg, seed=seed)
    w.grad = grad.clone()
    with force_sync_free():
        opt.step()
    bad = ~grad.isfinite()
    ref_p = nn.Parameter(w0.clone())
    ref_p.grad = torch.where(bad, 0.0, grad)
    torch.optim.SGD([ref_p], lr=1.0).step()  # the proposal, as the base makes it
    # The rule's generator of the device is seeded with the optimizer's seed.
    rule, noise = triton_step.item_keys(step_key(seed)[0], 0)
    ref, written, skipped = triton_step.reference_write(
        ref_p.detach(), w0, bad, threshold=sd_us * rwg, noise_sd=sd_us * rwg,
        rule_key=rule, noise_key=noise,
    )  # fmt: skip
    assert torch.equal(w.detach() != w0, ref != w0)
    torch.testing.assert_close(w.detach(), ref, rtol=0, atol=4e-7)
    s = opt.ledger.summary()
    assert (s.written, s.skipped) == (int(written), int(skipped)) and s.skipped == 2
    assert w[0, 0] == w0[0, 0] and w[3, 7] == w0[3, 7]


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 24), nn.Tanh(), nn.Linear(24, 4))


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: range) -> None:
    for k in steps:
        g = torch.Generator().manual_seed(k)
        x, y = torch.randn(16, 12, generator=g), torch.randn(16, 4, generator=g)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        with force_sync_free():
            opt.step()


def test_runs_reproduce_and_resume_exactly(interp, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = triton_step.write
    monkeypatch.setattr(triton_step, "write", lambda *a, **k: calls.append(1) or real(*a, **k))
    a = net()
    opt_a = AdamEaPU(a.parameters(), lr=3e-2, seed=5)
    train(a, opt_a, range(4))
    assert len(calls) == 4  # one call (and launch) per step for both weights
    b = net()
    opt_b = AdamEaPU(b.parameters(), lr=3e-2, seed=5)
    train(b, opt_b, range(2))
    buf = io.BytesIO()
    torch.save({"model": b.state_dict(), "opt": opt_b.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    c = net()
    c.load_state_dict(saved["model"])
    opt_c = AdamEaPU(c.parameters(), lr=3e-2, seed=0)
    opt_c.load_state_dict(saved["opt"])
    train(c, opt_c, range(2, 4))
    for pa, pc in zip(a.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pc)
    assert opt_a.ledger.summary().written > 0


def test_no_host_synchronisation_on_the_kernel_path(interp) -> None:
    from test_sync_free import net as small_net
    from test_sync_free import steps_syncs

    with force_sync_free():
        model = small_net()
        assert steps_syncs(model, AdamEaPU(model.parameters(), lr=1e-2, seed=0)) == [0, 0, 0]


def test_eapu_triton_0_takes_the_torch_path(interp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EAPU_TRITON", "0")
    monkeypatch.setattr(triton_step, "_launch", lambda *a, **k: pytest.fail("kernel launched"))
    model = net()
    opt = AdamEaPU(model.parameters(), lr=3e-2, seed=5)
    train(model, opt, range(2))
    assert opt.ledger.summary().written > 0


def test_a_failing_kernel_warns_once_and_the_torch_path_writes(
    interp, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no usable ptxas")

    triton_step._reset()  # the kernel's first use on the CPU is tried again, and fails
    monkeypatch.setattr(triton_step, "_launch", broken)
    a, b = net(), net()
    opt_a = AdamEaPU(a.parameters(), lr=3e-2, seed=5)
    try:
        with pytest.warns(RuntimeWarning, match="Triton kernel failed.*no usable ptxas"):
            train(a, opt_a, range(1))
        assert not triton_step.available()
        assert "no usable ptxas" in (triton_step.unavailable_reason() or "")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            train(a, opt_a, range(1, 3))  # no second warning
        # What was written is the torch path's, as with the kernel turned off.
        monkeypatch.setenv("EAPU_TRITON", "0")
        opt_b = AdamEaPU(b.parameters(), lr=3e-2, seed=5)
        train(b, opt_b, range(3))
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.equal(pa, pb)
        assert opt_a.ledger.summary() == opt_b.ledger.summary()
    finally:
        triton_step._reset()
    monkeypatch.delenv("EAPU_TRITON")
    assert triton_step.available()
