"""Amaranth gateware and network assembly (the only place Amaranth is imported)."""

from hwgen.backend.assemble import TOP_NAME, StreamingNetwork, generate_verilog

__all__ = ["TOP_NAME", "StreamingNetwork", "generate_verilog"]
