"""The sweep's report: each candidate's deployable int8 variant, a latency-aware score, the Pareto front.

Score (MnasNet's soft constraint): ACC * (LAT / T) ** w, with ACC the simulator's val mAP50-95,
LAT the toolkit's static cycle estimate for one NPU core (the same for every candidate, not a
board measurement), T the target (default: the candidates' median) and w = -0.07: a
candidate twice as costly as T pays about 5% of its accuracy. The Pareto front holds the
candidates no other one beats on both accuracy and cost.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from deploy.runtime.atomic import write_json_atomic, write_text_atomic
from studio.core.compress.report import fmt, save_figure

LATENCY = "toolkit estimate, Mcycles per image on one NPU core"


def deployable(report: dict) -> dict | None:
    """The candidate's best int8 variant on the simulator (QAT or a PTQ algorithm)."""
    rows = [r for r in report.get("rows", []) if r.get("quant") in ("int8", "qdq")
            and (r.get("npu_build") or {}).get("mcycles")]
    return max(rows, key=lambda r: r["map50_95"]) if rows else None


def pareto(points: list[tuple[str, float, float]]) -> list[str]:
    """Ids of the (id, cost, accuracy) points not beaten on both: cheapest first."""
    front, best = [], -1.0
    for ident, _, acc in sorted(points, key=lambda p: (p[1], -p[2])):
        if acc > best:
            front.append(ident)
            best = acc
    return front


def score(acc: float, latency: float, target: float, weight: float) -> float:
    return acc * (latency / target) ** weight


def rank(summary: dict, target: float | None, weight: float) -> dict:
    """Add each candidate's variant, cost, score and front membership; rank the successful ones."""
    ok = []
    for cand in summary["candidates"]:
        best = deployable(cand["report"]) if "report" in cand else None
        if "report" in cand and best is None:
            cand["error"] = "no int8 variant was built"
        if best is not None:
            cand.update(variant=best["variant"], map50_95=best["map50_95"], small=best.get("small"),
                        mcycles=best["npu_build"]["mcycles"], mb=round(best["bytes"] / 1e6, 3))
            ok.append(cand)
    target = target or (statistics.median(c["mcycles"] for c in ok) if ok else 1.0)
    for cand in ok:
        cand["score"] = round(score(cand["map50_95"], cand["mcycles"], target, weight), 5)
    front = set(pareto([(c["id"], c["mcycles"], c["map50_95"]) for c in ok]))
    for cand in ok:
        cand["pareto"] = cand["id"] in front
    summary.update(latency=LATENCY, target_mcycles=round(target, 4), weight=weight,
                   ranking=[c["id"] for c in sorted(ok, key=lambda c: -c["score"])],
                   failed=[c["id"] for c in summary["candidates"] if "error" in c])
    return summary


def _markdown(s: dict) -> str:
    by_id = {c["id"]: c for c in s["candidates"]}
    lines = [f"# Sweep of `{s['recipe']}` on Ray ({s['ray']})", "",
             f"Grid: {'; '.join(s['grid'])}. Score = mAP50-95 x (Mcycles / {s['target_mcycles']}) ^ {s['weight']}; "
             f"Mcycles is the {s['latency']}. ★ marks the Pareto front.", "",
             "| rank | candidate | variant | mAP50-95 | small | Mcycles | MB | score |",
             "|---:|---|---|---:|---:|---:|---:|---:|"]
    for i, ident in enumerate(s["ranking"], 1):
        c = by_id[ident]
        lines.append(f"| {i} | {ident}{' ★' if c['pareto'] else ''} | {c['variant']} | {fmt(c['map50_95'])} | "
                     f"{fmt(c['small'])} | {fmt(c['mcycles'], 3)} | {c['mb']} | {c['score']:.4f} |")
    if s["failed"]:
        lines += ["", "Failed (the others ran on):", ""] + [f"- {i}: {by_id[i]['error']}" for i in s["failed"]]
    return "\n".join(lines) + "\n"


def _plot(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [c for c in s["candidates"] if "score" in c]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([c["mcycles"] for c in ok], [c["map50_95"] for c in ok], s=50, color="#1f77b4", label="candidates")
    front = sorted((c for c in ok if c["pareto"]), key=lambda c: c["mcycles"])
    ax.plot([c["mcycles"] for c in front], [c["map50_95"] for c in front], "-o", color="#d62728",
            label="Pareto front")
    for c in ok:
        ax.annotate(c["id"].split("-", 1)[0], (c["mcycles"], c["map50_95"]), textcoords="offset points",
                    xytext=(5, 4), fontsize=8)
    ax.axvline(s["target_mcycles"], color="#7f7f7f", linestyle="--", linewidth=1, label="target T")
    ax.set_xlabel(s["latency"])
    ax.set_ylabel("val mAP50-95 (RKNN simulator)")
    ax.set_title(f"{len(ok)} candidates, {len(s['failed'])} failed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def write_sweep_report(summary: dict, out: Path, target: float | None, weight: float) -> dict:
    """sweep_report.json, .md and .png in `out`; returns the ranked summary."""
    out.mkdir(parents=True, exist_ok=True)
    ranked = rank(summary, target, weight)
    for cand in ranked["candidates"]:  # the full chain reports stay in each candidate's folder
        cand.pop("report", None)
    write_json_atomic(out / "sweep_report.json", ranked)
    write_text_atomic(out / "sweep_report.md", _markdown(ranked))
    _plot(ranked, out / "sweep_report.png")
    return ranked
