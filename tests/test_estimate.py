import json

import pytest
from conftest import built_network, write_mlp
from estimate_networks import FIXTURE, NETWORKS, estimates, scheduled

from hwgen.estimate import PARTS, dsp_count, estimate_network, estimate_parts, total_of
from hwgen.plan import plan_network


@pytest.mark.parametrize(
    "a, b, dsps", [(27, 18, 1), (18, 27, 1), (20, 18, 1), (28, 18, 2), (27, 19, 2), (40, 30, 4), (8, 8, 1)]
)
def test_dsp48e2_count(a, b, dsps):
    assert dsp_count(a, b) == dsps


def test_network_estimate_counts_every_adder_bit(tmp_path):
    net = built_network(write_mlp(tmp_path / "m.onnx", [16, 12, 4], seed=1))
    plan = plan_network(net)
    per_layer, total = estimate_network(plan)
    for lp, res in zip(plan.layers, per_layer, strict=True):
        adder_bits = sum(lp.value_bits[lp.graph.n_inputs :])
        assert res.lut >= adder_bits and res.ff >= adder_bits
        # One DSP per channel: 18-bit multipliers on accumulators under 27 bits.
        assert res.dsp == sum(1 for m in lp.effective_multipliers if m and abs(m) & (abs(m) - 1))
    assert total.lut > sum(r.lut for r in per_layer)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_the_split_leaves_every_total_as_it_was(tmp_path, name):
    """Totals per layer and of the design, exactly as the estimate gave them before it was
    split into parts (tests/fixtures/estimate_totals.json, written by tests/estimate_networks.py)."""
    assert estimates(name, tmp_path, share_requantisers=False) == json.loads(FIXTURE.read_text())[name]


@pytest.mark.parametrize(
    "name",
    ["mlp_serial", "vgg1d_serial", "vgg1d_mac", "vgg1d_lanes", "conv1d_argmax", "conv2d_lanes4", "conv2d_pool3_lanes2"],
)
def test_the_parts_add_up_to_each_layer_and_to_the_design(tmp_path, name):
    plan = plan_network(scheduled(name, tmp_path))
    est = estimate_parts(plan)
    per_layer, total = estimate_network(plan)
    assert len(est.layers) == len(per_layer)
    for parts, res in zip(est.layers, per_layer, strict=True):
        assert set(parts) <= set(PARTS)
        assert sum(p.lut for p in parts.values()) == res.lut
        assert sum(p.ff for p in parts.values()) == res.ff
        assert sum(p.bram for p in parts.values()) == res.bram
        assert sum(p.dsp for p in parts.values()) == res.dsp
        assert all(min(p.lut, p.ff, p.bram, p.dsp) >= 0 for p in parts.values())
    assert total_of(est.by_part) == total
    assert total_of(est.outside) + sum_resources(per_layer) == total
    names = set().union(*est.layers, est.outside)
    if name.endswith("serial"):
        assert "serial_converters" in names
    if name.startswith("vgg1d"):
        assert {"window_buffer", "pooling", "collector"} <= names
    if name == "vgg1d_mac":
        assert {"accumulators", "weight_memory", "output_select", "serializer"} <= names
    if name == "conv1d_argmax":
        assert "argmax" in est.outside


def sum_resources(rows):
    from hwgen.estimate import Resources

    total = Resources()
    for r in rows:
        total = total + r
    return total
