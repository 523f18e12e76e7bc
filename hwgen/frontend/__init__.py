"""ONNX to IR. :func:`load_onnx` is the entry point."""

from hwgen.frontend.onnx_reader import (
    MAX_FINAL_WEIGHT_BITS,
    MAX_FIRST_WEIGHT_BITS,
    MAX_WEIGHT_BITS,
    SUPPORTED_OPS,
    load_onnx,
)

__all__ = ["MAX_FINAL_WEIGHT_BITS", "MAX_FIRST_WEIGHT_BITS", "MAX_WEIGHT_BITS", "SUPPORTED_OPS", "load_onnx"]
