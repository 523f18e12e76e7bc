"""ONNX to IR. :func:`load_onnx` is the entry point."""

from hwgen.frontend.onnx_reader import SUPPORTED_OPS, load_onnx

__all__ = ["SUPPORTED_OPS", "load_onnx"]
