"""The demo's report: this short-budget run beside the bundled full-budget one, as Markdown and HTML.

One list of blocks (headings, paragraphs, tables, pictures) is written twice, so the two
files never disagree. Pictures are referred to relative to the report, and the bundled
run's plot is copied next to it, so the folder can be zipped and read anywhere.
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path

from deploy.runtime.atomic import staged, write_text_atomic
from studio.core.compress.int8_report import variant_cells
from studio.core.compress.report import fmt, save_figure

LABEL = ("**Short-budget run.** Every stage ran, with budgets cut to minutes on this machine's CPU (the recipe "
         "is recipe.yaml beside this report): these figures show that the chain works end to end, not what it "
         "reaches. The bundled full-budget run, further down, shows that. At these budgets the model is still "
         "learning, so a stage that trains longer (QAT's epoch) can score above the float row, and two runs can "
         "differ by several points (multi-threaded CPU training is not bit-reproducible); the full-budget run "
         "shows what int8 really costs.")


def _variant_table(report: dict) -> tuple[list[str], list[list[str]]]:
    float_map = report["rows"][0]["map50_95"]
    header = ["variant", "mAP50-95", "Δ points", "mAP50", "MB", "int8 convs", "Mcycles (estimate)", "host ORT ms"]
    keys = ("variant", "map50_95", "delta", "map50", "mb", "int8_convs", "mcycles", "host_ort_ms")
    return header, [[variant_cells(r, float_map)[k] for k in keys] for r in report["rows"]]


def _pipeline_table(pipeline: dict) -> tuple[list[str], list[list[str]]]:
    header = ["workers", "frames/s", "speed-up", "preprocess ms", "infer ms", "postprocess ms", "in order"]
    rows = [[str(r["workers"]), f"{r['fps']:.1f}", f"×{r['speedup']:.2f}",
             *(fmt(r["stage_ms"].get(k), 2) for k in ("preprocess", "infer", "postprocess")),
             "yes" if r["in_order"] else "no"] for r in pipeline["runs"]]
    return header, rows


def _pipeline_plot(pipeline: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    workers = [str(r["workers"]) for r in pipeline["runs"]]
    ax.bar(workers, [r["fps"] for r in pipeline["runs"]], color="#1f77b4")
    for i, r in enumerate(pipeline["runs"]):
        ax.annotate(f"{r['fps']:.1f}", (i, r["fps"]), ha="center", textcoords="offset points", xytext=(0, 3))
    ax.set_xlabel("pipeline workers")
    ax.set_ylabel("frames/s")
    ax.set_title("runtime pipeline, ONNX Runtime on this CPU")
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)


def _blocks(out: Path, chain: dict, pipeline: dict, scene: dict | None, seconds: dict, recipe: Path,
            bundled: dict | None, obb_scene: dict | None = None) -> list[tuple]:
    def rel(path) -> str:
        return os.path.relpath(Path(path).resolve(), out.resolve())

    stages = ", ".join(f"{k} {v / 60:.1f} min" for k, v in chain.get("training_seconds", {}).items())
    blocks: list[tuple] = [
        ("h1", "Edge Deploy Studio demo: prune → distill → QAT → export → verify → pipeline"),
        ("p", LABEL),
        ("p", f"Data: {chain['val_images']} val images of the synthetic remote-sensing set at {chain['imgsz']} px. "
              f"Wall time of this invocation: {seconds['total'] / 60:.1f} min (training, when it ran: {stages}). "
              f"RKNN rows are scored in rknn-toolkit2's simulator for {chain['platform']}; Mcycles is the "
              f"toolkit's static estimate for one NPU core, not a board measurement."),
        ("h2", "This run (short budget)"), ("table", *_variant_table(chain)),
        ("img", rel(out / "chain" / "compress_report.png"), "accuracy against compute and size, this run"),
        ("h2", "Runtime pipeline on this machine (short budget model)"),
        ("p", f"The compressed float model (`{rel(pipeline['model'])}`) through the runtime pipeline "
              f"(preprocess → infer → batched NumPy post-processing) on {pipeline['frames']} frames, ONNX "
              f"Runtime on this CPU. On a board the same pipeline runs one worker per NPU core."),
        ("table", *_pipeline_table(pipeline)), ("img", "pipeline.png", "frames/s by worker count"),
    ]
    if scene:
        blocks += [("h2", "A large scene, tiled"),
                   ("p", f"The bundled 2048-px scene cut into {scene['tiles']} tiles of {chain['imgsz']} px with "
                         f"20% overlap and run on 2 workers in {scene['seconds']:.1f} s; detections merged across "
                         f"tiles: {scene['detections']} objects."),
                   ("img", rel(scene["picture"]), "detections merged over the whole scene")]
    if obb_scene:
        w, h = obb_scene["size"]
        blocks += [("h2", "Oriented boxes on a dense scene"),
                   ("p", f"The bundled oriented-box student (YOLOv8n-OBB, {obb_scene['epochs']} epochs on the dense "
                         f"benchmark) over a "
                         f"{w} x {h} px scene of rows of parked cars, moored ships and parked planes "
                         f"({obb_scene['labelled']} labelled objects), cut into {obb_scene['tiles']} tiles and run on "
                         f"2 workers in {obb_scene['seconds']:.1f} s: {obb_scene['detections']} turned boxes after "
                         f"the merge across tiles."),
                   ("img", rel(obb_scene["picture"]), "turned boxes over the dense scene")]
    if bundled:
        blocks += [("h2", "Bundled full-budget run, for comparison"),
                   ("p", f"`studio compress --recipe {bundled['recipe']}` run to completion ({bundled['imgsz']} px, "
                         f"{bundled['val_images']} val images, the same simulator): what the int8 step reaches "
                         f"with its full budget."),
                   ("table", *_variant_table(bundled))]
        if (out / "full-budget.png").is_file():
            blocks.append(("img", "full-budget.png", "the full-budget run"))
    blocks += [("h2", "Reproduce"),
               ("p", f"`studio compress --recipe {recipe} --out {out / 'chain'} --resume` continues an interrupted "
                     f"chain (on a finished one it reruns nothing and rewrites the report); `studio demo --fresh` "
                     f"starts the whole demo again.")]
    return blocks


def _inline_html(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _markdown(blocks: list[tuple]) -> str:
    lines: list[str] = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2"):
            lines += ["#" * int(kind[1]) + " " + rest[0], ""]
        elif kind == "p":
            lines += [rest[0], ""]
        elif kind == "table":
            header, rows = rest
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(row) + " |" for row in rows] + [""]
        else:
            lines += [f"![{rest[1]}]({rest[0]})", ""]
    return "\n".join(lines)


def _html(blocks: list[tuple]) -> str:
    body: list[str] = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(rest[0])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline_html(rest[0])}</p>")
        elif kind == "table":
            header, rows = rest
            cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
            trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
            body.append(f"<table><tr>{cells}</tr>{trs}</table>")
        else:
            body.append(f'<figure><img src="{html.escape(rest[0])}" alt="{html.escape(rest[1])}">'
                        f"<figcaption>{html.escape(rest[1])}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
             "p:nth-of-type(1){background:#fff4d6;padding:.6em;border-left:4px solid #e0a800}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Edge Deploy Studio demo</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def write_demo_report(out: Path, chain: dict, pipeline: dict, scene: dict | None, seconds: dict, recipe: Path,
                      bundled_json: Path, obb_scene: dict | None = None) -> tuple[Path, Path]:
    """report.md and report.html in `out` (with pipeline.png, and the bundled run's plot copied beside them)."""
    bundled = json.loads(bundled_json.read_text()) if bundled_json.is_file() else None
    if bundled and bundled_json.with_suffix(".png").is_file():
        with staged(out / "full-budget.png") as tmp:
            shutil.copyfile(bundled_json.with_suffix(".png"), tmp)
    _pipeline_plot(pipeline, out / "pipeline.png")
    blocks = _blocks(out, chain, pipeline, scene, seconds, recipe, bundled, obb_scene)
    md, page = out / "report.md", out / "report.html"
    write_text_atomic(md, _markdown(blocks))
    write_text_atomic(page, _html(blocks))
    return md, page
