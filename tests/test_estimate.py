import pytest
from conftest import built_network, write_mlp

from hwgen.estimate import _dsp_count, estimate_network
from hwgen.plan import plan_network


@pytest.mark.parametrize(
    "a, b, dsps", [(27, 18, 1), (18, 27, 1), (20, 18, 1), (28, 18, 2), (27, 19, 2), (40, 30, 4), (8, 8, 1)]
)
def test_dsp48e2_count(a, b, dsps):
    assert _dsp_count(a, b) == dsps


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
