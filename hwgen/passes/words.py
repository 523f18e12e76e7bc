"""Accumulator word widths: exact, calibrated, or a fixed width that wraps (``--words``).

By default every accumulator is as wide as the weights and the input codes can
make it (the worst case), so nothing ever wraps. Trained networks rarely come
near that bound: a ternary 3x64 convolution over 16-bit activations has a
22-bit worst case where its calibrated accumulators need 17 or 18 bits, and
the published hand-built classifier adds in 16-bit words that wrap. This pass
gives each linear layer a word width (``LinearLayer.wrap_bits``):

* ``exact`` (the default): none; nothing wraps.
* ``calibrated``: the narrowest width holding the layer's accumulators seen on
  the calibration batch (``--calibrate``, else the synthetic batch) times
  ``headroom`` (``--headroom``, default 2: one bit spare).
* an integer ``BITS``: every layer whose worst case is wider adds in
  ``BITS``-bit words (the published arithmetic at 16).

A layer whose worst case fits its word keeps exact words. With a word width
the accumulator *wraps*: it is kept modulo ``2**bits`` as a signed number, and
the golden model computes exactly that (:meth:`hwgen.ir.LinearLayer.word_accumulate`),
so the hardware stays bit-exact whatever the input; an input that wraps gets a
different output, which the report counts on the batch
(:func:`hwgen.golden.word_wraps`). In hardware, two's-complement adders
wrap for free: every adder, serial word, MAC accumulator and requantiser input
is at most the word wide (:attr:`hwgen.plan.dense.LayerPlan.value_bits`).

The pass runs after quantisation (it needs each layer's input codes) and
before the adder graphs and the scheduler (digit widths follow the word).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from hwgen.errors import TwnError
from hwgen.ir import FixedFormat, Layer, LinearLayer, Network
from hwgen.ir.widths import signed_bits_for_range
from hwgen.passes.quantize import accumulator_ranges

__all__ = ["MIN_WORD_BITS", "WORD_MODES", "ChooseWordWidths", "exact_word_bits", "parse_words"]

#: The named ``--words`` modes (an integer is the third form).
WORD_MODES = ("exact", "calibrated")
#: Narrowest word ``--words BITS`` accepts.
MIN_WORD_BITS = 4


def parse_words(text: str | int) -> str | int:
    """``--words`` as given: "exact", "calibrated" or a width in bits."""
    if isinstance(text, int) or str(text).strip().isdigit():
        bits = int(text)
        if not MIN_WORD_BITS <= bits <= 64:
            raise TwnError(f"--words: a word width must be between {MIN_WORD_BITS} and 64 bits, not {bits}")
        return bits
    if text not in WORD_MODES:
        raise TwnError(f"--words must be one of {', '.join(WORD_MODES)} or a width in bits, not {text!r}")
    return str(text)


def exact_word_bits(layer: LinearLayer, fmt: FixedFormat) -> int:
    """Width of the layer's widest accumulator for inputs coded in ``fmt`` (a convolution's zero
    padding included): the word that never wraps."""
    lo, hi = accumulator_ranges(layer, fmt)
    return signed_bits_for_range(min(int(lo.min(initial=0)), 0), max(int(hi.max(initial=0)), 0))


@dataclass(frozen=True, eq=False)
class ChooseWordWidths:
    """Set every linear layer's ``wrap_bits`` for ``words`` (see the module docstring).

    ``batch`` is the float input batch ([batch, *input_shape]) the calibrated
    widths are measured on; an integer width needs none.
    """

    name: ClassVar[str] = "choose-word-widths"
    words: str | int = "exact"
    batch: np.ndarray | None = None
    headroom: float = 2.0

    def apply(self, network: Network) -> Network:
        words = parse_words(self.words)
        if words == "exact":
            return network.with_layers(
                tuple(replace(la, wrap_bits=0) if isinstance(la, LinearLayer) else la for la in network.layers)
            )
        fmt = network.input_format
        if fmt is None:
            raise ValueError("choose word widths after quantisation")
        if not (math.isfinite(self.headroom) and self.headroom >= 1):
            raise TwnError(f"--headroom must be a number >= 1, not {self.headroom}")
        q = None
        if words == "calibrated":
            if self.batch is None or len(self.batch) == 0:
                raise ValueError("calibrated words need a batch of inputs")
            q = network.fold_input(network.quantize_input(self.batch))
        layers: list[Layer] = []
        for layer in network.layers:
            if isinstance(layer, LinearLayer):
                exact = exact_word_bits(layer, fmt)
                if isinstance(words, int):
                    bits = words
                else:
                    assert q is not None
                    acc = layer.accumulate(q)
                    a_lo = int(acc.min(initial=0)) if acc.size else 0
                    a_hi = int(acc.max(initial=0)) if acc.size else 0
                    bits = signed_bits_for_range(
                        math.floor(min(a_lo, 0) * self.headroom), math.ceil(max(a_hi, 0) * self.headroom)
                    )
                    bits = max(bits, MIN_WORD_BITS)
                layer = replace(layer, wrap_bits=bits if bits < exact else 0)
                assert layer.requant is not None
                fmt = layer.requant.out
            layers.append(layer)
            if q is not None:
                q = layer.integer_forward(q)
        return network.with_layers(tuple(layers))
