"""The IR: networks of layers (:mod:`.network`) and adder graphs (:mod:`.adder_graph`)."""

from hwgen.ir.adder_graph import AdderGraph, AddNode, Operand
from hwgen.ir.network import (
    OUTPUT_OPS,
    DenseLayer,
    FixedFormat,
    LanePoolLayer,
    LaneTaps,
    LaneWindowPoolLayer,
    Layer,
    LinearLayer,
    Network,
    PoolLayer,
    Requant,
    ThresholdRequant,
    WeightRounding,
    lane_taps,
    signed_bits_for_range,
)
from hwgen.ir.quantizer import Quantizer

__all__ = [
    "OUTPUT_OPS",
    "AddNode",
    "AdderGraph",
    "DenseLayer",
    "FixedFormat",
    "LanePoolLayer",
    "LaneTaps",
    "LaneWindowPoolLayer",
    "Layer",
    "LinearLayer",
    "Network",
    "Operand",
    "PoolLayer",
    "Quantizer",
    "Requant",
    "ThresholdRequant",
    "WeightRounding",
    "lane_taps",
    "signed_bits_for_range",
]
