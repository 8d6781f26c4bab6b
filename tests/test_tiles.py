"""Tiles, placement and analog layers: the device-level seam of the optimizer."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from eapu.ledger import FIELDS
from eapu.nn import (
    AnalogConv2d,
    AnalogConvTranspose2d,
    AnalogLinear,
    convert,
    crossbar_of,
    to_digital,
)
from eapu.optim import AdamEaPU, AdamNoise
from eapu.tiles import Crossbar, Placement


def autoencoder() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.Conv2d(3, 3, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.Conv2d(3, 1, 3, padding=1, bias=False),
    )


def mixed() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(4, 2, 2, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(2 * 8 * 8, 3),
    )


EXACT = {"device": "ideal", "scheme": "gaussian", "load_scheme": "gaussian"}


def test_paper_autoencoder_takes_162_cells() -> None:
    xb = convert(autoencoder(), device="taox_1t1r", scheme="memorial")
    assert xb.placement.weight_cells == 135
    assert xb.placement.reference_cells == 27
    assert xb.cells == 162
    assert sum(t.cells for t in xb.tiles) == 162
    text = xb.placement.render()
    assert "135 weight cells + 27 reference cells = 162 cells" in text
    assert text.count("R") == 27


def test_default_denoise_ae_is_135_weights_on_162_cells() -> None:
    from eapu.models import get_model

    net = get_model("denoise_ae", seed=0)
    xb = convert(net, device="taox_1t1r", scheme="memorial")
    assert (xb.placement.weight_cells, xb.placement.reference_cells, xb.cells) == (135, 27, 162)
    assert sum(p.numel() for p in net.parameters()) == 135  # nothing digital left over


def test_paper_srnet2_takes_396_cells() -> None:
    from eapu.models import get_model

    xb = convert(get_model("srnet2"), device="taox_1t1r", scheme="memorial")
    assert (xb.placement.weight_cells, xb.placement.reference_cells, xb.cells) == (369, 27, 396)


def test_placement_keeps_kernel_windows_whole() -> None:
    pl = Placement(32, 32, "reference_column")
    blocks = pl.add("conv", 45, 4, row_unit=9)  # 5 input channels of 3x3: 27 + 18 rows
    assert [b.rows for b in blocks] == [27, 18]


def test_placement_splits_large_matrices_and_fills_arrays() -> None:
    pl = Placement(32, 32, "reference_column")
    blocks = pl.add("big", 70, 40)  # 3 row blocks x 2 column blocks (31 + 9)
    assert len(blocks) == 6
    assert sum(b.rows * b.cols for b in blocks) == 70 * 40
    assert all(b.rows <= 32 and b.cols <= 31 for b in blocks)
    # 3·31 + 3·9 = 120 columns need at least 4 arrays of 31 usable columns: first fit hits it.
    assert pl.arrays == 4
    assert sorted(pl.used_cols) == [27, 31, 31, 31]
    assert pl.weight_cells == 2800
    pd = Placement(32, 32, "differential")
    pd.add("w", 10, 20)
    assert pd.cells == 400 and pd.reference_cells == 0


@pytest.mark.parametrize("mapping", ["reference_column", "differential"])
def test_ideal_device_reproduces_weights_and_the_torch_layers(mapping: str) -> None:
    digital, analog = mixed(), mixed()
    xb = convert(analog, mapping=mapping, **EXACT)
    for a, b in zip(digital.parameters(), analog.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    x = torch.randn(5, 1, 4, 4)
    torch.testing.assert_close(digital(x), analog(x), rtol=0, atol=1e-5)
    kinds = [type(m) for m in analog.modules()]
    assert AnalogConv2d in kinds and AnalogConvTranspose2d in kinds and AnalogLinear in kinds
    assert crossbar_of(analog) is xb
    if mapping == "differential":
        assert xb.cells == 2 * sum(p.numel() for p in analog.parameters() if p.dim() > 1)


def test_training_through_ideal_tiles_equals_digital_training() -> None:
    digital, analog = mixed(), mixed()
    convert(analog, **EXACT)
    od = torch.optim.Adam(digital.parameters(), lr=1e-2)
    oa = AdamNoise(analog.parameters(), lr=1e-2)  # every update written, device is exact
    for i in range(5):
        g = torch.Generator().manual_seed(i)
        x, y = torch.randn(8, 1, 4, 4, generator=g), torch.randn(8, 3, generator=g)
        for m, o in ((digital, od), (analog, oa)):
            o.zero_grad()
            nn.functional.mse_loss(m(x), y).backward()
            o.step()
    for a, b in zip(digital.parameters(), analog.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_taox_training_stays_in_window_and_ledger_adds_up() -> None:
    m = autoencoder()
    xb = convert(m, device="taox_1t1r", scheme="memorial", seed=3)
    opt = AdamEaPU(m.parameters(), lr=1e-2)
    w = opt.analog_parameters()[0]
    assert opt.threshold_for(w, opt.param_groups[0]) == pytest.approx(xb.sd_us * xb.rwg_per_us)
    assert 1.5 < xb.sd_us < 3.5
    x = torch.rand(16, 1, 6, 6)
    for _ in range(5):
        opt.zero_grad()
        nn.functional.mse_loss(m(x + 0.3 * torch.randn_like(x)), x).backward()
        opt.step()
    dev = xb.device_model
    for t in xb.tiles:
        assert t.state.g_us.min() >= dev.g_min_us and t.state.g_us.max() <= dev.g_max_us
        torch.testing.assert_close(t.weight(), dict(m.named_parameters())[f"{t.name}.weight"])
    s = opt.ledger.summary()
    assert s.cells == 162
    assert s.nup == pytest.approx(s.ncell * s.rup)
    table = opt.ledger.table()
    assert (table >= 0).all()
    assert (table[..., FIELDS.index("pulses")] >= table[..., FIELDS.index("written")] * 0).all()
    assert sum(int(t.writes.sum()) for t in xb.tiles) > 0


def test_analog_model_resumes_bit_for_bit() -> None:
    def run(steps: range, m: nn.Module, xb: Crossbar, opt: AdamEaPU) -> None:
        for i in steps:
            g = torch.Generator().manual_seed(i)
            x = torch.rand(8, 1, 6, 6, generator=g)
            opt.zero_grad()
            nn.functional.mse_loss(m(x), x).backward()
            opt.step()

    def fresh(seed: int = 5) -> tuple[nn.Module, Crossbar, AdamEaPU]:
        m = autoencoder()
        xb = convert(m, device="taox_1t1r", scheme="memorial", seed=seed)
        return m, xb, AdamEaPU(m.parameters(), lr=1e-2, seed=1)

    m, xb, opt = fresh()
    run(range(6), m, xb, opt)

    m1, xb1, opt1 = fresh()
    run(range(3), m1, xb1, opt1)
    buf = io.BytesIO()
    torch.save({"m": m1.state_dict(), "x": xb1.state_dict(), "o": opt1.state_dict()}, buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    m2, xb2, opt2 = fresh(seed=99)  # a different draw, overwritten by the checkpoint
    m2.load_state_dict(ck["m"])
    xb2.load_state_dict(ck["x"])
    opt2.load_state_dict(ck["o"])
    run(range(3, 6), m2, xb2, opt2)
    for a, b in zip(m.parameters(), m2.parameters(), strict=True):
        assert torch.equal(a, b)


def test_to_digital_keeps_the_cells_weights() -> None:
    m = autoencoder()
    convert(m, device="taox_1t1r", scheme="memorial")
    w = [p.detach().clone() for p in m.parameters()]
    d = to_digital(m)
    assert all(type(x) is nn.Conv2d for x in d.modules() if isinstance(x, nn.Conv2d))
    for a, b in zip(w, d.parameters(), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"mapping": "diagonal"}, r"Invalid mapping: 'diagonal'; allowed: 'reference_column'"),
        ({"rwg_per_us": 0.0}, r"Invalid rwg_per_us: 0.0; allowed: a finite number > 0"),
        ({"array_size": (32, 2)}, r"Invalid array_size: \(32, 2\)"),
        ({"g_ref_us": 1e4}, r"Invalid g_ref_us: 10000; the operating range .* allowed: \[85, 85\]"),
        (
            {"rwg_per_us": 1 / 4000},
            r"Invalid rwg_per_us \(--rwg\): 0.00025; .* allowed: rwg_per_us >= 0.0125",
        ),
        ({"w_max": 0.0}, r"Invalid w_max: 0.0"),
        ({"scheme": "magic"}, r"magic"),
        ({"device": "unobtainium"}, r"unknown device 'unobtainium'"),
        ({"sd_us": -1.0}, r"Invalid sd_us: -1.0"),
    ],
)
def test_bad_crossbar_options_raise(kw: dict, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        Crossbar(**kw)


def test_bad_convert_options_raise() -> None:
    with pytest.raises(
        ValueError, match=r"Invalid adc_bits: 1; allowed: None or an integer in \[2, 32\]"
    ):
        convert(autoencoder(), adc_bits=1)
    with pytest.raises(ValueError, match=r"found no nn\.Linear"):
        convert(nn.Sequential(nn.ReLU()))


def test_tile_never_writes_non_finite_updates_and_refuses_wrong_shapes() -> None:
    m = autoencoder()
    xb = convert(m, device="taox_1t1r")
    t = xb.tiles[0]
    g = t.conductances().clone()
    dwn = torch.full(t.shape, 0.05)
    dwn.view(-1)[:3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    row = t.program(dwn)
    t.weight()  # the write is done: its row is filled
    assert int(row[FIELDS.index("skipped")]) == 3
    assert torch.equal(t.conductances().view(-1)[:3], g.view(-1)[:3])  # those cells untouched
    assert int(row[FIELDS.index("written")]) > 0
    with pytest.raises(ValueError, match=r"dwn has shape \(2,\)"):
        t.program(torch.zeros(2))


def test_read_noise_and_quantisation_change_the_output_not_the_weight() -> None:
    from dataclasses import replace

    from eapu.devices import get_device

    noisy = replace(get_device("ideal"), read_noise_sd_us=1.0)
    m = mixed()
    convert(m, device=noisy, scheme="gaussian", load_scheme="gaussian", adc_bits=4)
    x = torch.randn(4, 1, 4, 4)
    w = [p.detach().clone() for p in m.parameters()]
    y1, y2 = m(x), m(x)
    assert not torch.equal(y1, y2)
    for a, b in zip(w, m.parameters(), strict=True):
        assert torch.equal(a, b)


def test_operating_range_follows_rwg() -> None:
    """Gmax = w_max / Rwg: halving Rwg doubles the range, the reference sits at its middle,
    and the cells' mean conductance above the window's floor scales with 1 / Rwg."""
    from eapu.devices import get_device
    from eapu.tiles import operating_range

    dev = get_device("taox_1t1r")
    assert operating_range(dev, "reference_column", 1 / 80) == pytest.approx((5.0, 165.0))
    assert operating_range(dev, "reference_column", 1 / 40) == pytest.approx((5.0, 85.0))
    assert operating_range(dev, "differential", 1 / 80) == pytest.approx((5.0, 85.0))
    net = autoencoder()
    w = [p.detach().clone() for p in net.parameters()]
    above_floor = {}
    for rwg in (1 / 80, 1 / 40, 1 / 20):
        m = autoencoder()
        xb = convert(m, device="ideal", scheme="gaussian", load_scheme="gaussian", rwg_per_us=rwg)
        assert xb.g_ref_us == pytest.approx(xb.device_model.g_min_us + 1.0 / rwg)
        g = torch.cat([t.state.g_us.reshape(-1) for t in xb.tiles] + [xb.ref_g_us])
        above_floor[rwg] = float(g.mean()) - xb.device_model.g_min_us
        for a, t in zip(w, xb.tiles, strict=True):
            torch.testing.assert_close(t.weight(), a, atol=1e-5, rtol=0)
        assert xb.clipped == 0
    assert above_floor[1 / 40] == pytest.approx(above_floor[1 / 80] / 2, rel=1e-5)
    assert above_floor[1 / 20] == pytest.approx(above_floor[1 / 80] / 4, rel=1e-5)


def test_weights_beyond_the_window_are_counted_not_silently_clipped() -> None:
    big = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        big.weight.fill_(0.1)
        big.weight[0, 0] = 5.0  # beyond w_max = 1 at Rwg 1/80: G would be 485 µS
    with pytest.warns(
        UserWarning, match=r"1 weight\(s\) beyond what device 'taox_1t1r' holds"
    ) as w:
        xb = convert(nn.Sequential(big), device="taox_1t1r", scheme="memorial")
    assert "stuck reference" not in str(w[0].message)
    assert xb.clipped == 1
    tile = xb.tiles[0]
    tile.program(torch.full((2, 4), -3.0))  # every target below the window's floor
    assert xb.clipped == 1 + 8
    state = tile.state_tensors()
    assert int(state["clipped"]) == 9


def test_weights_beyond_the_window_through_a_stuck_reference_cell_are_named() -> None:
    from eapu.devices import STUCK_ON, get_device

    # Small positive weights fit the window, except where the row's reference cell is stuck
    # at g_max: G = g_max + ΔG lies above it.
    lin = nn.Linear(16, 8, bias=False)
    nn.init.constant_(lin.weight, 0.05)
    dev = get_device("ideal", stuck_on_fraction=0.5)
    with pytest.warns(UserWarning, match=r"(\d+) of them are read against a stuck reference") as w:
        xb = convert(nn.Sequential(lin), device=dev, scheme="gaussian", seed=1)
    tile = xb.tiles[0]
    assert xb.ref_params is not None
    on_stuck_ref = int((xb.ref_params.stuck[tile.ref_index] == STUCK_ON).sum())
    assert 0 < on_stuck_ref < lin.weight.numel()
    assert xb.clipped == on_stuck_ref
    assert f"{on_stuck_ref} of them are read against a stuck reference" in str(w[0].message)


def test_reference_cells_belong_to_their_own_array_when_an_earlier_array_grows() -> None:
    """First fit puts a tall narrow block into array 0 after array 1 exists: array 0's new
    rows get reference cells of their own, not array 1's (as a prefix sum of rows did)."""
    pl = Placement(32, 32, "reference_column")
    pl.add("a", 9, 30)  # array 0: 9 rows, 1 column left
    pl.add("b", 9, 5)  # array 1
    pl.add("c", 27, 1)  # array 0 again, rows 9..26 are new
    assert pl.arrays == 2 and pl.used_rows == [27, 9]
    index = {(a, r): pl.reference_index(a, r) for a in range(2) for r in range(pl.used_rows[a])}
    assert sorted(index.values()) == list(range(pl.reference_cells))  # one cell per row
    xb = Crossbar("ideal", "gaussian", load_scheme="gaussian")
    for name, rows, cols in (("a", 9, 30), ("b", 9, 5), ("c", 27, 1)):
        xb.add_tile(name, torch.zeros(cols, rows))
    refs = {t.name: set(t.ref_index.reshape(-1).tolist()) for t in xb.tiles}
    assert refs["b"].isdisjoint(refs["a"] | refs["c"])  # array 1's cells serve array 1 only
    assert refs["a"] < refs["c"]  # c shares array 0's first 9 rows with a


