"""The report of `studio compress`: float vs post-training int8 vs QAT int8, as JSON, Markdown and a plot.

The plot puts accuracy against the toolkit's cycle estimate and against file size, the
two axes a deployment trades accuracy for; every latency figure says where it came
from (host ONNX Runtime on this machine, or rknn-toolkit2's static estimate).
"""
from __future__ import annotations

from pathlib import Path

from deploy.runtime.atomic import write_json_atomic, write_text_atomic
from studio.core.compress.report import fmt, save_figure


def variant_cells(row: dict, float_map: float) -> dict[str, str]:
    """One variant's figures as every report prints them (this one, the demo's, the wizard's table)."""
    build = row.get("npu_build") or {}
    return {"variant": row["variant"], "map50_95": fmt(row["map50_95"]),
            "delta": f"{100 * (row['map50_95'] - float_map):+.2f}", "map50": fmt(row["map50"]),
            "small": fmt(row.get("small")), "mb": f"{row['bytes'] / 1e6:.2f}", "gflops": fmt(row.get("gflops"), 3),
            "int8_convs": f"{build['int8_convs']}/{build['convs']}" if build else "–",
            "mcycles": fmt(build.get("mcycles"), 3), "host_ort_ms": fmt(row.get("host_ort_ms"), 2),
            "min_cosine": fmt(row.get("min_cosine"))}


def _markdown(report: dict) -> str:
    float_map = report["rows"][0]["map50_95"]
    lines = [f"# Compression to {report['platform']} int8: {report['imgsz']} px, {report['val_images']} "
             f"{scored_split(report)} images",
             "", f"Recipe `{report['recipe']}`: {' -> '.join(report['stages'])}. "
                 f"Float model `{report['float_model']}`.",
             "RKNN rows are measured in rknn-toolkit2's simulator; `Mcycles` is the toolkit's static estimate for one "
             "NPU core (not a board measurement); `host ORT ms` is ONNX Runtime on this machine's CPU." +
             (f" mAP: {report['rows'][0]['metric']}." if report["rows"][0].get("metric") else ""), "",
             f"Δ: points against the first row ({report['rows'][0]['variant']}).", "",
             "| variant | mAP50-95 | Δ points | mAP50 | small | MB | GFLOPs | int8 convs | Mcycles | host ORT ms | "
             "min cosine |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        cells = variant_cells(r, float_map)
        lines.append("| " + " | ".join(cells.values()) + " |")
    if report.get("qat"):
        q = report["qat"]
        lines += ["", f"QAT ({'→'.join(map(str, q['bits']))} bits), fake-quantized in torch: float "
                      f"{q['float_map50_95']:.4f}, calibrated before training {q['calibrated_map50_95']:.4f}, "
                      f"after QAT {q['map50_95']:.4f}."]
        if len(q.get("widths") or []) > 1:  # a bit-width schedule: where each width started and ended
            lines += ["", "By width (calibrated at the width -> trained): " + ", ".join(
                f"int{w['bits']} {fmt(w['calibrated'])} -> {w['trained']:.4f}" for w in q["widths"]) + "."]
    if report.get("seeds"):
        lines += ["", "Seeds: " + ", ".join(f"{k} {v}" for k, v in report["seeds"].items()) + "."]
    if report.get("training_seconds"):
        lines += ["", "Training time: " + ", ".join(f"{k} {v / 60:.1f} min"
                                                   for k, v in report["training_seconds"].items()) + "."]
    if report.get("convergence"):
        lines += ["", "Val mAP50-95 gained over each stage's last 10 epochs (full budget: under 0.3 points): " +
                  ", ".join(f"{k} {_gain(c)}" for k, c in report["convergence"].items()) + "."]
    return "\n".join(lines) + "\n"


def scored_split(report: dict) -> str:
    """The split every row was scored on (reports from before verify had a choice: val)."""
    return report["rows"][0].get("split", "val")


def _gain(c: dict) -> str:
    gain = c["gain_last_10"]
    if gain is None:
        return f"- ({c['epochs']} epochs: too short to tell)"
    return f"{100 * gain:+.2f} points ({'flat' if c['flat'] else 'still rising'})"


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    rknn = [r for r in report["rows"] if r.get("npu_build")]
    panels = ((axes[0], rknn, lambda r: r["npu_build"]["mcycles"], "toolkit estimate, Mcycles (one NPU core)"),
              (axes[1], report["rows"], lambda r: r["bytes"] / 1e6, "file size, MB"))
    for ax, rows, x_of, label in panels:
        for r in rows:
            color = "#7f7f7f" if r["format"] == "onnx" else "#d62728" if r["variant"] == "qat" else "#1f77b4"
            ax.scatter(x_of(r), r["map50_95"], s=60, color=color)
            ax.annotate(r["variant"], (x_of(r), r["map50_95"]), textcoords="offset points", xytext=(6, 4))
        ax.set_xlabel(label)
        ax.set_ylabel(f"{scored_split(report)} mAP50-95")
        ax.grid(alpha=0.3)
    axes[0].set_title("accuracy vs compute (int8 variants)")
    axes[1].set_title("accuracy vs size")
    save_figure(fig, path)


def write_int8_report(report: dict, out: Path) -> None:
    """compress_report.json, .md and .png in `out`."""
    write_json_atomic(out / "compress_report.json", report)
    write_text_atomic(out / "compress_report.md", _markdown(report))
    _plot(report, out / "compress_report.png")
