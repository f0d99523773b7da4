"""The assets builder's cheap steps: data, samples and the flight video (training is never rerun in tests)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from deploy.errors import UserError
from studio.core.assets import POLISH, AssetsRequest, Then, build_assets, flight_video, stage_plan


def test_flight_video_pans_over_the_scene(tmp_path):
    scene = np.random.default_rng(0).integers(0, 255, (400, 600, 3), dtype=np.uint8)
    path = flight_video(scene, tmp_path / "flight.avi", size=96, frames=20, fps=10)
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 20 and frames[0].shape == (96, 96, 3)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 20  # the camera moved


def test_data_and_samples_steps(tmp_path):
    req = AssetsRequest(out=tmp_path / "assets", work=tmp_path / "work", images=12, size=128, scenes=1)
    assert build_assets(AssetsRequest(**{**req.__dict__, "only": "data"}))["data"].startswith("wrote")
    assert build_assets(AssetsRequest(**{**req.__dict__, "only": "data"}))["data"].startswith("kept")
    samples = build_assets(AssetsRequest(**{**req.__dict__, "only": "samples"}))["samples"]
    names = sorted(p.rsplit("/", 1)[1] for p in samples)
    assert "flight.avi" in names and "scene_000.jpg" in names and "scene_000.txt" in names
    assert cv2.imread(str(tmp_path / "assets" / "samples" / "scene_000.jpg")).shape == (2048, 2048, 3)

    kept = {p: Path(p).read_bytes() for p in samples}
    first = sorted((tmp_path / "work" / "data" / "images" / "test").glob("*.png"))[0]
    cv2.imwrite(str(first), np.zeros((8, 8, 3), np.uint8))  # a new image would replace its sample ...
    (tmp_path / "work" / "data" / "labels" / "scenes" / "scene_000.txt").unlink()  # ... but the step fails after
    with pytest.raises(FileNotFoundError):
        build_assets(AssetsRequest(**{**req.__dict__, "only": "samples"}))
    assert {p: Path(p).read_bytes() for p in samples} == kept  # the earlier samples, untouched
    assert sorted(p.name for p in (tmp_path / "assets").iterdir()) == ["samples"]  # no staging left


def test_bundle_skips_models_still_in_training(tmp_path):
    req = AssetsRequest(out=tmp_path / "assets", work=tmp_path / "work", only="bundle")
    assert build_assets(req)["bundle"] == [f"{role}: not trained yet" for role in
                                           ("student", "teacher", "student-obb", "teacher-obb")]
    assert not (tmp_path / "assets" / "models").exists()


def test_a_bundled_first_stage_is_not_trained_again_and_starts_the_second(tmp_path):
    req = AssetsRequest(out=tmp_path / "assets", work=tmp_path / "work")
    first_last = tmp_path / "work" / "runs" / "teacher-obb" / "weights" / "last.pt"
    second_last = tmp_path / "work" / "runs" / "teacher-obb-more" / "weights" / "last.pt"
    assert stage_plan(req, "teacher-obb") == [("teacher-obb", "yolov8s-obb.yaml", Then(24)),
                                              ("teacher-obb-more", str(first_last), Then(24)),
                                              ("teacher-obb-more2", str(second_last), POLISH)]
    models = tmp_path / "assets" / "models"
    models.mkdir(parents=True)
    (models / "teacher-obb.pt").write_bytes(b"weights")
    (models / "teacher-obb.json").write_text(json.dumps({"stages": [{"epochs": 24}]}))
    assert stage_plan(req, "teacher-obb")[:2] == [("teacher-obb", None, Then(24)),  # no first run here
                                                  ("teacher-obb-more", str(models / "teacher-obb.pt"), Then(24))]
    (models / "teacher-obb.json").write_text(json.dumps({"stages": [{"epochs": 24}, {"epochs": 40}, {}]}))
    assert stage_plan(req, "teacher-obb")[0][1] == "yolov8s-obb.yaml"  # every stage bundled: a rebuild starts over
    first_last.parent.mkdir(parents=True)
    first_last.write_bytes(b"checkpoint")
    (models / "teacher-obb.json").write_text(json.dumps({"stages": [{"epochs": 24}]}))
    assert stage_plan(req, "teacher-obb")[1][1] == str(first_last)  # the run itself, where it is here


def test_a_third_stage_starts_from_two_bundled_stages_and_stops_once_flat(tmp_path):
    req = AssetsRequest(out=tmp_path / "assets", work=tmp_path / "work")
    runs, models = tmp_path / "work" / "runs", tmp_path / "assets" / "models"
    models.mkdir(parents=True)
    (models / "student-obb.json").write_text(json.dumps({"stages": [{"epochs": 40}, {"epochs": 40}]}))
    assert stage_plan(req, "student-obb") == [("student-obb", None, Then(40)),
                                              ("student-obb-more", None, Then(40)),
                                              ("student-obb-more2", str(models / "student-obb.pt"), POLISH)]
    second = runs / "student-obb-more" / "weights" / "last.pt"
    second.parent.mkdir(parents=True)
    second.write_bytes(b"checkpoint")  # the second stage's run is here after all: it is kept and started from
    assert stage_plan(req, "student-obb")[1:] == [("student-obb-more", str(runs / "student-obb" / "weights" /
                                                                           "last.pt"), Then(40)),
                                                  ("student-obb-more2", str(second), POLISH)]


def test_stage_records_come_from_each_run_or_else_from_the_bundled_card(tmp_path):
    from studio.core.assets import _stage_records

    req = AssetsRequest(out=tmp_path / "assets", work=tmp_path / "work")
    runs = tmp_path / "work" / "runs"
    for name, epochs in (("teacher-obb-more", 40), ("teacher-obb-more2", 30)):
        (runs / name).mkdir(parents=True)
        (runs / name / "provenance.json").write_text(json.dumps({"epochs": epochs}))
    models = tmp_path / "assets" / "models"
    models.mkdir(parents=True)
    (models / "teacher-obb.json").write_text(json.dumps({"stages": [{"epochs": 24, "from": "card"}]}))
    assert _stage_records(req, "teacher-obb", 3) == [{"epochs": 24, "from": "card"}, {"epochs": 40}, {"epochs": 30}]
    (runs / "teacher-obb").mkdir()
    (runs / "teacher-obb" / "provenance.json").write_text(json.dumps({"epochs": 24, "from": "run"}))
    assert _stage_records(req, "teacher-obb", 3) == [{"epochs": 24, "from": "run"}, {"epochs": 40}, {"epochs": 30}]
    (models / "student-obb.json").write_text(json.dumps({"stages": [{"epochs": 40, "n": 1}, {"epochs": 40, "n": 2}]}))
    (runs / "student-obb-more2").mkdir()
    (runs / "student-obb-more2" / "provenance.json").write_text(json.dumps({"epochs": 60, "n": 3}))
    assert [r["n"] for r in _stage_records(req, "student-obb", 3)] == [1, 2, 3]
    assert [r["n"] for r in _stage_records(req, "student-obb", 2)] == [1, 2]


def test_the_bundle_step_publishes_up_to_the_furthest_finished_stage_and_never_fewer_than_the_card(tmp_path):
    import torch

    from studio.core.assets import bundle_stages

    req = AssetsRequest(out=tmp_path / "assets", work=tmp_path / "work")
    runs, models = tmp_path / "work" / "runs", tmp_path / "assets" / "models"
    models.mkdir(parents=True)

    def checkpoint(name: str, epoch: int) -> None:  # ultralytics marks a finished run's last.pt with epoch -1
        (runs / name / "weights").mkdir(parents=True, exist_ok=True)
        torch.save({"epoch": epoch}, runs / name / "weights" / "last.pt")

    assert bundle_stages(req, "teacher-obb") == 0
    checkpoint("teacher-obb", -1)
    assert bundle_stages(req, "teacher-obb") == 1
    checkpoint("teacher-obb-more", -1)
    checkpoint("teacher-obb-more2", 7)  # the polish, still running
    assert bundle_stages(req, "teacher-obb") == 2
    (models / "teacher-obb.json").write_text(json.dumps({"stages": [{}, {}, {}]}))
    assert bundle_stages(req, "teacher-obb") == 0  # the card holds all three: two would be a step back
    checkpoint("teacher-obb-more2", -1)
    assert bundle_stages(req, "teacher-obb") == 3


def test_a_role_already_bundled_from_the_same_runs_is_kept_without_evaluating_it_again(tmp_path):
    import torch

    req = AssetsRequest(out=tmp_path / "assets", work=tmp_path / "work", only="bundle")
    run, models = tmp_path / "work" / "runs" / "teacher-obb", tmp_path / "assets" / "models"
    (run / "weights").mkdir(parents=True)
    torch.save({"epoch": -1}, run / "weights" / "last.pt")
    record = {"epochs": 24, "created": "2026-12-05T10:00:00+00:00"}
    (run / "provenance.json").write_text(json.dumps(record))
    models.mkdir(parents=True)
    (models / "teacher-obb.pt").write_bytes(b"weights")
    (models / "teacher-obb.json").write_text(json.dumps({"stages": [record]}))
    said = dict(zip(("student", "teacher", "student-obb", "teacher-obb"), build_assets(req)["bundle"]))
    assert said["teacher-obb"].startswith("kept") and (models / "teacher-obb.pt").read_bytes() == b"weights"


def test_retraining_a_role_whose_card_holds_every_stage_says_so_before_it_starts(tmp_path, monkeypatch):
    import studio.core.assets as assets
    from studio.core.jobs import Job

    req = AssetsRequest(out=tmp_path / "assets", work=tmp_path / "work", only="student-obb")
    req.dense_yaml.parent.mkdir(parents=True)
    req.dense_yaml.write_text("names: [a]\n")
    models = tmp_path / "assets" / "models"
    models.mkdir(parents=True)
    (models / "student-obb.json").write_text(json.dumps({"stages": [{}, {}, {}]}))
    events, trained = [], []

    def fake_train(request, job):
        trained.append(request.name)
        raise UserError("stopped here")

    monkeypatch.setattr(assets, "train", fake_train)
    with pytest.raises(UserError, match="stopped here"):
        build_assets(req, Job(events.append))
    assert trained == ["student-obb"]  # the first stage, from nothing
    said = [e.message for e in events if "holds every stage" in e.message]
    assert said and "training it again from nothing" in said[0]

    events.clear(), trained.clear()
    (models / "student-obb.json").write_text(json.dumps({"stages": [{}, {}]}))  # a partial bundle: go on from it
    with pytest.raises(UserError, match="stopped here"):
        build_assets(req, Job(events.append))
    assert trained == ["student-obb-more2"] and not [e for e in events if "holds every stage" in e.message]


def test_unknown_step(tmp_path):
    with pytest.raises(UserError, match="--only 'weights'"):
        build_assets(AssetsRequest(out=tmp_path, work=tmp_path, only="weights"))


def test_a_packed_checkpoint_loads_the_same_tensors_from_fewer_bytes(tmp_path):
    import zipfile

    import torch

    from studio.core.checkpoint_pack import pack_checkpoint

    weights = {"conv.weight": torch.randn(64, 32, 3, 3).half(), "bn.running_var": torch.ones(64), "epoch": -1}
    torch.save(weights, tmp_path / "best.pt")
    pack_checkpoint(tmp_path / "best.pt", tmp_path / "packed.pt")
    with zipfile.ZipFile(tmp_path / "best.pt") as plain, zipfile.ZipFile(tmp_path / "packed.pt") as packed:
        assert plain.namelist() == packed.namelist()
        assert {m.compress_type for m in packed.infolist()} == {zipfile.ZIP_DEFLATED}
    assert (tmp_path / "packed.pt").stat().st_size < (tmp_path / "best.pt").stat().st_size
    time.sleep(2)  # a zip records times to 2 s: a second packing later must still give the same bytes
    pack_checkpoint(tmp_path / "best.pt", tmp_path / "again.pt")
    assert (tmp_path / "again.pt").read_bytes() == (tmp_path / "packed.pt").read_bytes()
    loaded = torch.load(tmp_path / "packed.pt")
    assert loaded["epoch"] == -1 and loaded.keys() == weights.keys()
    assert all(torch.equal(loaded[k], weights[k]) for k in ("conv.weight", "bn.running_var"))