# --- set-up in one batch -------------------------------------------------------------------


def test_the_layout_follows_the_placement() -> None:
    """Each weight is read against the reference cell of its block's array row; each cell's
    row segment is one (array, row) of its tile, and a tile's segments are its rows."""
    from eapu.tiles import matrix_shape

    model = mixed()
    xb = convert(model, **EXACT, array_size=(8, 8))  # small arrays: blocks in a grid
    pl = xb.placement
    for tile in xb.tiles:
        rows, cols = matrix_shape(tile.shape, tile.transposed)
        ref = tile._as_matrix(tile.ref_index.reshape(-1))
        seg = tile._as_matrix(xb.cell_segment[tile.offset : tile.offset + tile.size])
        keys = {}
        for b in tile.blocks:
            for r in range(b.rows):
                want = pl.reference_index(b.array, r)
                row = slice(b.col0, b.col0 + b.cols)
                assert torch.all(ref[b.row0 + r, row] == want)
                ids = set(seg[b.row0 + r, row].tolist())
                assert len(ids) == 1
                keys.setdefault((b.array, r), ids.pop())
        assert len(set(keys.values())) == len(keys) == tile.segments
        span = range(tile.segment_offset, tile.segment_offset + tile.segments)
        assert set(keys.values()) == set(span)
        assert (rows, cols) == ref.shape


