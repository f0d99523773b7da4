"""Compression reports: models side by side (size, compute, accuracy, CPU latency) and the KD ablation.

Each report is JSON for scripts, Markdown for people and a PNG for a glance. Latency is
measured here, on this machine's CPU, batch 1, after warm-up: torch eager and ONNX
Runtime on the RKNN-layout ONNX (what the board's converter starts from). Comparisons
are meaningful within one report, which measures all models in one run.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from deploy.runtime.atomic import staged, write_json_atomic, write_text_atomic
from studio.core.jobs import Job

LATENCY_RUNS = 30


def median_ms(fn, runs: int) -> float:
    """Median wall time of fn() in ms over `runs` calls, after two warm-up calls."""
    fn()
    fn()  # warm-up: allocation, thread pools, ORT graph optimisation
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return round(float(np.median(times)), 3)


def latency(model, imgsz: int, runs: int = LATENCY_RUNS) -> dict[str, float]:
    """Median ms per image on the CPU: torch (fused, eval) and ONNX Runtime (rknn-split ONNX)."""
    import onnxruntime as ort
    import torch

    from deploy.convert.onnx_export import export_onnx, prepare_for_export

    fused = prepare_for_export(model)
    x = torch.rand(1, 3, imgsz, imgsz)
    with torch.inference_mode():
        torch_ms = median_ms(lambda: fused(x), runs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(model, path, imgsz, "rknn-split", "logits")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x.numpy()}
        ort_ms = median_ms(lambda: session.run(None, feed), runs)
    return {"torch_ms": torch_ms, "ort_ms": ort_ms}


def model_card(path: Path, data: Path | None, imgsz: int, val_limit: int | None = None,
               runs: int = LATENCY_RUNS) -> dict:
    """Parameters, GFLOPs, val mAP (overall and small objects) and CPU latency of one checkpoint."""
    import torch

    from studio.core.compress.channel_pruner import ConvFlops
    from studio.core.compress.yolo import raw_head_outputs
    from studio.core.models import load_detector

    model, _ = load_detector(str(path))
    gflops, params = ConvFlops(model.eval(), torch.zeros(1, 3, imgsz, imgsz), raw_head_outputs)()
    card = {"model": str(path), "params": params, "gflops": round(gflops, 4), **latency(model, imgsz, runs)}
    if data is not None:
        from studio.core.evaluate import EvalRequest, evaluate

        result = evaluate(EvalRequest(model=Path(path), data=Path(data), imgsz=imgsz, limit=val_limit))
        card.update(map50_95=result.map50_95, map50=result.map50, small=result.per_size.get("small"))
    return card


def compare(paths: list[Path], data: Path | None, imgsz: int, out: Path, val_limit: int | None = None,
            job: Job | None = None) -> dict:
    """Model cards of every path (the first is the baseline) with ratios; writes compare.json/.md/.png."""
    job = job or Job()
    job.stage("measure", len(paths))
    cards = []
    for i, path in enumerate(paths):
        cards.append(model_card(path, data, imgsz, val_limit))
        job.step("measure", i + 1, len(paths))
    base = cards[0]
    for card in cards:
        card["vs_first"] = {k: round(card[k] / base[k], 4) for k in ("params", "gflops", "torch_ms", "ort_ms")
                            if base.get(k)}
        if "map50_95" in card:
            card["vs_first"]["map50_95_points"] = round(100 * (card["map50_95"] - base["map50_95"]), 2)
    summary = {"imgsz": imgsz, "data": str(data) if data else None, "models": cards}
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "compare.json", summary)
    write_text_atomic(out / "compare.md", _compare_markdown(summary))
    _compare_plot(summary, out / "compare.png")
    return summary


def save_figure(fig, path: Path) -> None:
    """Write a matplotlib figure as PNG atomically, and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        with staged(path, ".png") as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)


def fmt(value, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else f"{value:,}"


def _compare_markdown(summary: dict) -> str:
    lines = [f"# Compression report (images {summary['imgsz']} px, CPU latency, batch 1)", "",
             "| model | params | GFLOPs | mAP50-95 | mAP50 | small | torch ms | ORT ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in summary["models"]:
        lines.append(f"| {Path(c['model']).parent.name}/{Path(c['model']).name} | {fmt(c['params'])} | "
                     f"{fmt(c['gflops'], 3)} | {fmt(c.get('map50_95'))} | {fmt(c.get('map50'))} | "
                     f"{fmt(c.get('small'))} | {fmt(c['torch_ms'], 2)} | {fmt(c['ort_ms'], 2)} |")
    return "\n".join(lines) + "\n"


def _compare_plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cards = summary["models"]
    labels = [Path(c["model"]).parent.name or Path(c["model"]).stem for c in cards]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, key, title in zip(axes, ("gflops", "ort_ms", "map50_95"), ("GFLOPs", "ONNX Runtime ms/image", "mAP50-95")):
        values = [c.get(key) or 0.0 for c in cards]
        ax.bar(labels, values, color=["#7f7f7f"] + ["#1f77b4"] * (len(cards) - 1))
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=20)
    save_figure(fig, path)


def write_ablation(summary: dict, out: Path) -> None:
    """ablation.json, ablation.md (the table) and ablation.png (mAP overall and small per variant)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "ablation.json", summary)
    b = summary["budget"]
    lines = [f"# Distillation ablation: {b['epochs']} epochs, {b['images']} training images, {b['imgsz']} px, "
             f"batch {b['batch']}", "", f"Student `{summary['student']}`, teacher `{summary['teacher']}`.", "",
             "| variant | mAP50-95 | mAP50 | small | Δ mAP50-95 (points) | minutes |", "|---|---:|---:|---:|---:|---:|"]
    base = summary["rows"][0]["map50_95"]
    for r in summary["rows"]:
        lines.append(f"| {r['variant']} | {fmt(r['map50_95'])} | {fmt(r['map50'])} | {fmt(r['small'])} | "
                     f"{100 * (r['map50_95'] - base):+.2f} | {r['seconds'] / 60:.1f} |")
    write_text_atomic(out / "ablation.md", "\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    names = [r["variant"] for r in summary["rows"]]
    xs = np.arange(len(names))
    ax.bar(xs - 0.2, [r["map50_95"] for r in summary["rows"]], 0.4, label="mAP50-95")
    ax.bar(xs + 0.2, [r["small"] or 0.0 for r in summary["rows"]], 0.4, label="small objects")
    ax.set_xticks(xs, names)
    low = min(min(r["map50_95"], r["small"] or 1.0) for r in summary["rows"])
    ax.set_ylim(max(0.0, low - 0.05), None)
    ax.legend()
    ax.set_title("Distillation ablation (same budget)")
    save_figure(fig, out / "ablation.png")
