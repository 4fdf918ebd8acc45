"""Small helpers for rewriting an ONNX graph in place: fresh names, node lists, dead nodes,
constants and inferred shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def fresh_namer(graph: Any) -> Callable[[str], str]:
    """A maker of names not yet used in ``graph`` (node, value or initializer)."""
    taken = {t.name for t in graph.initializer} | {
        name for node in graph.node for name in (*node.input, *node.output, node.name)
    }

    def fresh(base: str) -> str:
        name, k = base, 0
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        return name

    return fresh


def replace_nodes(graph: Any, nodes: list[Any]) -> None:
    """Make ``nodes`` the graph's nodes and drop the initializers no node reads any more."""
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def live_nodes(graph: Any) -> list[Any]:
    """The graph's nodes that the outputs depend on, in order (a rewrite left the rest dead)."""
    needed = {out.name for out in graph.output}
    live = []
    for node in reversed(graph.node):
        if any(out in needed for out in node.output):
            live.append(node)
            needed.update(reads(node))
    return live[::-1]


def reads(node: Any) -> set[str]:
    """The names a node reads: its inputs and those its subgraphs (If, Loop) read."""
    from onnx import AttributeProto

    names = set(node.input)
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs)
        for sub in graphs:
            for inner in sub.node:
                names |= reads(inner)
    return names


def constant_values(graph: Any) -> dict[str, Any]:
    """numpy values of the graph's initializers and of its ``Constant`` nodes' tensors."""
    from onnx import numpy_helper

    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        constant = node.op_type == "Constant" and node.domain in ("", "ai.onnx")
        if constant and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return constants


def inferred_shapes(model: Any) -> dict[str, list[int | None]]:
    """Shape of every value ONNX shape inference gives one (None for a symbolic dim)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    return {
        v.name: [
            d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim
        ]
        for v in (*inferred.input, *inferred.value_info, *inferred.output)
        if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape")
    }
