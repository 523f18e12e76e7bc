"""twngen: ternary/binary neural networks from ONNX to streaming FPGA Verilog.

Data flows one way: :mod:`hwgen.frontend` (ONNX to IR) -> :mod:`hwgen.passes`
(quantise, adder graphs) -> :mod:`hwgen.golden` (the arithmetic oracle) and
:mod:`hwgen.backend` (Amaranth to Verilog) -> reports. :mod:`hwgen.build` is
the Python API the CLI wraps.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
