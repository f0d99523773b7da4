"""`studio sweep`: grid parsing, scoring and the Pareto front by hand, and a real sweep on a local Ray instance."""
from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
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
def test_sweep_of_three_candidates_on_local_ray_survives_a_failing_one(cli, tiny_pair, tmp_path):
    data, _, student = tiny_pair
    recipe = tmp_path / "base.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": str(student), "data": str(data), "imgsz": 64,
        "prune": {"criterion": "l1", "round_to": 16, "val_limit": 4},
        "export": {"platform": "rk3588", "ptq": ["normal"], "calib_count": 4}, "verify": {"limit": 4}}))
    out = tmp_path / "sweep"
    result = cli("sweep", "--recipe", recipe, "--grid", "prune.target_flops=0.9,0.5,0.02", "--workers", 2,
                 "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    by_id = {c["id"]: c for c in report["candidates"]}
    assert len(by_id) == 3 and len(report["failed"]) == 1
    failed = by_id[report["failed"][0]]
    # 2% passes the recipe's range check but no model prunes that far: the candidate fails as it runs
    assert failed["overrides"] == {"prune.target_flops": 0.02} and "could not prune to 2%" in failed["error"]
    assert len(report["ranking"]) == 2
    ok = [by_id[i] for i in report["ranking"]]
    assert all(c["variant"] == "ptq-normal" and c["mcycles"] > 0 and 0 <= c["map50_95"] <= 1 for c in ok)
    assert [c["score"] for c in ok] == sorted((c["score"] for c in ok), reverse=True)
    assert any(c["pareto"] for c in ok)
    cheapest = min(ok, key=lambda c: c["mcycles"])
    assert cheapest["overrides"]["prune.target_flops"] == 0.5 and cheapest["pareto"]
    by_target = sorted(ok, key=lambda c: c["overrides"]["prune.target_flops"])
    assert [c["mcycles"] for c in by_target] == sorted(c["mcycles"] for c in ok)  # fewer FLOPs kept, fewer cycles
    # the front, by a plain loop: no other candidate is at most as costly and at least as accurate, and better in one
    for c in ok:
        beaten = any(o["mcycles"] <= c["mcycles"] and o["map50_95"] >= c["map50_95"]
                     and (o["mcycles"], o["map50_95"]) != (c["mcycles"], c["map50_95"]) for o in ok if o is not c)
        assert c["pareto"] == (not beaten), c["id"]

    # each figure is the one of the candidate's own run, as its chain wrote it in its folder
    for c in ok:
        folder = out / "candidates" / c["id"]
        written = yaml.safe_load((folder / "recipe.yaml").read_text())
        assert written["prune"]["target_flops"] == c["overrides"]["prune.target_flops"]
        run = json.loads((folder / "run" / "compress_report.json").read_text())
        row = next(r for r in run["rows"] if r["variant"] == c["variant"])
        assert json.loads((folder / "run" / "verify" / f"{c['variant']}.json").read_text()) == row
        assert (c["map50_95"], c["mcycles"]) == (row["map50_95"], row["npu_build"]["mcycles"])
        assert c["mb"] == round(Path(row["path"]).stat().st_size / 1e6, 3)
        assert json.loads((folder / "run" / "prune" / "prune_report.json").read_text())["gflops"]["ratio"] \
            <= c["overrides"]["prune.target_flops"]
    assert json.loads((out / "sweep_report.json").read_text()) == report
    table = (out / "sweep_report.md").read_text()
    ranks = [line.split(" | ")[1].rstrip(" ★") for line in table.splitlines() if re.match(r"\| \d+ \|", line)]
    assert ranks == report["ranking"]  # the table lists the ranking, best first
    assert f"- {failed['id']}: {failed['error']}" in table.split("Failed (the others ran on)")[1]
    png = out / "sweep_report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imread(str(png))
    assert image.shape[:2] == (495, 770) and image.std() > 10  # 7 x 4.5 inches at 110 dpi, drawn on

    reports = {p: p.stat().st_mtime_ns for p in out.glob("candidates/*/run/compress_report.json")}
    assert len(reports) == 2
    again = cli("sweep", "--recipe", recipe, "--grid", "prune.target_flops=0.9,0.5,0.02", "--out", out,
                "--resume", "--json")  # finished candidates are kept; only the failed one runs again
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["ranking"] == report["ranking"]
    assert {p: p.stat().st_mtime_ns for p in reports} == reports
    assert cli("sweep", "--recipe", recipe, "--grid", "prune.target_flops=0.5", "--out", tmp_path / "t",
               "--target", -1).exit_code == 2


@pytest.mark.parametrize("grid, said", [("qat.epoch=1,2", "epoch"), ("prune.target_flops=0.5,1.5", "1.5")])
def test_a_candidate_the_recipe_refuses_stops_the_sweep_before_ray(cli, tiny_pair, tmp_path, grid, said):
    data, _, student = tiny_pair
    recipe = tmp_path / "base.yaml"
    recipe.write_text(yaml.safe_dump({"model": str(student), "data": str(data), "imgsz": 64,
                                      "prune": {"target_flops": 0.7}, "qat": {"epochs": 1}}))
    result = cli("sweep", "--recipe", recipe, "--grid", grid, "--out", tmp_path / "sweep")
    assert result.exit_code == 2 and result.stderr.startswith("error: candidate c0"), result.stderr
    assert said in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "sweep").exists()
