from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from eapu.energy import (
    CATEGORIES,
    AnalogLayer,
    Breakdown,
    Counts,
    StepWrites,
    endurance_report,
    energy,
    get_node,
    gpu_reference,
    inference_counts,
    latency,
    layer_blocks,
    load_nodes,
    periphery_sweep,
    training_step_counts,
)
from eapu.ledger import FIELDS, Ledger

ANALOG = ("180nm", "16nm", "flash")
LAYERS = [AnalogLayer("fc1", 64, 32), AnalogLayer("fc2", 32, 24), AnalogLayer("fc3", 24, 10)]
TAOX_CENTRE_US = 85.0  # centre of the taox_1t1r window (5-165 µS)


def _random_counts(seed: int) -> Counts:
    g = torch.Generator().manual_seed(seed)
    names = [f.name for f in dataclasses.fields(Counts)]
    vals = (torch.rand(len(names), generator=g, dtype=torch.float64) * 1e4).tolist()
    return Counts(**dict(zip(names, vals, strict=True)))


def _close(a: Breakdown, b: Breakdown) -> None:
    assert a.unit == b.unit
    for f in CATEGORIES:
        assert getattr(a, f) == pytest.approx(getattr(b, f), rel=1e-12, abs=0.0)


def test_shipped_nodes() -> None:
    nodes = load_nodes()
    assert {"180nm", "16nm", "flash", "gpu"} <= set(nodes)
    assert nodes["gpu"].kind == "digital"
    assert all(nodes[n].kind == "analog" for n in ANALOG)


def test_unknown_node_lists_names() -> None:
    with pytest.raises(ValueError, match=r"unknown node '7nm'.*180nm.*flash.*gpu"):
        get_node("7nm")


@pytest.mark.parametrize("name", ANALOG)
@pytest.mark.parametrize("fn", [energy, latency])
def test_linear_in_counts(name: str, fn) -> None:
    node = get_node(name)
    a, b = _random_counts(0), _random_counts(1)
    _close(fn(2 * a, node), 2 * fn(a, node))
    _close(fn(a + b, node), fn(a, node) + fn(b, node))
    _close(fn(Counts(), node), Breakdown(unit=fn(a, node).unit))


def test_no_writes_no_programming_energy() -> None:
    node = get_node("180nm")
    inf = energy(inference_counts(LAYERS, g_mean_us=TAOX_CENTRE_US), node)
    assert inf.programming == 0.0 and inf.verify == 0.0 and inf.total > 0
    step = training_step_counts(LAYERS, StepWrites(0, 0, 0), batch_size=8, g_mean_us=TAOX_CENTRE_US)
    e = energy(step, node)
    assert e.programming == 0.0 and e.verify == 0.0
    assert latency(step, node).programming == 0.0


def test_read_energy_scales_with_conductance() -> None:
    node = get_node("180nm")
    wide = energy(inference_counts(LAYERS, g_mean_us=80.0), node)
    narrow = energy(inference_counts(LAYERS, g_mean_us=20.0), node)
    assert narrow.vmm_read == pytest.approx(wide.vmm_read / 4, rel=1e-12)
    assert narrow.adc_dac == wide.adc_dac and narrow.digital == wide.digital
    assert narrow.total < wide.total


def test_units_sanity() -> None:
    n180, n16, flash, gpu = (get_node(n) for n in ("180nm", "16nm", "flash", "gpu"))
    assert 1e-16 <= n180.read_energy_j(TAOX_CENTRE_US) <= 1e-12
    assert 1e-16 <= n16.read_energy_j(TAOX_CENTRE_US) < n180.read_energy_j(TAOX_CENTRE_US)
    assert 1e-13 <= n180.pulse_energy_j(TAOX_CENTRE_US) <= 1e-9
    assert 1e-10 <= flash.pulse_energy_j(1.0) <= 1e-8  # ~nJ per ISPP pulse
    assert 1e-5 <= flash.t_pulse_s <= 1e-4
    assert flash.t_pulse_s > 100 * n180.t_pulse_s
    assert 1e-13 <= n180.e_adc_j <= 1e-10 and n16.e_adc_j < n180.e_adc_j
    assert 1e-12 <= gpu.e_op_j <= 1e-10


