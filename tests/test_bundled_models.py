"""The bundled models: the student's quality, parity with ultralytics' validator and a faithful int8 RKNN;
the teacher's lead over the student.

The val split is regenerated bit for bit from the generator settings in the model's JSON,
so nothing large is committed and nothing is retrained.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.core.data.synth import SynthConfig, generate

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "models"
STUDENT = ASSETS / "student.pt"
TEACHER = ASSETS / "teacher.pt"


@pytest.fixture(scope="module")
def student_info() -> dict:
    assert STUDENT.is_file(), "assets/models/student.pt is missing: run `make assets`"
    return json.loads(STUDENT.with_suffix(".json").read_text())


@pytest.fixture(scope="module")
def val_data(tmp_path_factory, student_info) -> Path:
    gen = student_info["generator"]
    cfg = SynthConfig(tmp_path_factory.mktemp("val"), images=gen["images"], size=gen["size"], seed=gen["seed"])
    data = generate(cfg, splits=("val",))
    data.write_text("train: images/val\n" + data.read_text())  # ultralytics insists on a train key
    return data


@pytest.fixture(scope="module")
def calib_images(tmp_path_factory) -> Path:
    data = generate(SynthConfig(tmp_path_factory.mktemp("calib"), images=80, size=320, seed=7), splits=("train",))
    return data.parent / "images" / "train"


@pytest.mark.slow  # evaluates the bundled models on 300 images
def test_student_quality_and_parity_with_ultralytics_val(cli, val_data, student_info):
    from ultralytics import YOLO

    ours = json.loads(cli("eval", STUDENT, "--data", val_data, "--json").stdout)
    assert ours["images"] == 300 and ours["map50_95"] >= 0.40
    assert ours["map50_95"] == pytest.approx(student_info["evaluation"]["val"]["map50_95"], abs=1e-4)
    theirs = YOLO(str(STUDENT)).val(data=str(val_data), imgsz=320, batch=1, conf=0.001, iou=0.7, plots=False,
                                     verbose=False, device="cpu", workers=0, split="val")
    assert abs(ours["map50_95"] - theirs.box.map) <= 0.005  # within half a point
    assert abs(ours["map50"] - theirs.box.map50) <= 0.005


@pytest.mark.slow  # evaluates the bundled models on 300 images
def test_student_int8_rknn_is_faithful(cli, val_data, calib_images, tmp_path):
    out = tmp_path / "student.rknn"
    exported = cli("export", STUDENT, "--format", "rknn", "--platform", "rk3588", "--quant", "int8", "--imgsz", 320,
                   "--calib", calib_images, "--report", "--out", out, "--json")
    assert exported.exit_code == 0, exported.stderr
    report = json.loads(exported.stdout)
    assert report["min_cosine"] >= 0.98 and report["detection_agreement"] >= 0.9
    float_map = json.loads(cli("eval", STUDENT, "--data", val_data, "--limit", 100, "--json").stdout)["map50_95"]
    sim = cli("eval", out, "--data", val_data, "--backend", "rknn-sim", "--limit", 100, "--json")
    assert sim.exit_code == 0, sim.stderr
    assert abs(json.loads(sim.stdout)["map50_95"] - float_map) <= 0.02  # on the same 100 val images


@pytest.mark.slow  # evaluates the bundled models on 300 images
def test_teacher_leads_the_student_by_three_points(cli, val_data, student_info):
    assert TEACHER.is_file(), "assets/models/teacher.pt is missing: run `make assets`"
    teacher_info = json.loads(TEACHER.with_suffix(".json").read_text())
    assert teacher_info["generator"] == student_info["generator"]  # the same data, so the val split is shared
    assert teacher_info["architecture"] == "yolov8s.yaml" and teacher_info["imgsz"] == student_info["imgsz"]
    result = cli("eval", TEACHER, "--data", val_data, "--json")
    assert result.exit_code == 0, result.stderr
    teacher = json.loads(result.stdout)
    assert teacher["map50_95"] == pytest.approx(teacher_info["evaluation"]["val"]["map50_95"], abs=1e-4)
    student = student_info["evaluation"]["val"]["map50_95"]
    assert teacher["map50_95"] >= student + 0.03


def _oriented_card(name: str, stages: list[int]) -> dict:
    """The card of assets/models/<name>: its digest and size, its stages, the last one a polish trained until flat."""
    from deploy.runtime.digest import sha256_of

    model = STUDENT.with_name(name)
    card = json.loads(model.with_suffix(".json").read_text())
    assert sha256_of(model) == card["sha256"] and model.stat().st_size == card["bytes"]
    assert [s["epochs"] for s in card["stages"]] == stages and card["cpu_hours"] > 0
    polish = card["stages"][-1]  # trained until flat by the full-budget rule, without mosaic, at a small rate
    assert polish["convergence"]["flat"] is True and polish["command"].endswith("--until-flat --no-mosaic --lr 0.0001")
    return card


def test_the_oriented_box_student_is_the_file_its_card_describes():
    """assets/models/student-obb.pt: the card's digest, architecture, data, stages and the metric its figures use."""
    card = _oriented_card("student-obb.pt", [40, 40, 30])
    assert card["architecture"] == "yolov8n-obb.yaml" and card["generator"]["generator"] == "dense-1"
    assert card["evaluation"]["tool"].startswith("studio eval (probiou")


def test_the_oriented_box_teacher_is_its_card_and_leads_the_oriented_student_by_three_points():
    """assets/models/teacher-obb.pt: the file its card describes, on the student's data, 3 points ahead on val."""
    card = _oriented_card("teacher-obb.pt", [24, 24, 30])
    student = json.loads(STUDENT.with_name("student-obb.json").read_text())
    assert card["architecture"] == "yolov8s-obb.yaml" and card["generator"] == student["generator"]
    assert card["evaluation"]["tool"] == student["evaluation"]["tool"]
    assert card["evaluation"]["val"]["map50_95"] >= student["evaluation"]["val"]["map50_95"] + 0.03
