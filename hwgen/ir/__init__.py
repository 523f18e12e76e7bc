"""The IR: networks of layers (:mod:`.network`) and adder graphs (:mod:`.adder_graph`)."""

from hwgen.ir.adder_graph import AdderGraph, AddNode, Operand
from hwgen.ir.network import (
    OUTPUT_OPS,
    DenseLayer,
    FixedFormat,
    Layer,
    LinearLayer,
    Network,
    PoolLayer,
    Requant,
    signed_bits_for_range,
)

__all__ = [
    "OUTPUT_OPS",
    "AddNode",
    "AdderGraph",
    "DenseLayer",
    "FixedFormat",
    "Layer",
    "LinearLayer",
    "Network",
    "Operand",
    "PoolLayer",
    "Requant",
    "signed_bits_for_range",
]