def test_inference_geometry() -> None:
    c = inference_counts([AnalogLayer("fc", 64, 32)], g_mean_us=10.0)
    # 2 row blocks × 2 column blocks (31 usable columns next to the reference column)
    assert c.vmms == 4
    assert c.cell_reads == 64 * 32 + 64 * 2
    assert c.read_g_us == c.cell_reads * 10.0
    assert c.dac_conversions == 64 * 2
    assert c.adc_conversions == 2 * (32 + 2)
    d = inference_counts([AnalogLayer("fc", 64, 32)], g_mean_us=10.0, mapping="differential")
    assert d.cell_reads == 2 * 64 * 32
    conv = inference_counts([AnalogLayer("conv", 9, 4, vmms_per_sample=784)], g_mean_us=1.0)
    assert conv.vmms == 784 and conv.cell_reads == 784 * (36 + 9)
    # 7 input channels of 3×3 = 63 rows: the placement keeps windows whole, 27 + 27 + 9 rows
    windows = AnalogLayer("conv7", 63, 4, row_unit=9)
    assert layer_blocks(windows, 32, 32, "reference_column") == (3, 1)
    assert inference_counts([windows], g_mean_us=1.0).vmms == 3


def test_energy_geometry_equals_the_placement() -> None:
    """The arrays energy counts for each layer are the blocks the crossbar placed."""
    from torch import nn

    from eapu.experiments import analog_layers
    from eapu.models import get_model
    from eapu.nn import convert

    torch.manual_seed(0)
    nets = [
        get_model("denoise_ae", seed=0),
        get_model("srnet2", seed=0),
        nn.Sequential(nn.Conv2d(7, 40, 3, padding=1), nn.ReLU(), nn.Conv2d(40, 2, 3)),
    ]
    for net, channels in zip(nets, (1, 1, 7), strict=True):
        layers = analog_layers(net, torch.rand(1, channels, 12, 12))
        xb = convert(net, device="ideal", scheme="gaussian", load_scheme="gaussian")
        for layer, tile in zip(layers, xb.tiles, strict=True):
            placed = (len({b.row0 for b in tile.blocks}), len({b.col0 for b in tile.blocks}))
            assert layer_blocks(layer, 32, 32, "reference_column") == placed, layer.name
        vmms = inference_counts(layers, g_mean_us=1.0).vmms
        assert vmms == sum(
            layer.vmms_per_sample * len(tile.blocks)
            for layer, tile in zip(layers, xb.tiles, strict=True)
        )


def test_scopes_and_the_periphery_sweep() -> None:
    node = get_node("180nm")
    c = inference_counts(LAYERS, g_mean_us=40.0) + Counts(pulses=10, pulse_g_us=400.0)
    e = energy(c, node)
    assert e.scope("total") == pytest.approx(e.total)
    assert e.scope("analog") == pytest.approx(e.vmm_read + e.adc_dac + e.programming + e.verify)
    assert e.scope("programming") == pytest.approx(e.programming + e.verify)
    assert e.as_dict()["scope_analog"] == pytest.approx(e.scope("analog"))
    with pytest.raises(ValueError, match="Invalid scope: 'cells'"):
        e.scope("cells")
    rows = periphery_sweep(c, node, [0.0, 0.5, 1.0])
    assert rows[0]["cell_share"] == pytest.approx(1.0)
    assert rows[2]["analog"] == pytest.approx(e.scope("analog"))
    # linear in the factor: the midpoint is the mean of the ends
    assert rows[1]["analog"] == pytest.approx((rows[0]["analog"] + rows[2]["analog"]) / 2)
    assert rows[0]["cell_share"] > rows[1]["cell_share"] > rows[2]["cell_share"]


