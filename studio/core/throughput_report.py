"""Latency against throughput for each worker count: the table and the chart of `board bench` and the GUI.

More workers raise frames/s until the NPU cores (or the CPU) are full; past that they only
add waiting, so latency climbs while throughput stays. Published speeds time inference
alone; this shows where a frame's time goes from the moment it is read to its result.
"""
from __future__ import annotations

import json
from pathlib import Path

from studio.core.compress.report import fmt, save_figure

HEADERS = ["workers", "frames/s", "speedup", "latency p50 ms", "p95", "p99", "queue p50 ms", "infer ms per worker"]


def rows(runs: list[dict]) -> list[tuple]:
    """One row per worker count, in HEADERS' order."""
    table = []
    for r in runs:
        lat, queue = r.get("latency_ms") or {}, r.get("queue_ms") or {}
        per_worker = ", ".join(f"{w}: {ms:.1f}" for w, ms in (r.get("infer_ms_by_worker") or {}).items())
        table.append((r["workers"], fmt(r.get("fps"), 1), fmt(r.get("speedup"), 2), fmt(lat.get("p50"), 1),
                      fmt(lat.get("p95"), 1), fmt(lat.get("p99"), 1), fmt(queue.get("p50"), 1), per_worker or "–"))
    return table


def draw(ax, benches: dict[str, list[dict]]) -> None:
    """On a matplotlib Axes: per board, frames/s against latency p50 (bars from p50 to p99), a point per
    worker count."""
    for board, runs in benches.items():
        points = [r for r in runs if r.get("fps") and (r.get("latency_ms") or {}).get("p50") is not None]
        fps = [r["fps"] for r in points]
        p50 = [r["latency_ms"]["p50"] for r in points]
        spread = [r["latency_ms"]["p99"] - r["latency_ms"]["p50"] for r in points]
        ax.errorbar(fps, p50, yerr=[[0] * len(points), spread], marker="o", capsize=3, label=board)
        for r, x, y in zip(points, fps, p50):
            ax.annotate(f"{r['workers']}w", (x, y), textcoords="offset points", xytext=(6, -10), fontsize=8)
    ax.set_xlabel("throughput, frames/s")
    ax.set_ylabel("latency read to result, ms (p50; bar to p99)")
    ax.grid(alpha=0.3)
    if len(benches) > 1:
        ax.legend(fontsize=8)


def _markdown(benches: dict[str, dict]) -> str:
    lines = []
    for board, result in benches.items():
        lines += [f"## {result['model']} on {board} ({result['measured']}, {result['frames']} frames each)", "",
                  "| " + " | ".join(HEADERS) + " |", "|" + "---:|" * len(HEADERS)]
        lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows(result["runs"])]
        lines.append("")
    return "# Latency and throughput\n\n" + "\n".join(lines) + "\n![latency against throughput](latency.png)\n"


def write_report(benches: dict[str, dict], out: Path) -> None:
    """bench.json, bench.md and latency.png in the folder `out` (an Output transaction's staging)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out / "bench.json").write_text(json.dumps(benches, indent=1) + "\n")
    (out / "bench.md").write_text(_markdown(benches))
    fig, ax = plt.subplots(figsize=(6, 4))
    draw(ax, {board: result["runs"] for board, result in benches.items()})
    save_figure(fig, out / "latency.png")
