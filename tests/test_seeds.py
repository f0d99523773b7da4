"""`studio compress --seeds`: one recipe run per seed into its own folder, and the report of all of them."""
from __future__ import annotations

import json

import pytest

from tests.test_compress_recipe import _recipe


def _report(recipe, seed_map: float) -> dict:
    rows = [{"variant": "float", "map50_95": seed_map, "small": 0.5, "bytes": 4_000_000, "gflops": 1.12,
             "split": "test"},
            {"variant": "qat", "map50_95": seed_map - 0.01, "small": None, "bytes": 1_000_000,
             "npu_build": {"mcycles": 12.5}}]
    return {"recipe": str(recipe.path), "imgsz": recipe.imgsz, "val_images": 70, "platform": "rk3588", "rows": rows,
            "convergence": {"distill": {"epochs": 12, "gain_last_10": 0.001, "flat": True}},
            "training_seconds": {"distill": 3600.0, "qat": 1800.0}}


def test_each_seed_runs_the_recipe_into_its_folder_and_the_report_shows_mean_and_spread(tiny_pair, tmp_path,
                                                                                       monkeypatch):
    from studio.core.compress import chain
    from studio.core.compress.recipe import load_recipe
    from studio.core.compress.seeds import run_seeds, seeds_markdown

    calls = []

    def fake_run(recipe, out, resume=False, job=None, force=False):
        calls.append((recipe.distill["seed"], recipe.qat["seed"], out.name, resume))
        out.mkdir(parents=True, exist_ok=True)
        return _report(recipe, {0: 0.70, 1: 0.74, 5: 0.72}[recipe.distill["seed"]])

    monkeypatch.setattr(chain, "run_recipe", fake_run)
    recipe = load_recipe(_recipe(tmp_path, tiny_pair))
    out = tmp_path / "seeds"
    summary = run_seeds(recipe, out, [0, 1])
    assert calls == [(0, 0, "seed-0", False), (1, 1, "seed-1", False)]
    float_row = summary["rows"][0]
    assert float_row["map50_95"] == {"0": 0.70, "1": 0.74}
    assert float_row["mean"] == pytest.approx(0.72) and float_row["spread"] == pytest.approx(0.04)
    assert summary["rows"][1]["small_mean"] is None and summary["rows"][1]["mcycles"] == 12.5
    md = (out / "compress_report.md").read_text()
    assert "| float | 0.7000 | 0.7400 | 0.7200 | 4.00 | 0.5000 | 4.00 | 1.120 | – |" in md
    assert md == seeds_markdown(json.loads((out / "compress_report.json").read_text()))  # renders from its JSON
    assert "test images" in md and "Seed 1 training: distill 1.00 h, qat 0.50 h." in md

    calls.clear()
    run_seeds(recipe, out, [1, 5], resume=True)  # a finished seed resumes (its stages are kept), a new one starts
    assert calls == [(1, 1, "seed-1", True), (5, 5, "seed-5", False)]


def test_seeds_refuse_an_earlier_run_without_resume_and_bad_lists_are_one_line(cli, tiny_pair, tmp_path):
    out = tmp_path / "run"
    (out / "prune").mkdir(parents=True)
    path = _recipe(tmp_path, tiny_pair)
    result = cli("compress", "--recipe", path, "--out", out, "--seeds", "0,1")
    assert result.exit_code == 2 and "--resume" in result.stderr and sorted(p.name for p in out.iterdir()) == ["prune"]
    for seeds, message in (("0,x", "must list whole numbers"), ("1.5", "must list whole numbers")):
        result = cli("compress", "--recipe", path, "--out", tmp_path / "new", "--seeds", seeds)
        assert result.exit_code == 2 and message in result.stderr and not (tmp_path / "new").exists()
    result = cli("compress", "--recipe", path, "--out", tmp_path / "new", "--seeds", "0,1", "--nproc", 2)
    assert result.exit_code == 2 and "--seeds" in result.stderr