def test_read_energy_and_mean_conductance_follow_rwg() -> None:
    """A network mapped at a larger Rwg sits in a narrower conductance range: its mean
    conductance above the window's floor and its cell-read energy scale with 1 / Rwg."""
    from eapu.experiments import analog_layers
    from eapu.models import get_model
    from eapu.nn import convert

    node = get_node("180nm")
    g_above, reads = {}, {}
    for rwg in (1 / 80, 1 / 40):
        net = get_model("denoise_ae", seed=0)
        layers = analog_layers(net, torch.rand(1, 1, 28, 28))
        xb = convert(net, device="ideal", scheme="gaussian", load_scheme="gaussian", rwg_per_us=rwg)
        assert xb.device_model.g_min_us == 0.0
        g = torch.cat([t.state.g_us.reshape(-1) for t in xb.tiles] + [xb.ref_g_us])
        g_above[rwg] = float(g.mean())
        reads[rwg] = energy(inference_counts(layers, g_mean_us=g_above[rwg]), node).vmm_read
    assert g_above[1 / 40] == pytest.approx(g_above[1 / 80] / 2, rel=1e-5)
    assert reads[1 / 40] == pytest.approx(reads[1 / 80] / 2, rel=1e-5)


def test_training_counts_from_ledger() -> None:
    ledger = Ledger(["fc1", "fc2"], [2048, 768])
    for pulses in (10, 30):
        row = torch.zeros(2, len(FIELDS), dtype=torch.int64)
        row[0, FIELDS.index("written")] = 4
        row[0, FIELDS.index("pulses")] = pulses
        row[0, FIELDS.index("reads")] = pulses
        ledger.record(row)
    writes = StepWrites.from_summary(ledger.summary())
    assert (writes.written, writes.pulses, writes.reads) == (4, 20, 20)
    step = training_step_counts(LAYERS, ledger.summary(), batch_size=16, g_mean_us=50.0)
    assert step.pulses == 20 and step.pulse_g_us == 20 * 50.0
    fwd = inference_counts(LAYERS, g_mean_us=50.0, bytes_per_value=4.0)
    assert step.cell_reads == 16 * fwd.cell_reads
    weights = sum(x.weights for x in LAYERS)
    assert step.digital_macs == 16 * 2 * weights and step.random_draws == weights
    node = get_node("180nm")
    wu = training_step_counts(
        LAYERS, StepWrites(weights, 66 * weights, 66 * weights), batch_size=16, g_mean_us=50.0
    )
    assert energy(wu, node).programming == pytest.approx(
        energy(step, node).programming * 66 * weights / 20, rel=1e-12
    )


def test_user_toml_overrides(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        '["180nm"]\nv_read_v = 0.1\n\n["mine"]\nkind = "digital"\ne_op_j = 1e-12\n'
        "e_mac_j = 2e-12\ne_byte_j = 1e-11\ndigital_ops_per_s = 1e12\nbytes_per_s = 1e11\n"
    )
    nodes = load_nodes(path)
    assert nodes["180nm"].v_read_v == 0.1
    assert nodes["180nm"].t_read_s == get_node("180nm").t_read_s  # the rest is kept
    assert nodes["180nm"].read_energy_j(80.0) == pytest.approx(
        get_node("180nm").read_energy_j(80.0) / 4, rel=1e-12
    )
    assert {"16nm", "flash", "gpu", "mine"} <= set(nodes)
    assert get_node("mine", path).e_op_j == 1e-12