def test_a_seed_gives_the_same_crossbar_and_tiles_one_by_one_the_same_layout() -> None:
    a, b = mixed(), mixed()
    xa = convert(a, device="taox_1t1r", scheme="memorial", seed=3)
    xb = convert(b, device="taox_1t1r", scheme="memorial", seed=3)
    for name in ("g_us", "gate", "ref_g_us", "cell_gate_gain", "weight_ref_index", "cell_segment"):
        assert torch.equal(getattr(xa, name), getattr(xb, name)), name
    one = Crossbar("taox_1t1r", "memorial", seed=3)  # the same weights added one at a time
    for t in xa.tiles:
        one.add_tile(t.name, t.weight(), transposed=t.transposed)
    assert torch.equal(one.weight_ref_index, xa.weight_ref_index)
    assert [t.segments for t in one.tiles] == [t.segments for t in xa.tiles]


def test_writes_in_chunks_are_the_writes_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host path hands a scheme at most a chunk of cells at a time, a chunk spanning
    several writes; on the exact device the cells and every ledger row are the same."""
    import eapu.tiles.crossbar as crossbar

    def run(chunk: int) -> tuple[Crossbar, list[torch.Tensor], list[torch.Tensor]]:
        monkeypatch.setattr(crossbar, "_CHUNK", chunk)
        model = mixed()
        xb = convert(model, **EXACT)
        loads = [t.load_record.clone() for t in xb.tiles]
        gen = torch.Generator().manual_seed(0)
        dws = [torch.randn(t.shape, generator=gen) * 0.01 for t in xb.tiles]
        for dw, t in zip(dws, xb.tiles, strict=True):
            dw[torch.rand(t.shape, generator=gen) < 0.7] = 0.0
        rows = [t.program(dw) for dw, t in zip(dws, xb.tiles, strict=True)]
        xb.flush()
        return xb, loads, rows

    whole, loads, rows = run(1 << 18)
    parts, loads_c, rows_c = run(7)
    assert torch.equal(whole.g_us, parts.g_us) and torch.equal(whole.writes, parts.writes)
    assert all(torch.equal(x, y) for x, y in zip(loads + rows, loads_c + rows_c, strict=True))
    assert int(sum(r[FIELDS.index("written")] for r in rows)) > 0


def test_siblings_of_several_tiles_come_at_once_in_their_order() -> None:
    """Tiki-Taka's fast arrays: the simulator's tiles on one crossbar get their siblings in
    one batch; another implementation of the seam is asked for its own."""
    from eapu.tiles import siblings

    class Other:  # a driver of some other hardware: only the seam's sibling is used
        def __init__(self, tile: object) -> None:
            self.tile, self.asked = tile, []
            self.shape = tile.shape  # type: ignore[attr-defined]

        def sibling(self, suffix: str, weight: torch.Tensor) -> object:
            self.asked.append(suffix)
            return self.tile

    model = mixed()
    xb = convert(model, **EXACT)
    a, _, c = xb.tiles
    other = Other(a)
    before = len(xb.tiles)
    out = siblings([a, other, c], ".A", [torch.zeros(t.shape) for t in (a, a, c)])  # type: ignore[list-item]
    assert other.asked == [".A"] and out[1] is a
    assert [t.name for t in out[::2]] == [a.name + ".A", c.name + ".A"]  # type: ignore[union-attr]
    assert len(xb.tiles) == before + 2
    assert torch.allclose(out[0].weight(), torch.zeros(a.shape), atol=1e-5)
    with pytest.raises(ValueError, match="Invalid weights"):
        siblings([a], ".B", [])
    # a function of the placed sibling (Tiki-Taka: its symmetry point): one load, with it
    seen = []

    def half(t: object) -> torch.Tensor:
        seen.append(t)
        return torch.full(t.shape, 0.5)  # type: ignore[attr-defined]

    made = siblings([c, other], ".C", half)
    assert {id(t) for t in seen} == {id(t) for t in made} and other.asked == [".A", ".C"]
    assert torch.allclose(made[0].weight(), torch.full(c.shape, 0.5), atol=1e-5)
    written = made[0].load_record[FIELDS.index("written")]
    assert int(written) == made[0].size  # loaded once: every cell, from fresh


@pytest.mark.parametrize("mapping", ["reference_column", "differential"])
def test_a_read_has_the_cells_and_the_references_noise(mapping: str) -> None:
    """Reference column: a weight's read noise is its cell's minus its row's reference
    cell's (shared by the row: weights of one row correlate by 1/2); differential: the pair's
    two cells'. Unbiased, SD Rwg·√2·σ_read; the gradient reaches the parameter unchanged."""
    from dataclasses import replace

    from eapu.devices import get_device

    dev = replace(get_device("ideal"), read_noise_sd_us=1.0)
    lin = nn.Linear(64, 32, bias=False)
    nn.init.uniform_(lin.weight, -0.5, 0.5)
    model = nn.Sequential(lin)
    rwg = 1 / 80 if mapping == "reference_column" else 1 / 160
    convert(
        model,
        device=dev,
        scheme="gaussian",
        load_scheme="gaussian",
        mapping=mapping,
        rwg_per_us=rwg,
        array_size=(64, 64),
    )
    layer = model[0]
    noise = torch.stack([layer._read_weight().detach() - layer.weight.detach() for _ in range(400)])
    sd = rwg * math.sqrt(2)
    assert float(noise.mean()) == pytest.approx(0.0, abs=0.02 * sd)
    assert float(noise.std()) == pytest.approx(sd, rel=0.03)
    # a crossbar row is an input line: W[0, 0] and W[1, 0] share one, W[0, 1] is another
    same_row = torch.corrcoef(torch.stack([noise[:, 0, 0], noise[:, 1, 0]]))[0, 1]
    other_row = torch.corrcoef(torch.stack([noise[:, 0, 0], noise[:, 0, 1]]))[0, 1]
    want = 0.5 if mapping == "reference_column" else 0.0
    assert float(same_row) == pytest.approx(want, abs=0.15)
    assert float(other_row) == pytest.approx(0.0, abs=0.15)
    w = layer._read_weight()
    (w * torch.arange(w.numel()).view(w.shape)).sum().backward()
    assert torch.equal(layer.weight.grad, torch.arange(w.numel()).view(w.shape).float())


def test_a_network_and_its_siblings_load_in_one_call_of_the_scheme(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Set-up is one batch: the reference cells in one call of the load scheme, every weight
    in another (cells fewer than a chunk), Tiki-Taka's fast arrays in one more."""
    from eapu.algorithms import TikiTakaV2

    calls = []
    original = Crossbar._scheme

    def counted(self: Crossbar, *args: object) -> object:
        calls.append(args[-1])
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Crossbar, "_scheme", counted)
    model = mixed()
    convert(model, device="taox_1t1r", scheme="memorial")
    assert calls == ["memorial", "memorial"]
    TikiTakaV2(model.parameters(), lr=0.01, seed=0, auto_scale=False, transfer_unit="steps")
    assert calls == ["memorial"] * 4  # the new arrays' reference cells, then A at its points
