"""Amaranth gateware and network assembly (the only place Amaranth is imported)."""

from hwgen.backend.assemble import MAX_VALUE_BITS, TOP_NAME, StreamingNetwork, generate_verilog, too_wide

__all__ = ["MAX_VALUE_BITS", "TOP_NAME", "StreamingNetwork", "generate_verilog", "too_wide"]