def test_replacing_file_needs_full_nodes(tmp_path: Path) -> None:
    path = tmp_path / "partial.toml"
    path.write_text('["180nm"]\nv_read_v = 0.1\n')
    with pytest.raises(ValueError, match="t_read_s"):
        load_nodes(path, merge=False)
    full = tmp_path / "full.toml"
    full.write_text(
        '["tpu"]\nkind = "digital"\ne_op_j = 1e-12\ne_mac_j = 2e-12\ne_byte_j = 1e-11\n'
        "digital_ops_per_s = 1e12\nbytes_per_s = 1e11\n"
    )
    assert set(load_nodes(full, merge=False)) == {"tpu"}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('["180nm"]\nv_read_v = -0.2\n', r"180nm\.v_read_v: -0\.2"),
        ('["180nm"]\ne_adc_j = "25 pJ"\n', r"180nm\.e_adc_j: '25 pJ'"),
        ('["180nm"]\nadcs_parallel = 0\n', r"180nm\.adcs_parallel: 0; allowed.*>= 1"),
        ('["180nm"]\nkind = "optical"\n', r"180nm\.kind: 'optical'"),
        ('["180nm"]\nv_raed_v = 0.2\n', r"unknown key\(s\) \['v_raed_v'\] in node '180nm'"),
        ('["180nm"\n', "not valid TOML"),
    ],
)
def test_bad_toml_value_named(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_nodes(path)


def test_bad_counts_named() -> None:
    with pytest.raises(ValueError, match=r"Counts\.pulses: -1"):
        Counts(pulses=-1)
    with pytest.raises(ValueError, match="batch_size"):
        training_step_counts(LAYERS, StepWrites(0, 0, 0), batch_size=0, g_mean_us=1.0)
    with pytest.raises(ValueError, match=r"AnalogLayer\.rows"):
        AnalogLayer("x", 0, 3)


def test_gpu_reference() -> None:
    gpu = get_node("gpu")
    e, t = gpu_reference(1e12, 1e9, gpu)
    assert e.total == pytest.approx(1e12 * gpu.e_op_j + 1e9 * gpu.e_byte_j)
    assert t.total == pytest.approx(max(1e12 / gpu.digital_ops_per_s, 1e9 / gpu.bytes_per_s))
    assert e.unit == "J" and t.unit == "s"
    with pytest.raises(ValueError, match="digital Node"):
        gpu_reference(1.0, 1.0, get_node("180nm"))
    with pytest.raises(ValueError, match="crossbar operations"):
        energy(Counts(cell_reads=1.0, read_g_us=1.0), gpu)
    assert energy(Counts(digital_ops=1e6), gpu).digital == pytest.approx(1e6 * gpu.e_op_j)


def test_eapu_step_cheaper_than_gpu_step() -> None:
    """Order of magnitude only: an EaPU step at 16 nm (Rup 1 ‰, Ncell 1) costs less energy
    than the same step's forward pass on a GPU."""
    weights = sum(x.weights for x in LAYERS)
    step = training_step_counts(
        LAYERS, StepWrites(weights / 1000, weights / 1000, 0), batch_size=64, g_mean_us=20.0
    )
    analog_fwd = energy(step, get_node("16nm")).vmm_read
    gpu_fwd, _ = gpu_reference(2 * 64 * weights, 0.0, get_node("gpu"))
    assert analog_fwd < gpu_fwd.total


def test_endurance_arithmetic() -> None:
    writes = torch.zeros(10, 20, dtype=torch.int32)
    writes[3, 7] = 50
    writes[0, :5] = 10
    rep = endurance_report(writes, steps=100, endurance_cycles=1e6, bins=5)
    assert rep.max_writes == 50 and rep.max_index == 3 * 20 + 7
    assert rep.runs_to_endurance == pytest.approx(1e6 / 50)
    assert rep.steps_to_endurance == pytest.approx(1e6 / 50 * 100)
    assert rep.mean_writes == pytest.approx(100 / 200)
    assert rep.never_written == pytest.approx(194 / 200)
    assert sum(rep.counts) == rep.cells == 200
    assert rep.bin_edges[0] == 0 and rep.bin_edges[-1] == 50 and len(rep.bin_edges) == 6
    assert rep.counts == (194, 5, 0, 0, 1)
    several = endurance_report([writes, torch.full((3,), 100)], steps=100)
    assert several.max_writes == 100 and several.max_index == 200
    idle = endurance_report(torch.zeros(4), steps=10)
    assert math.isinf(idle.runs_to_endurance)
    with pytest.raises(ValueError, match="steps"):
        endurance_report(writes, steps=0)


# ------------------------------------------------------------------ scopes, rows, fits


def _digital_only(seed: int) -> Counts:
    g = torch.Generator().manual_seed(seed)
    vals = (torch.rand(4, generator=g, dtype=torch.float64) * 1e6).tolist()
    return Counts(
        digital_macs=vals[0], digital_ops=vals[1], random_draws=vals[2], bytes_moved=vals[3]
    )


@pytest.mark.parametrize("name", (*ANALOG, "180nm-fit"))
def test_the_crossbar_scope_leaves_the_digital_side_out(name: str) -> None:
    node = get_node(name)
    digital = _digital_only(3)
    assert energy(digital, node).scope("crossbar") == 0.0
    assert energy(digital, node).total > 0
    step = training_step_counts(
        LAYERS, StepWrites(40, 90, 30), batch_size=8, g_mean_us=50.0, backward="crossbar"
    )
    e, more = energy(step, node), energy(step + digital, node)
    assert more.scope("crossbar") == e.scope("crossbar") > 0
    assert more.total > e.total
    assert e.as_dict()["scope_crossbar"] == pytest.approx(
        e.vmm_read + e.adc_dac + e.programming + e.verify, rel=1e-12
    )
    assert latency(digital, node).scope("crossbar") == 0.0


def test_the_backward_pass_on_the_crossbar() -> None:
    """δ·Wᵀ of every layer but the first as transposed VMMs on its own arrays."""
    layers = [AnalogLayer("fc1", 64, 32), AnalogLayer("fc2", 64, 32, vmms_per_sample=3)]
    kw = {"batch_size": 4, "g_mean_us": 10.0}
    writes = StepWrites(5, 7, 2)
    dig = training_step_counts(layers, writes, **kw)
    xbar = training_step_counts(layers, writes, backward="crossbar", **kw)
    bwd = {
        f: getattr(xbar, f) - getattr(dig, f)
        for f in ("vmms", "cell_reads", "dac_conversions", "adc_conversions")
    }
    # fc2: 2 row blocks x 2 column blocks (31 columns beside the reference), 3 VMMs/sample
    assert bwd["vmms"] == 4 * 3 * 4
    assert bwd["cell_reads"] == 4 * 3 * (64 * 32 + 64 * 2)
    assert bwd["dac_conversions"] == 4 * 3 * 2 * (32 + 2)  # output errors + reference column
    assert bwd["adc_conversions"] == 4 * 3 * 64 * 2  # each row, per column block
    assert xbar.read_g_us - dig.read_g_us == pytest.approx(bwd["cell_reads"] * 10.0)
    uses = 64 * 32 * 1 + 64 * 32 * 3
    assert dig.digital_macs == 4 * uses * 2 and xbar.digital_macs == 4 * uses * 1
    for f in ("pulses", "pulse_g_us", "verify_reads", "random_draws", "bytes_moved"):
        assert getattr(xbar, f) == getattr(dig, f), f
    first_only = training_step_counts(layers[:1], writes, backward="crossbar", **kw)
    assert first_only.vmms == training_step_counts(layers[:1], writes, **kw).vmms
    with pytest.raises(ValueError, match="Invalid backward: 'analog'"):
        training_step_counts(layers, writes, backward="analog", **kw)
    with pytest.raises(ValueError, match=r"Invalid backward_macs_per_weight_use: 0\.5"):
        training_step_counts(
            layers, writes, backward="crossbar", backward_macs_per_weight_use=0.5, **kw
        )


def test_row_write_gain_is_the_papers_flash_latency_ratio() -> None:
    from eapu.energy import row_write_gain

    # by hand: (1 - 0.86e-3)^64 = exp(64 · ln 0.99914) = exp(-0.055064) = 0.946425, so
    # 1 / (1 - 0.946425) = 1 / 0.053575 = 18.665
    assert row_write_gain(0.86e-3, 64) == pytest.approx(18.665, abs=1e-3)
    assert round(row_write_gain(0.86e-3, 64), 2) == 18.67
    assert row_write_gain(0.86e-3, 32) == pytest.approx(36.824, abs=1e-3)
    assert row_write_gain(1.0, 64) == 1.0  # every cell written: every row busy
    assert row_write_gain(0.5, 1) == pytest.approx(2.0)  # rows of one cell: the cells' ratio
    with pytest.raises(ValueError, match="Invalid rup: 0"):
        row_write_gain(0.0, 64)
    with pytest.raises(ValueError, match="Invalid row_cells: 0"):
        row_write_gain(0.1, 0)


def test_row_latency_on_counts_gives_the_gain() -> None:
    """FP writes every cell (every row busy); EaPU a fraction Rup: on a row-parallel node
    the programming latency falls by 1/(1-(1-Rup)^n), on a cell-serial one by 1/Rup."""
    from eapu.energy import row_write_gain, rows_written_estimate

    flash = get_node("flash")
    assert flash.row_cells == 64
    cells, rup = 64 * 1000, 0.86e-3
    fp = Counts(pulses=cells, pulse_g_us=cells * 1.0, rows_written=1000, row_pulses=1000)
    rows = rows_written_estimate(cells, rup, 64)
    eapu = Counts(pulses=cells * rup, pulse_g_us=cells * rup, rows_written=rows, row_pulses=rows)
    gain = latency(fp, flash).programming / latency(eapu, flash).programming
    assert gain == pytest.approx(row_write_gain(rup, 64), rel=1e-12)
    assert gain == pytest.approx(18.67, abs=0.01)
    serial = dataclasses.replace(flash, row_cells=0)
    assert latency(fp, serial).programming / latency(eapu, serial).programming == pytest.approx(
        1 / rup, rel=1e-12
    )
    # energy stays per cell (an inhibited cell costs nothing): the pulse ratio, not the rows'
    assert energy(fp, flash).programming / energy(eapu, flash).programming == pytest.approx(
        1 / rup, rel=1e-12
    )


def test_rows_estimate_matches_independent_writes() -> None:
    """The estimate against seeded Bernoulli writes in rows of 64 (4 SE)."""
    from eapu.energy import rows_written_estimate

    g = torch.Generator().manual_seed(11)
    rup, n, rows = 0.01, 64, 20_000
    hit = (torch.rand(rows, n, generator=g) < rup).any(1).double()
    se = float(hit.std()) / rows**0.5
    assert float(hit.sum()) / rows == pytest.approx(
        rows_written_estimate(rows * n, rup, n) / rows, abs=4 * se
    )


def test_step_writes_take_the_ledgers_rows_or_estimate_them() -> None:
    from types import SimpleNamespace

    from eapu.energy import rows_written_estimate

    base = {
        "steps": 10,
        "written": 500,
        "pulses": 1500,
        "reads": 0,
        "cells": 6400,
        "rup": 500 / 64000,
    }
    est = StepWrites.from_summary(SimpleNamespace(**base), row_cells=64)
    assert est.rows_estimated
    assert est.rows == pytest.approx(rows_written_estimate(6400, 500 / 64000, 64))
    assert est.row_pulses == pytest.approx(est.rows * 3)  # Ncell = 3 pulses per written cell
    counted = StepWrites.from_summary(SimpleNamespace(**base, rows=120, row_pulses=400))
    assert (counted.rows, counted.row_pulses, counted.rows_estimated) == (12, 40, False)
    step = training_step_counts(
        LAYERS, SimpleNamespace(**base, rows=120), batch_size=2, g_mean_us=1.0
    )
    assert step.rows_written == 12 and step.row_pulses == 36


def test_row_cells_must_be_a_whole_number(tmp_path: Path) -> None:
    path = tmp_path / "rows.toml"
    path.write_text('["flash"]\nrow_cells = 6.5\n')
    with pytest.raises(ValueError, match=r"flash\.row_cells: 6\.5"):
        load_nodes(path)


def test_fit_read_time_gives_the_ratio_it_was_asked_for() -> None:
    from eapu.energy import fit_read_time

    node = get_node("180nm")
    lo = inference_counts(LAYERS, g_mean_us=45.0)
    hi = inference_counts(LAYERS, g_mean_us=4200.0)
    t = fit_read_time(lo, hi, node, 35.51)
    fit = dataclasses.replace(node, t_read_s=t)
    assert energy(hi, fit).scope("crossbar") / energy(lo, fit).scope("crossbar") == pytest.approx(
        35.51, rel=1e-9
    )
    assert t > node.t_read_s  # the cells must weigh more than the 10 ns estimate lets them
    with pytest.raises(ValueError, match=r"Invalid ratio: 200.*cells alone: 93\.3"):
        fit_read_time(lo, hi, node, 200.0)  # beyond the conductance ratio itself


def test_the_fitted_node_gives_the_papers_inference_ratio_on_its_workload() -> None:
    """180nm-fit: 180nm with t_read_s fitted to 35.51x on the denoise autoencoder at the
    mean conductances of its narrow-range runs (`FITTED`); every other value is 180nm's."""
    from eapu.experiments import analog_layers
    from eapu.experiments.narrow_range import FITTED, PAPER
    from eapu.models import get_model

    fit, base = get_node("180nm-fit"), get_node("180nm")
    assert "FITTED" in fit.description
    assert (
        dataclasses.replace(fit, name="180nm", t_read_s=base.t_read_s, description=base.description)
        == base
    )
    layers = analog_layers(get_model("denoise_ae", seed=0), torch.rand(1, 1, 28, 28))
    lo = inference_counts(layers, g_mean_us=FITTED["eapu_g_mean_us"])
    hi = inference_counts(layers, g_mean_us=FITTED["bp_g_mean_us"])
    ratio = energy(hi, fit).scope("crossbar") / energy(lo, fit).scope("crossbar")
    assert ratio == pytest.approx(PAPER["ratio"], rel=2e-3)
    assert energy(hi, base).scope("crossbar") / energy(lo, base).scope("crossbar") < 2


def test_gpu_references() -> None:
    from eapu.energy import measured_reference

    p100, a100 = get_node("gpu-p100"), get_node("gpu")
    assert p100.kind == a100.kind == "digital"
    assert p100.digital_ops_per_s == 9.3e12 and p100.bytes_per_s == 732e9
    assert p100.e_op_j == pytest.approx(250 / 9.3e12, rel=2e-3)  # board power at FP32 peak
    assert "P100" in p100.description and "16 nm" in p100.description
    assert "A100" in a100.description
    e, t = measured_reference(0.25, 1e-3, steps=1100)
    assert (e.total, e.unit, t.total, t.unit) == (
        pytest.approx(275.0),
        "J",
        pytest.approx(1.1),
        "s",
    )
    assert e.scope("crossbar") == 0.0
    with pytest.raises(ValueError, match="Invalid joules_per_step: -1"):
        measured_reference(-1.0, 1e-3, steps=1)


def test_a_runs_energy_figures_by_scope(tmp_path: Path) -> None:
    """energy.json holds both splits and the rows; energy_metrics gives the runner's keys."""
    from eapu.experiments import RunConfig, energy_figures, run
    from eapu.experiments.accounting import energy_metrics
    from eapu.files import read_json

    fast = {"steps": 6, "eval_every": 6, "batch_size": 8, "eval_samples": 16}
    m = run(RunConfig(task="denoise", method="eapu+mp", **fast), tmp_path)
    acc = read_json(tmp_path / "energy.json")
    assert acc["rows"]["source"] == "estimate" and acc["rows"]["row_cells"] == 32
    assert acc["training_crossbar_per_step"]["vmms"] > acc["training_per_step"]["vmms"]
    fig = energy_figures(acc, "180nm")
    t, x = fig["training"], fig["training_crossbar"]
    assert x["scope_crossbar"] > t["scope_crossbar"]  # the backward VMMs added
    assert x["total"] < t["total"]  # ... and one MAC per weight use less in digital
    assert x["programming"] == t["programming"] and x["verify"] == t["verify"]
    assert "rows" not in fig  # 180nm programs cell by cell
    flash = energy_figures(acc, "flash")
    assert flash["rows"]["row_cells"] == 64 and flash["rows"]["source"] == "estimate"
    assert "re-estimated" in flash["rows"]["note"]
    keys = energy_metrics(acc)
    for k in ("train_energy_uj_180nm", "update_energy_uj_180nm", "infer_energy_nj_16nm"):
        assert keys[k] == pytest.approx(m[k], rel=1e-12), k
    assert keys["train_energy_uj_180nm_crossbar"] == pytest.approx(x["scope_crossbar"] * 1e6)
    assert keys["infer_energy_nj_180nm_crossbar"] == pytest.approx(
        fig["inference"]["scope_crossbar"] * 1e9
    )
    p100 = energy_figures(acc, "16nm", gpu="gpu-p100", gpu_measured=(0.25, 1e-3))
    assert p100["gpu"] == "gpu-p100"
    assert p100["gpu_measured_training"]["total"] == pytest.approx(0.25 * 6)
    old = {k: v for k, v in acc.items() if k not in ("rows", "training_crossbar_per_step")}
    assert "training_crossbar" not in energy_figures(old, "180nm")
    with pytest.raises(ValueError, match="counts no rows written"):
        energy_figures(old, "flash")
