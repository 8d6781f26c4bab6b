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
