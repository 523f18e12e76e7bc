"""Pruned balanced adder trees, one per output: the unmerged baseline.

Zero weights cost nothing, a -1 is a subtraction, and each output with k
nonzero weights costs k - 1 adders. Terms are paired level by level so a row
of k terms is ceil(log2(k)) adders deep. Weights other than +-1 are realised
as shifted operands (one term per set bit of the magnitude), which is what a
shift-and-add constant multiplier costs without sharing.
"""

from __future__ import annotations

import numpy as np

from hwgen.ir.adder_graph import AdderGraph, AddNode, Operand

__all__ = ["naive_adder_count", "naive_adder_graph"]


def _row_terms(row: np.ndarray) -> list[Operand]:
    terms: list[Operand] = []
    for j in np.flatnonzero(row):
        w = int(row[j])
        mag, neg = abs(w), w < 0
        bit = 0
        while mag:
            if mag & 1:
                terms.append(Operand(int(j), neg, bit))
            mag >>= 1
            bit += 1
    return terms


def naive_adder_count(weights: np.ndarray) -> int:
    """Adders of the unmerged trees: one per term beyond the first in each row."""
    return sum(max(len(_row_terms(row)) - 1, 0) for row in np.asarray(weights))


def naive_adder_graph(weights: np.ndarray) -> AdderGraph:
    """One balanced, pruned adder tree per row of the integer matrix ``weights``."""
    w = np.asarray(weights, dtype=np.int64)
    n_in = w.shape[1]
    nodes: list[AddNode] = []
    outputs: list[Operand | None] = []
    for row in w:
        level = _row_terms(row)
        if not level:
            outputs.append(None)
            continue
        while len(level) > 1:
            nxt: list[Operand] = []
            for a, b in zip(level[0::2], level[1::2], strict=False):
                # Keep at most one operand negated and push a shared sign up
                # the tree: -a - b is built as a + b and negated at the root,
                # where the requantisation multiplier absorbs it.
                if a.negate and b.negate:
                    node, negate = AddNode(Operand(a.value, False, a.shift), Operand(b.value, False, b.shift)), True
                elif a.negate:
                    node, negate = AddNode(b, a), False
                else:
                    node, negate = AddNode(a, b), False
                nodes.append(node)
                nxt.append(Operand(n_in + len(nodes) - 1, negate))
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        outputs.append(level[0])
    return AdderGraph(n_in, tuple(nodes), tuple(outputs))
