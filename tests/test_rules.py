"""The EaPU rule's statistics and contract (formula 4 of Liu et al. 2025)."""

from __future__ import annotations

import math

import pytest
import torch

from eapu import rules
from eapu.rules import eapu, eapu_foreach, exact, exact_foreach, get_rule, list_rules

TH = 0.025


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("frac", [0.01, 0.3, 0.9])
def test_mean_equals_proposal_and_write_probability(frac: float) -> None:
    n = 400_000
    dw = torch.full((n,), frac * TH, dtype=torch.float64)
    dw[::2] *= -1
    out = eapu(dw, threshold=TH, generator=gen())
    p = frac
    # E[ΔWn] = ΔW within 5 standard errors.
    se = TH * math.sqrt(p * (1 - p) / n)
    assert abs(out[1::2].mean().item() - frac * TH) < 5 * se * math.sqrt(2)
    assert abs(out[::2].mean().item() + frac * TH) < 5 * se * math.sqrt(2)
    # P(write) = |ΔW| / ΔWth within 5 binomial standard errors.
    written = (out != 0).double().mean().item()
    assert abs(written - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_sign_kept_and_values_are_threshold_or_zero() -> None:
    dw = torch.randn(50_000, dtype=torch.float64) * TH / 3
    out = eapu(dw, threshold=TH, generator=gen())
    small = dw.abs() < TH
    assert torch.all(out * dw >= 0)
    vals = out[small].abs()
    assert torch.all((vals == 0) | (vals == TH))
    assert torch.equal(out[~small], dw[~small])  # large updates unchanged


def test_zero_update_is_never_written() -> None:
    out = eapu(torch.zeros(10_000), threshold=TH, generator=gen())
    assert torch.count_nonzero(out) == 0


def test_same_seed_same_step_other_seed_differs() -> None:
    dw = torch.randn(10_000) * TH / 4
    a = eapu(dw, threshold=TH, generator=gen(1))
    b = eapu(dw, threshold=TH, generator=gen(1))
    c = eapu(dw, threshold=TH, generator=gen(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_foreach_equals_per_tensor_float64() -> None:
    torch.manual_seed(0)
    dws = [torch.randn(s, dtype=torch.float64) * 0.01 for s in [(7, 3), (5,), (4, 4, 3), (1,)]]
    ths = [0.02, 0.0, 0.005, 0.1]
    g1, g2 = gen(3), gen(3)
    ref = [eapu(d, threshold=t, generator=g1) for d, t in zip(dws, ths, strict=True)]
    out = eapu_foreach(dws, thresholds=ths, generator=g2)
    for r, o in zip(ref, out, strict=True):
        assert r.dtype == o.dtype == torch.float64
        assert torch.equal(r, o)
    assert torch.equal(g1.get_state(), g2.get_state())
    assert exact_foreach(dws) == dws


def test_threshold_zero_and_exact_are_identity() -> None:
    dw = torch.randn(100)
    assert torch.equal(eapu(dw, threshold=0.0, generator=gen()), dw)
    assert exact(dw) is dw


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "0.1", None])
def test_bad_threshold_raises_naming_it(bad: object) -> None:
    with pytest.raises(ValueError, match=r"Invalid threshold: .*allowed: a finite number >= 0"):
        eapu(torch.zeros(3), threshold=bad, generator=gen())  # type: ignore[arg-type]


def test_foreach_threshold_count_must_match() -> None:
    with pytest.raises(ValueError, match="thresholds has 1 entries for 2 tensors"):
        eapu_foreach([torch.zeros(2), torch.zeros(2)], thresholds=[0.1], generator=gen())


def test_registry() -> None:
    assert set(list_rules()) == {"eapu", "exact"}
    assert get_rule("eapu").fn is eapu
    with pytest.raises(ValueError, match="unknown rule 'nope'; available: exact, eapu"):
        get_rule("nope")


# ------------------------------------------------------------ the candidate sampler
def reference_positions(n: int, q: float, g: torch.Generator) -> list[int]:
    """The geometric-gap process written plainly, drawing the same uniforms."""
    c = math.log1p(-q)
    out: list[int] = []
    last = -1
    while True:
        for v in torch.rand(
            rules._gap_draws((n - 1 - last) * q), generator=g, dtype=torch.float64
        ).tolist():
            last += 1 + int(min(math.log1p(-v) / c, n))
            if last >= n:
                return out
            out.append(last)


@pytest.mark.parametrize(("n", "q"), [(50_000, 0.03), (1000, 0.2), (10**7, 1e-6)])
def test_bernoulli_positions_equal_a_plain_reference(n: int, q: float) -> None:
    got = rules.bernoulli_positions(n, q, generator=gen(4))
    assert got.tolist() == reference_positions(n, q, gen(4))


def test_bernoulli_positions_draw_on_when_a_chunk_falls_short(monkeypatch) -> None:
    monkeypatch.setattr(rules, "_gap_draws", lambda mean: 7)  # many short chunks
    n, q = 20_000, 0.05
    got = rules.bernoulli_positions(n, q, generator=gen(5))
    assert got.tolist() == reference_positions(n, q, gen(5))
    assert abs(got.numel() - n * q) < 5 * math.sqrt(n * q * (1 - q))


def test_bernoulli_positions_statistics() -> None:
    n, q, reps = 100_000, 0.02, 20
    counts, halves, ones = [], [], 0
    g = gen(6)
    for _ in range(reps):
        pos = rules.bernoulli_positions(n, q, generator=g)
        assert torch.all(pos[1:] > pos[:-1]) and pos[0] >= 0 and pos[-1] < n
        counts.append(pos.numel())
        halves.append(int((pos < n // 2).sum()))
        ones += int((pos[1:] - pos[:-1] == 1).sum())
    total = sum(counts)
    sd = math.sqrt(reps * n * q * (1 - q))
    assert abs(total - reps * n * q) < 5 * sd  # each cell present with probability q
    assert abs(2 * sum(halves) - total) < 5 * math.sqrt(total)  # no drift along the tensor
    pairs = total - reps  # P(next cell also present) = q: cells are independent
    assert abs(ones / pairs - q) < 5 * math.sqrt(q * (1 - q) / pairs)


@pytest.mark.parametrize("q", [0.0, 1.0, -0.1, float("nan")])
def test_bernoulli_positions_refuse_a_rate_outside_0_1(q: float) -> None:
    with pytest.raises(ValueError, match=r"Invalid q: .*allowed: 0 < q < 1"):
        rules.bernoulli_positions(10, q)


@pytest.mark.parametrize("scale", [0.2, 2.0])  # q = 0.2: candidates; 2.0: a draw per cell
def test_mixed_magnitudes_each_written_with_probability_dw_over_threshold(scale: float) -> None:
    fracs = torch.tensor([0.02, 0.05, 0.1, 0.2], dtype=torch.float64) * scale / 0.2
    per = 100_000
    g = gen(8)
    dw = fracs.repeat_interleave(per) * TH
    signs = torch.where(torch.rand(dw.shape, generator=g) < 0.5, -1.0, 1.0).double()
    dw = (dw * signs)[torch.randperm(dw.numel(), generator=g)]
    out = eapu(dw, threshold=TH, generator=g)
    assert torch.all(out * dw >= 0)
    for f in fracs.tolist():
        sel = dw.abs() == f * TH
        if f >= 1:
            assert torch.equal(out[sel], dw[sel])  # passes unchanged
            continue
        written = (out[sel] != 0).double()
        assert torch.all(out[sel].abs()[written.bool()] == TH)
        se = math.sqrt(f * (1 - f) / per)
        assert abs(written.mean().item() - f) < 5 * se
        ratio = (out[sel] / dw[sel]).mean().item()  # E[ΔWn / ΔW] = 1
        assert abs(ratio - 1) < 5 * math.sqrt((1 - f) / (f * per))


def test_sparse_and_dense_forms_agree_under_one_seed() -> None:
    dw = torch.randn(30_000, dtype=torch.float64) * TH / 20
    idx, vals = rules.eapu_sparse(dw, threshold=TH, generator=gen(9))
    dense = eapu(dw, threshold=TH, generator=gen(9))
    assert torch.equal(dense.nonzero().squeeze(1), idx)
    assert torch.equal(dense[idx], vals)
    assert torch.all(idx[1:] > idx[:-1])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_update_raises(bad: float) -> None:
    dw = torch.zeros(5)
    dw[2] = bad
    with pytest.raises(ValueError, match=r"Invalid dw: max \|dw\| is (nan|inf); allowed: finite"):
        eapu(dw, threshold=TH, generator=gen())
