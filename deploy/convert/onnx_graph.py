"""Read an ONNX detector without running it: its layout, classes, size, and QDQ quantization.

The converter uses this to refuse what cannot be a detector before spending minutes on
a build, and `studio models inspect` uses it to describe an ONNX file.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from deploy.errors import UserError

NAMES_KEY = "names"  # metadata_props key holding the class names as JSON


def load_onnx(path: Path) -> onnx.ModelProto:
    """Load an ONNX file, or a UserError saying why it is not one."""
    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise UserError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None


def tensor_shapes(values) -> dict[str, list]:
    """{name: [dims]} of graph inputs or outputs; unknown dims as their symbolic name or None."""
    return {
        v.name: [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                 for d in v.type.tensor_type.shape.dim]
        for v in values
    }


def detector_layout(outputs: dict[str, list]) -> tuple[str, int, int]:
    """(layout, number of classes, number of scales) from output shapes, or a UserError if no detector."""
    shapes = list(outputs.values())
    if len(shapes) == 1 and len(shapes[0]) == 3 and isinstance(shapes[0][1], int) and shapes[0][1] > 4:
        return "standard", shapes[0][1] - 4, 0
    per_scale = 3 if output_task(outputs) == "obb" else 2
    groups = [shapes[i : i + per_scale] for i in range(0, len(shapes), per_scale)]
    ok = len(shapes) >= 2 and len(shapes) % per_scale == 0
    for group in groups if ok else []:
        box, cls = group[:2]
        ok = ok and len(box) == 4 and len(cls) == 4 and box[1] == 64 and box[2:] == cls[2:]
    if not ok:
        raise UserError(
            f"this ONNX is not a YOLO detector the studio knows: outputs {shapes}; expected per scale "
            f"(1, 64, h, w) + (1, nc, h, w) [+ (1, 1, h, w) angle] (rknn-split) or one (1, 4+nc, anchors) (standard)"
        )
    return "rknn-split", groups[0][1][1], len(groups)


def output_task(outputs: dict[str, list]) -> str:
    """obb when the split outputs come in threes (box, class, a one-channel angle), detect otherwise."""
    shapes = list(outputs.values())
    angles = shapes[2::3]
    triples = len(shapes) >= 3 and len(shapes) % 3 == 0 and all(len(a) == 4 and a[1] == 1 for a in angles)
    return "obb" if triples and all(len(b) == 4 and b[1] == 64 for b in shapes[0::3]) else "detect"


def class_names(model: onnx.ModelProto, nc: int) -> list[str]:
    """Class names from metadata_props (ours: JSON list; ultralytics: a dict literal), else class0.."""
    props = {p.key: p.value for p in model.metadata_props}
    raw = props.get(NAMES_KEY)
    if raw:
        try:
            names = json.loads(raw)
        except json.JSONDecodeError:
            import ast

            try:
                names = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                names = None
        if isinstance(names, dict):
            names = [names.get(i, f"class{i}") for i in range(nc)]
        if isinstance(names, list) and len(names) == nc:
            return [str(n) for n in names]
    return [f"class{i}" for i in range(nc)]


def set_metadata(path: Path, props: dict[str, str]) -> None:
    """Add metadata_props to an ONNX file in place (called on a temp file before it is renamed)."""
    model = onnx.load(str(path))
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def conv_gflops(model: onnx.ModelProto) -> float:
    """GFLOPs (2 per multiply-add) of the Conv nodes, with output shapes measured by one ONNX Runtime run.

    ONNX shape inference loses track after the Split in YOLO's C2f blocks, so the shapes
    come from running the graph once on zeros with every conv output exposed.
    """
    import onnxruntime as ort

    inits = {i.name: i.dims for i in model.graph.initializer}
    for node in model.graph.node:  # shared weights pass through Identity nodes, a QDQ model's through Q/DQ pairs
        if node.op_type in ("Identity", "QuantizeLinear", "DequantizeLinear") and node.input[0] in inits:
            inits[node.output[0]] = inits[node.input[0]]
    convs = [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in inits]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=n.output[0]) for n in convs if n.output[0] not in known)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        feeds[inp.name] = np.zeros(shape, np.uint8 if "uint8" in inp.type else np.float32)
    names = [o.name for o in session.get_outputs()]
    shapes = dict(zip(names, (o.shape for o in session.run(None, feeds))))
    total = sum(2 * int(np.prod(shapes[n.output[0]])) * int(np.prod(inits[n.input[1]][1:])) for n in convs)
    return total / 1e9


def class_scores_kind(model: onnx.ModelProto) -> str:
    """'sigmoid' when the split layout's class outputs come from a Sigmoid (through any Q/DQ), else 'logits'."""
    producer = {out: node for node in model.graph.node for out in node.output}
    for out in list(model.graph.output)[1::2]:
        node = producer.get(out.name)
        while node is not None and node.op_type in ("QuantizeLinear", "DequantizeLinear", "Identity"):
            node = producer.get(node.input[0])
        if node is None or node.op_type != "Sigmoid":
            return "logits"
    return "sigmoid"


def has_qdq(model: onnx.ModelProto) -> bool:
    """True when the graph holds QuantizeLinear/DequantizeLinear pairs (a QAT or PTQ-in-ONNX model)."""
    ops = {n.op_type for n in model.graph.node}
    return {"QuantizeLinear", "DequantizeLinear"} <= ops


def describe_onnx(path: Path) -> dict:
    """The fields of studio.core.models.ModelInfo for an ONNX file."""
    model = load_onnx(path)
    inputs = tensor_shapes(model.graph.input)
    inits = {i.name for i in model.graph.initializer}
    inputs = {k: v for k, v in inputs.items() if k not in inits}
    outputs = tensor_shapes(model.graph.output)
    layout, nc, _ = detector_layout(outputs)
    params = sum(int(np.prod(i.dims)) for i in model.graph.initializer)
    return {
        "path": str(path),
        "kind": "onnx",
        "task": output_task(outputs),
        "names": class_names(model, nc),
        "parameters": params,
        "gflops": round(conv_gflops(model), 3),
        "imgsz": next(iter(inputs.values()))[-1],
        "inputs": inputs,
        "outputs": outputs,
        "layout": layout,
    }


def qdq_output_quant(model: onnx.ModelProto) -> list[dict]:
    """Per graph output, the int8 scale and zero point of the last QuantizeLinear feeding it.

    Walks back from each output through shape-only ops and DequantizeLinear to the
    QuantizeLinear that fixes the tensor's int8 grid; outputs with none stay float32.
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    passthrough = {"DequantizeLinear", "Reshape", "Transpose", "Identity", "Flatten"}
    result = []
    for out in model.graph.output:
        node, entry = producer.get(out.name), {"name": out.name, "dtype": "float32", "scale": 1.0, "zero_point": 0}
        while node is not None and node.op_type in passthrough:
            if node.op_type == "DequantizeLinear":
                scale, zp = consts.get(node.input[1]), consts.get(node.input[2]) if len(node.input) > 2 else None
                if scale is not None and scale.size == 1:
                    zero = int(zp.reshape(-1)[0]) if zp is not None else 0
                    dtype = str(zp.dtype) if zp is not None else "uint8"
                    entry.update(dtype=dtype, scale=float(scale.reshape(-1)[0]), zero_point=zero)
                    break
            node = producer.get(node.input[0])
        result.append(entry)
    return result
