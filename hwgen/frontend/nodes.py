"""Small helpers shared by the frontend modules: a node's attributes and its name in messages."""

from __future__ import annotations

from typing import Any

import onnx

__all__ = ["node_attrs", "node_label"]


def node_attrs(node: onnx.NodeProto) -> dict[str, Any]:
    """Attribute values by name; byte strings decoded to str."""
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def node_label(node: onnx.NodeProto, index: int) -> str:
    """How error messages name a node: ``node 'name' (Op)``, or its index when unnamed."""
    return f"node {node.name or '#' + str(index)!r} ({node.op_type})"
