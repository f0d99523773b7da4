"""How faithful is a conversion? Run the same images through ONNX Runtime (fp32) and the RKNN
simulator, and compare every output by cosine similarity.

A cosine near 1 means the converted model computes what the float model computes;
class-score outputs are the first to suffer from a bad int8 range, so the report is
per output, with its minimum over images as well as its mean.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from deploy.runtime.metadata import write_json_atomic


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two tensors, flattened; 1.0 for two zero tensors, 0.0 if only one is zero."""
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a, b) / (na * nb))


def compare_outputs(
    onnx_path: Path,
    inputs: list[Path],
    converted: list[list[np.ndarray]],
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Per output: min and mean cosine between ONNX Runtime and the converted model's outputs.

    `inputs` are the letterboxed (1, 3, H, W) uint8 RGB .npy files the converted model saw.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    input_name = session.get_inputs()[0].name
    scores: list[list[float]] = [[] for _ in names]
    for i, (npy, outputs) in enumerate(zip(inputs, converted)):
        nchw = np.load(npy).astype(np.float32) / np.float32(255.0)
        reference = session.run(None, {input_name: nchw})
        for k, (ref, out) in enumerate(zip(reference, outputs)):
            scores[k].append(cosine(ref, out.reshape(ref.shape)))
        if progress:
            progress(i + 1, len(inputs))
    outputs = [
        {"name": n, "min_cosine": round(min(s), 6), "mean_cosine": round(float(np.mean(s)), 6)}
        for n, s in zip(names, scores)
    ]
    return {
        "outputs": outputs,
        "min_cosine": min(o["min_cosine"] for o in outputs),
        "mean_cosine": round(float(np.mean([o["mean_cosine"] for o in outputs])), 6),
    }


def report_markdown(report: dict) -> str:
    """A human-readable summary of a verification report."""
    lines = [
        f"# Conversion report: {Path(report['rknn']).name}",
        "",
        f"Reference: {report['reference']}  ",
        f"Converted: {report['converted']}  ",
        f"Images: {len(report['images'])}, letterboxed to {report['imgsz']}x{report['imgsz']}",
        "",
        "| output | min cosine | mean cosine |",
        "|---|---|---|",
    ]
    lines += [f"| {o['name']} | {o['min_cosine']:.4f} | {o['mean_cosine']:.4f} |" for o in report["outputs"]]
    lines += ["", f"Minimum over all outputs: **{report['min_cosine']:.4f}**", ""]
    return "\n".join(lines)


def write_report(report: dict, json_path: Path, md_path: Path) -> None:
    """Write the report as JSON and Markdown, each atomically."""
    write_json_atomic(json_path, report)
    tmp = md_path.with_name(f".{md_path.name}.tmp")
    tmp.write_text(report_markdown(report))
    tmp.replace(md_path)
