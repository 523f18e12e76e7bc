"""The IR: networks of layers (:mod:`.network`) and adder graphs (:mod:`.adder_graph`)."""

from hwgen.ir.adder_graph import AdderGraph, AddNode, Operand
from hwgen.ir.network import DenseLayer, FixedFormat, Network, Requant, signed_bits_for_range

__all__ = [
    "AddNode",
    "AdderGraph",
    "DenseLayer",
    "FixedFormat",
    "Network",
    "Operand",
    "Requant",
    "signed_bits_for_range",
]
