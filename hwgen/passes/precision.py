"""Incremental activation precision (``--precision incremental``): activations widen as the rate falls.

The published TW-INCRA network kept every layer's adders bit-serial and gave
each layer as many activation bits as its throughput allowed (1, 2, 4, 8, 16
bits down the network): the area of binary activations with most of the
accuracy of 16-bit ones. This pass makes that choice automatically, from the
same budgets the digit-width scheduler uses (:func:`hwgen.passes.schedule.layer_budgets`).

For each convolution or dense layer ``L`` whose output feeds another one,
``C`` (through any pooling), ``L``'s output precision is the widest value of
the ladder (the powers of two between ``min_bits`` and ``max_bits``, and
both ends) whose words ``C`` can add *bit-serially* within its budget: ``W(p)
<= budget`` cycles, with ``W(p)`` ``C``'s word length for ``p``-bit inputs
(or ``min_bits`` when not even that fits). That is the seeds' rule, "bit
serial adders everywhere, precision adjusted to match the throughput"; the
digit-width scheduler then realises ``C`` at the least area for the chosen
precision (parallel, when the words are so narrow that carry-chain adders
cost less than serial ones). A ``C`` with its weights in memory (one element
a cycle at any width) takes ``max_bits``.

A ReLU output of ``p`` bits takes the codes ``0 .. 2**p - 1``; any other
output ``p`` signed bits (at least 2). The last layer keeps the output format
(``--out-bits``), and layers whose activations the model quantises itself
(QONNX, FINN, QDQ) keep the model's. The result is a map from layer name to
bits that :class:`hwgen.passes.quantize.QuantizeActivations` applies
(``layer_act_bits``); the build then quantises again and schedules.
"""

from __future__ import annotations

from hwgen.errors import TwnError
from hwgen.ir import LinearLayer, Network, PoolLayer
from hwgen.passes.schedule import choose_layer, layer_budgets
from hwgen.plan.bit_serial import serial_word_bits

__all__ = ["PRECISION_MODES", "choose_activation_bits", "ladder"]

PRECISION_MODES = ("fixed", "incremental")


def ladder(min_bits: int, max_bits: int) -> list[int]:
    """The precisions tried, narrowest first: powers of two in [min_bits, max_bits], and both ends."""
    if not (isinstance(min_bits, int) and isinstance(max_bits, int) and 1 <= min_bits <= max_bits <= 31):
        raise TwnError(
            f"incremental precision needs 1 <= --min-act-bits <= --act-bits <= 31, not {min_bits} and {max_bits}"
        )
    steps = {min_bits, max_bits} | {1 << k for k in range(6) if min_bits <= 1 << k <= max_bits}
    return sorted(steps)


def _codes(relu: bool, bits: int) -> tuple[int, int, int]:
    """(lo, hi, signed width) of ``bits``-bit activations."""
    if relu:
        return 0, (1 << bits) - 1, bits + 1
    bits = max(2, bits)
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1, bits


def _precision_for(
    network: Network, producer: LinearLayer, consumer: LinearLayer, budget: int, steps: list[int]
) -> int:
    """The widest step whose words ``consumer`` can add bit-serially within its budget."""
    assert producer.requant is not None and consumer.adder_graph is not None
    relu = producer.requant.relu
    _, realisation = choose_layer(network, consumer, budget, *_codes(relu, steps[0]))
    if realisation == "mac":
        return steps[-1]  # weights in memory: one element a cycle, at any width
    chosen = steps[0]
    for bits in steps[1:]:
        lo, hi, _ = _codes(relu, bits)
        if consumer.is_conv:
            lo, hi = min(lo, 0), max(hi, 0)  # zero padding
        if serial_word_bits(consumer.adder_graph, lo, hi) <= budget:
            chosen = bits
    return chosen


def choose_activation_bits(network: Network, initiation_interval: int, min_bits: int, max_bits: int) -> dict[str, int]:
    """{layer name: activation value bits} for every layer whose output another layer consumes.

    ``network`` is quantised (at any fixed width) and has its adder graphs;
    only its weights, graphs and geometry matter here.
    """
    steps = ladder(min_bits, max_bits)
    budgets = layer_budgets(network, initiation_interval)
    chosen: dict[str, int] = {}
    producer: LinearLayer | None = None
    for layer in network.layers:
        if isinstance(layer, PoolLayer):
            continue
        assert isinstance(layer, LinearLayer)
        if producer is not None and producer.quantizer is None:
            budget = budgets.get(layer.name, initiation_interval)
            chosen[producer.name] = _precision_for(network, producer, layer, budget, steps)
        producer = layer
    return chosen
