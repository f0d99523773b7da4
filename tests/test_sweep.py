"""`studio sweep`: grid parsing, scoring and the Pareto front by hand, and a real sweep on a local Ray instance."""
from __future__ import annotations

import json

import pytest
import yaml

from deploy.errors import UserError
from studio.core.compress.sweep import candidates, parse_grid
from studio.core.compress.sweep_report import pareto, score


def test_grid_expands_to_every_combination_of_recipe_changes():
    base = {"model": "m.pt", "data": "d.yaml", "prune": {"criterion": "l1"}, "qat": {"epochs": 1}}
    axes = parse_grid(["prune.target_flops=0.3,0.5", "quant=ptq,qat", "distill=on"])
    cands = candidates(base, axes)
    assert len(cands) == 4 and len({c.id for c in cands}) == 4
    first, last = cands[0].recipe, cands[-1].recipe
    assert first["prune"] == {"criterion": "l1", "target_flops": 0.3} and "qat" not in first
    assert last["prune"]["target_flops"] == 0.5 and last["qat"] == {"epochs": 1} and last["distill"] == {}
    assert base["prune"] == {"criterion": "l1"}  # the base recipe is left as it was


@pytest.mark.parametrize("spec, message", [
    ("prune.target_flops", "write KEY=V1,V2"),
    ("quant=int4", "quant takes ptq and/or qat"),
    ("model.path=x", "not a recipe option"),
    ("nosuch.option=1", "not a recipe option"),
])
def test_bad_grids_are_one_line(spec, message):
    with pytest.raises(UserError, match=message):
        parse_grid([spec])


def test_score_and_pareto_front_by_hand():
    assert score(0.8, 2.0, 1.0, -0.07) == pytest.approx(0.8 * 2 ** -0.07)
    points = [("a", 1.0, 0.70), ("b", 2.0, 0.75), ("c", 2.5, 0.74), ("d", 3.0, 0.80), ("e", 1.0, 0.60)]
    assert pareto(points) == ["a", "b", "d"]  # c is beaten by b, e by a


@pytest.mark.slow
def test_sweep_of_four_candidates_on_local_ray_survives_a_failing_one(cli, tiny_pair, tmp_path):
    data, _, student = tiny_pair
    recipe = tmp_path / "base.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": str(student), "data": str(data), "imgsz": 64,
        "prune": {"criterion": "l1", "round_to": 16, "val_limit": 4},
        "export": {"platform": "rk3588", "ptq": ["normal"], "calib_count": 4}, "verify": {"limit": 4}}))
    out = tmp_path / "sweep"
    result = cli("sweep", "--recipe", recipe, "--grid", "prune.target_flops=0.9,0.7,0.5,1.5", "--workers", 2,
                 "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    by_id = {c["id"]: c for c in report["candidates"]}
    assert len(by_id) == 4 and len(report["failed"]) == 1
    failed = by_id[report["failed"][0]]
    assert failed["overrides"] == {"prune.target_flops": 1.5} and "between 0 and 1" in failed["error"]
    assert len(report["ranking"]) == 3
    ok = [by_id[i] for i in report["ranking"]]
    assert all(c["variant"] == "ptq-normal" and c["mcycles"] > 0 and 0 <= c["map50_95"] <= 1 for c in ok)
    assert [c["score"] for c in ok] == sorted((c["score"] for c in ok), reverse=True)
    assert any(c["pareto"] for c in ok)
    cheapest = min(ok, key=lambda c: c["mcycles"])
    assert cheapest["overrides"]["prune.target_flops"] == 0.5 and cheapest["pareto"]
    for name in ("sweep_report.json", "sweep_report.md", "sweep_report.png"):
        assert (out / name).stat().st_size > 0
    assert "Failed (the others ran on)" in (out / "sweep_report.md").read_text()

    reports = {p: p.stat().st_mtime_ns for p in out.glob("candidates/*/run/compress_report.json")}
    assert len(reports) == 3
    again = cli("sweep", "--recipe", recipe, "--grid", "prune.target_flops=0.9,0.7,0.5,1.5", "--out", out,
                "--resume", "--json")  # finished candidates are kept; only the failed one runs again
    assert again.exit_code == 0 and json.loads(again.stdout)["ranking"] == report["ranking"]
    assert {p: p.stat().st_mtime_ns for p in reports} == reports
    assert cli("sweep", "--recipe", recipe, "--grid", "prune.target_flops=0.5", "--out", tmp_path / "t",
               "--target", -1).exit_code == 2
