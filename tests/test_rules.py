"""The EaPU rule's statistics and contract (formula 4 of Liu et al. 2025)."""

from __future__ import annotations

import math

import pytest
import torch

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
