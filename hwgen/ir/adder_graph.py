"""Adder graphs: how a constant matrix-vector product is built from adders.

An :class:`AdderGraph` computes ``y = W @ x`` for a constant integer matrix
``W`` with add/subtract nodes. Values are numbered: ``0 .. n_inputs-1`` are
the inputs, ``n_inputs + k`` is ``nodes[k]``. A node adds two (or, in graphs
made for three-input adders, :mod:`hwgen.passes.three_input`, three)
:class:`Operand` s, each a value optionally shifted left and negated; an
output is an operand too (or ``None`` for an all-zero row). The merging and
tree passes build two-input graphs. Output negation and shift
are left to the consumer (the requantisation multiplier absorbs them for
free), so they cost no adder.

This is the contract between the graph-building passes (naive trees,
common-subexpression merging) and the backends: backends register every node
and align operands by :meth:`AdderGraph.depths`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

__all__ = ["AddNode", "AdderGraph", "Operand"]

#: Integers held at once while re-expanding a graph (:meth:`AdderGraph.coefficients`): 64 MB.
_COEFFICIENT_CELLS = 1 << 23


@dataclass(frozen=True, order=True)
class Operand:
    """``(-1)**negate * (value << shift)``."""

    value: int
    negate: bool = False
    shift: int = 0

    def to_json(self) -> list[int]:
        return [self.value, int(self.negate), self.shift]

    @staticmethod
    def from_json(d: list[int]) -> Operand:
        return Operand(int(d[0]), bool(d[1]), int(d[2]))


@dataclass(frozen=True)
class AddNode:
    """``a + b`` (``+ c`` for a three-input adder) of operands that may be negated."""

    a: Operand
    b: Operand
    c: Operand | None = None

    @property
    def operands(self) -> tuple[Operand, ...]:
        return (self.a, self.b) if self.c is None else (self.a, self.b, self.c)


@dataclass(frozen=True)
class AdderGraph:
    n_inputs: int
    nodes: tuple[AddNode, ...]
    outputs: tuple[Operand | None, ...]

    def __post_init__(self) -> None:
        for k, node in enumerate(self.nodes):
            for op in node.operands:
                if not 0 <= op.value < self.n_inputs + k:
                    raise ValueError(f"node {k} uses value {op.value} before it exists")
                if op.shift < 0:
                    raise ValueError(f"node {k} has a negative shift")
        for i, out in enumerate(self.outputs):
            if out is not None and not 0 <= out.value < self.n_inputs + len(self.nodes):
                raise ValueError(f"output {i} refers to missing value {out.value}")

    @property
    def adders(self) -> int:
        """Two-operand additions (a three-input node is two): what merging saves, at any adder form."""
        return sum(len(node.operands) - 1 for node in self.nodes)

    @property
    def three_input_adders(self) -> int:
        return sum(1 for node in self.nodes if node.c is not None)

    @property
    def n_values(self) -> int:
        return self.n_inputs + len(self.nodes)

    @cached_property
    def depths(self) -> tuple[int, ...]:
        """Adder depth of every value (inputs are at depth 0)."""
        d = [0] * self.n_inputs
        for node in self.nodes:
            d.append(1 + max(d[op.value] for op in node.operands))
        return tuple(d)

    @property
    def depth(self) -> int:
        """Depth of the deepest output (the layer's adder pipeline length)."""
        ds = [self.depths[o.value] for o in self.outputs if o is not None]
        return max(ds, default=0)

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """Exact evaluation on integer vectors x: [..., n_inputs] -> [..., n_outputs]."""
        x = np.asarray(x).astype(object)
        vals: list[Any] = [x[..., j] for j in range(self.n_inputs)]

        def get(op: Operand) -> Any:
            v = vals[op.value] * (1 << op.shift)
            return -v if op.negate else v

        for node in self.nodes:
            vals.append(sum((get(op) for op in node.operands[1:]), get(node.a)))
        zero = x[..., 0] * 0 if self.n_inputs else np.zeros(x.shape[:-1], dtype=object)
        outs = [get(o) if o is not None else zero for o in self.outputs]
        return np.stack(outs, axis=-1) if outs else np.zeros((*x.shape[:-1], 0), dtype=object)

    def coefficients(self) -> np.ndarray:
        """Re-expand the graph into the integer matrix it computes ([out, in]).

        Evaluated on the unit vectors of a block of inputs at a time, one
        vectorised step per adder depth, so memory stays near
        ``_COEFFICIENT_CELLS`` integers whatever the size of the graph (the
        whole matrix at once is quadratic in the inputs times the nodes).
        """
        n, m = self.n_inputs, len(self.outputs)
        out = np.zeros((m, n), dtype=np.int64)
        if n == 0 or m == 0:
            return out
        # Value n_values is a constant zero: absent operands and outputs point at it.
        zero = self.n_values
        width = max((len(node.operands) for node in self.nodes), default=2)
        index = np.full((width, len(self.nodes)), zero, dtype=np.int64)
        factor = np.zeros((width, len(self.nodes)), dtype=np.int64)
        for k, node in enumerate(self.nodes):
            for s, op in enumerate(node.operands):
                index[s, k] = op.value
                factor[s, k] = -(1 << op.shift) if op.negate else 1 << op.shift
        out_index = np.array([zero if o is None else o.value for o in self.outputs], dtype=np.int64)
        out_factor = np.array(
            [0 if o is None else (-(1 << o.shift) if o.negate else 1 << o.shift) for o in self.outputs],
            dtype=np.int64,
        )
        node_depth = np.array(self.depths[n:], dtype=np.int64)
        levels = [np.flatnonzero(node_depth == d) for d in range(1, int(node_depth.max(initial=0)) + 1)]
        block = max(1, min(n, _COEFFICIENT_CELLS // (zero + 1)))
        for lo in range(0, n, block):
            hi = min(n, lo + block)
            vals = np.zeros((zero + 1, hi - lo), dtype=np.int64)
            vals[np.arange(lo, hi), np.arange(hi - lo)] = 1
            for level in levels:
                acc = vals[index[0, level]] * factor[0, level][:, None]
                for s in range(1, width):
                    acc += vals[index[s, level]] * factor[s, level][:, None]
                vals[n + level] = acc
            out[:, lo:hi] = vals[out_index] * out_factor[:, None]
        return out

    def value_ranges(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """Interval of every value when each input lies in ``[lo, hi]``.

        Interval arithmetic: always a safe bound (it can only over-estimate
        when two operands share an input), linear in the graph size.
        """
        ranges: list[tuple[int, int]] = [(lo, hi)] * self.n_inputs

        def get(op: Operand) -> tuple[int, int]:
            a, b = ranges[op.value]
            a, b = a << op.shift, b << op.shift
            return (-b, -a) if op.negate else (a, b)

        for node in self.nodes:
            bounds = [get(op) for op in node.operands]
            ranges.append((sum(lo for lo, _ in bounds), sum(hi for _, hi in bounds)))
        return ranges

    def output_ranges(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """Interval of every output (with its sign and shift applied)."""
        ranges = self.value_ranges(lo, hi)
        result = []
        for o in self.outputs:
            if o is None:
                result.append((0, 0))
                continue
            a, b = ranges[o.value]
            a, b = a << o.shift, b << o.shift
            result.append((-b, -a) if o.negate else (a, b))
        return result

    def to_json(self) -> dict[str, Any]:
        return {
            "n_inputs": self.n_inputs,
            "nodes": [[op.to_json() for op in n.operands] for n in self.nodes],
            "outputs": [o.to_json() if o is not None else None for o in self.outputs],
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> AdderGraph:
        return AdderGraph(
            int(d["n_inputs"]),
            tuple(AddNode(*(Operand.from_json(op) for op in ops)) for ops in d["nodes"]),
            tuple(Operand.from_json(o) if o is not None else None for o in d["outputs"]),
        )
