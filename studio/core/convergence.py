"""Has a training stage stopped improving? The val mAP50-95 gained over its last epochs, the full-budget rule.

A stage counts as trained to full budget when its best val mAP50-95 rose by less than
FLAT_GAIN (0.3 points) over its last WINDOW (10) epochs; a shorter stage cannot tell, and says so.
"""
from __future__ import annotations

import csv
from pathlib import Path

WINDOW = 10
FLAT_GAIN = 0.003


def late_gain(maps: list[float], window: int = WINDOW) -> float | None:
    """How much the best mAP rose over the last `window` epochs (None with `window` epochs or fewer)."""
    if len(maps) <= window:
        return None
    return round(max(maps) - max(maps[:-window]), 4)


def convergence(maps: list[float], window: int = WINDOW) -> dict:
    """{"epochs", "gain_last_10", "flat"}: flat is None when the stage is too short to tell."""
    gain = late_gain(maps, window)
    return {"epochs": len(maps), f"gain_last_{window}": gain, "flat": None if gain is None else gain < FLAT_GAIN}


def results_rows(run_dir: Path) -> list[dict]:
    """An ultralytics run's results.csv as rows with stripped column names (empty when there is none)."""
    path = Path(run_dir) / "results.csv"
    if not path.is_file():
        return []
    with path.open() as f:
        return [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(f)]


def results_csv_maps(run_dir: Path) -> list[float]:
    """Each epoch's val mAP50-95 from an ultralytics run's results.csv (empty when there is none)."""
    return [float(r["metrics/mAP50-95(B)"]) for r in results_rows(run_dir) if r.get("metrics/mAP50-95(B)")]
