"""Floating-point work of an ONNX graph, counted from its shapes: what one input costs.

Counts the multiply-accumulates of the layers that dominate an image tower (Conv, Gemm, MatMul)
after fixing the batch axis to 1 and inferring every shape; one MAC is two FLOPs. Elementwise
ops, pooling and normalisation are left out: they are a few percent of a CNN's work and bound
by memory, not arithmetic. Graphs whose shapes depend on their input's values (a text tower
with a dynamic token axis) are refused with ``FlopCountError``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


class FlopCountError(RuntimeError):
    """The graph's shapes could not be inferred; the message says which layer."""


def _dims(shape: Any) -> list[int] | None:
    dims = [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]
    return None if any(d is None for d in dims) else [int(d) for d in dims if d is not None]


def count_macs(model_path: Path) -> int:
    """Multiply-accumulates of one run of the graph with every symbolic input axis at 1."""
    import onnx  # only the benchmark needs it (installed with '.[train]')
    from onnx import shape_inference

    model = onnx.load(str(model_path), load_external_data=False)
    if model.functions:
        from onnx import inliner

        model = inliner.inline_local_functions(model)
    for graph_input in model.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        for dim in dims:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    del model.graph.value_info[:]
    model = shape_inference.infer_shapes(model, data_prop=True)
    shapes: dict[str, list[int] | None] = {}
    for info in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        shapes[info.name] = _dims(info.type.tensor_type.shape)
    for init in model.graph.initializer:
        shapes[init.name] = [int(d) for d in init.dims]

    def shape(name: str, node: Any) -> list[int]:
        found = shapes.get(name)
        if found is None:
            raise FlopCountError(f"{model_path}: no static shape for {name!r} ({node.op_type})")
        return found

    macs = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            out = shape(node.output[0], node)
            weight = shape(node.input[1], node)  # (out channels, in channels / group, kh, kw)
            macs += math.prod(out) * math.prod(weight[1:])
        elif node.op_type == "Gemm":
            a = shape(node.input[0], node)
            trans_a = any(att.name == "transA" and att.i for att in node.attribute)
            macs += math.prod(shape(node.output[0], node)) * (a[0] if trans_a else a[1])
        elif node.op_type == "MatMul":
            a = shape(node.input[0], node)
            macs += math.prod(shape(node.output[0], node)) * a[-1]
    return macs


def gflops(model_path: Path) -> float:
    """GFLOPs (2 per MAC) of one run with batch 1."""
    return 2 * count_macs(model_path) / 1e9
