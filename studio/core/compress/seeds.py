"""One recipe run with several seeds, and the report that shows them side by side.

A single run's figures move from seed to seed by more than many recipe changes gain, so a
full-budget result is run twice or more: `studio compress --recipe R --seeds 0,1 --out OUT`
runs the recipe once per seed into OUT/seed-N (each resumable on its own, so seeds may also run
at the same time as separate `--seed N --out OUT/seed-N` processes) and writes
OUT/compress_report.{json,md}: every variant's mAP per seed, their mean and their spread.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from deploy.runtime.atomic import write_json_atomic, write_text_atomic
from deploy.runtime.output import claim_run
from studio.core.compress.int8_report import scored_split
from studio.core.compress.recipe import Recipe
from studio.core.compress.report import fmt
from studio.core.jobs import Job


def seed_folder(out: Path, seed: int) -> Path:
    return Path(out) / f"seed-{seed}"


def run_seeds(recipe: Recipe, out: Path, seeds: list[int], resume: bool = False, job: Job | None = None,
              force: bool = False) -> dict:
    """Run the recipe once per seed (with resume, a seed whose folder exists continues) and report them all."""
    from studio.core.compress.chain import run_recipe

    job = job or Job()
    claim_run(Path(out), resume, force, "compress run")  # force clears every seed's folder at once
    reports = {}
    for seed in seeds:
        folder = seed_folder(out, seed)
        job.stage(f"seed {seed}", None, f"({len(reports) + 1} of {len(seeds)}) into {folder}")
        reports[str(seed)] = run_recipe(recipe.seeded(seed), folder, resume and folder.is_dir(),
                                        job.within(f"seed {seed}"))
    summary = seeds_summary(reports)
    write_json_atomic(Path(out) / "compress_report.json", summary)
    write_text_atomic(Path(out) / "compress_report.md", seeds_markdown(summary))
    return summary


def seeds_summary(reports: dict[str, dict]) -> dict:
    """Per variant: each seed's mAP50-95 and small-object AP, their mean and spread (max - min); keyed by the
    seed as text, as the JSON has it."""
    first = next(iter(reports.values()))
    rows = []
    for index, row in enumerate(first["rows"]):
        per_seed = {seed: report["rows"][index] for seed, report in reports.items()}
        maps = [r["map50_95"] for r in per_seed.values()]
        smalls = [r["small"] for r in per_seed.values() if r.get("small") is not None]
        rows.append({"variant": row["variant"], "map50_95": {s: r["map50_95"] for s, r in per_seed.items()},
                     "mean": round(statistics.fmean(maps), 4), "spread": round(max(maps) - min(maps), 4),
                     "small_mean": round(statistics.fmean(smalls), 4) if smalls else None,
                     "bytes": row["bytes"], "gflops": row.get("gflops"),
                     "mcycles": (row.get("npu_build") or {}).get("mcycles")})
    return {"recipe": first["recipe"], "seeds": list(reports), "imgsz": first["imgsz"],
            "split": scored_split(first), "images": first["val_images"],
            "platform": first["platform"], "rows": rows,
            "convergence": {seed: report.get("convergence") for seed, report in reports.items()},
            "training_seconds": {seed: report.get("training_seconds") for seed, report in reports.items()}}


def seeds_markdown(summary: dict) -> str:
    seeds = summary["seeds"]  # as text: the keys of the per-seed figures
    lines = [f"# {summary['recipe']} with seeds {', '.join(seeds)}", "",
             f"{summary['platform']} int8, {summary['imgsz']} px, {summary['images']} {summary['split']} images; "
             "each seed's own report is in its `seed-N/` folder. Spread: the largest minus the smallest mAP50-95 "
             "over the seeds.", "",
             "| variant | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | spread (points) | small (mean) "
             "| MB | GFLOPs | Mcycles |",
             "|---|" + "---:|" * (len(seeds) + 6)]
    for row in summary["rows"]:
        lines.append(f"| {row['variant']} | " + " | ".join(fmt(row["map50_95"][s]) for s in seeds)
                     + f" | {fmt(row['mean'])} | {100 * row['spread']:.2f} | {fmt(row['small_mean'])} "
                       f"| {row['bytes'] / 1e6:.2f} | {fmt(row.get('gflops'), 3)} | {fmt(row['mcycles'], 3)} |")
    for seed in seeds:
        trained = summary["training_seconds"].get(seed) or {}
        if trained:
            lines += ["", f"Seed {seed} training: " + ", ".join(f"{k} {v / 3600:.2f} h" for k, v in trained.items())
                      + "."]
    return "\n".join(lines) + "\n"
