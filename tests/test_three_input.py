"""Three-input adder graphs (hwgen.passes.three_input): same matrix, fewer registers, bit-exact gateware."""

import numpy as np
import pytest
from conftest import built_network, write_mlp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from test_backend import _codes, simulate
from test_serial import check_graph, random_matrix

from hwgen import golden
from hwgen.ir import AdderGraph
from hwgen.passes import run_passes
from hwgen.passes.merge_pairs import merged_adder_graph
from hwgen.passes.naive_tree import naive_adder_graph
from hwgen.passes.three_input import ThreeInputAdders, three_input_graph
from hwgen.plan.dense import LayerPlan

matrices = st.integers(1, 12).flatmap(
    lambda rows: st.integers(1, 24).flatmap(
        lambda cols: arrays(np.int64, (rows, cols), elements=st.sampled_from([-3, -2, -1, 0, 0, 0, 1, 1, 2, 4]))
    )
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(w=matrices, merged=st.booleans())
def test_regrouped_graph_computes_the_same_matrix(w, merged):
    graph = merged_adder_graph(w) if merged else naive_adder_graph(w)
    regrouped = three_input_graph(graph)
    np.testing.assert_array_equal(regrouped.coefficients(), w)
    assert regrouped.adders == graph.adders  # a three-input node is two additions
    assert regrouped.depth <= graph.depth
    assert len(regrouped.nodes) <= len(graph.nodes)
    for node in regrouped.nodes:
        signs = [op.negate for op in node.operands]
        assert sum(signs) <= 1 and signs == sorted(signs)  # positive operands first, at most one subtracted


def _registered_bits(graph: AdderGraph, lo: int, hi: int, in_bits: int) -> int:
    from types import SimpleNamespace

    plan = LayerPlan(SimpleNamespace(adder_graph=graph, digit_bits=0, word_bits=0, wrap_bits=0), lo, hi, in_bits)  # type: ignore[arg-type]
    bits = plan.value_bits
    nodes = sum(bits[graph.n_inputs :])
    return nodes + sum(bits[v] * length for v, length in plan.delays.items())


@pytest.mark.parametrize("merged", [True, False])
def test_a_conv_sized_layer_needs_fewer_registers_and_stages(merged):
    """A TW-64-like conv layer (192 inputs, 64 outputs, 70% zeros), 16-bit inputs."""
    w = np.random.default_rng(0).choice([-1, 0, 1], p=[0.15, 0.7, 0.15], size=(64, 192))
    graph = merged_adder_graph(w) if merged else naive_adder_graph(w)
    regrouped = three_input_graph(graph)
    lo, hi = -(1 << 15), (1 << 15) - 1
    before, after = _registered_bits(graph, lo, hi, 16), _registered_bits(regrouped, lo, hi, 16)
    assert after < 0.8 * before, (before, after)
    assert regrouped.depth < graph.depth
    assert regrouped.three_input_adders > 0.3 * len(regrouped.nodes)


def test_json_round_trip_keeps_three_input_nodes():
    graph = three_input_graph(naive_adder_graph(np.array([[1, -1, 1, 1, 0, -1, 1]])))
    assert graph.three_input_adders
    assert AdderGraph.from_json(graph.to_json()) == graph


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("kind", ["ternary", "integer"])
def test_regrouped_graphs_are_exact_digit_serially(d, kind):
    """Three-input nodes (with shifted and subtracted operands) through SerialAdderGraph; at
    d = 1 the plan merges further node pairs, at d = 2 it keeps the graph as it is."""
    w = random_matrix(np.random.default_rng(20 + d), 9, 14, kind)
    w[4] = 0
    graph = three_input_graph(naive_adder_graph(w))
    assert graph.three_input_adders
    check_graph(graph, d, -128, 127, n_random=12, gaps=True, seed=d)


def test_the_pass_regroups_parallel_and_bit_serial_layers_only(tmp_path):
    from dataclasses import replace

    net = built_network(write_mlp(tmp_path / "m.onnx", [16, 12, 8, 4], seed=2, zeros=0.2))
    layers = [replace(layer, digit_bits=d) for layer, d in zip(net.linear_layers, (0, 1, 2), strict=True)]
    out = run_passes(net.with_layers(tuple(layers)), (ThreeInputAdders(),))
    assert [bool(layer.adder_graph.three_input_adders) for layer in out.linear_layers] == [True, True, False]


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_three_input_network_matches_golden_in_amaranth_sim(tmp_path, stall):
    net = built_network(write_mlp(tmp_path / "m.onnx", [20, 12, 6], seed=5, zeros=0.3))
    net = run_passes(net, (ThreeInputAdders(),))
    assert all(layer.adder_graph.three_input_adders for layer in net.linear_layers)
    codes = _codes(net, 20, seed=4)
    plan, outputs, accepted, delivered = simulate(net, codes, stall=stall, seed=2)
    assert outputs == golden.run_integer(net, codes).tolist()
    if stall == 0.0:
        assert [d - a for a, d in zip(accepted, delivered, strict=True)] == [plan.latency] * len(codes)
