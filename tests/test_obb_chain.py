"""The compression chain on an oriented-box model: prune with distilled fine-tuning, then distillation-aware QAT,
each on oriented labels with ultralytics' OBB loss and the angle's distillation term; the other kind is refused."""
from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import make_detector


@pytest.fixture(scope="module")
def obb_pair(tmp_path_factory):
    """(oriented data.yaml, teacher .pt, student .pt): untrained yolov8n-obb models of two seeds, 16 dense images."""
    from studio.core.data.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("obb-kd")
    data = generate(SynthConfig(root / "data", images=16, size=160, generator="dense-1", task="obb"))
    torch.save({"model": make_detector(obb=True, seed=1), "ema": None}, root / "teacher.pt")
    torch.save({"model": make_detector(obb=True), "ema": None}, root / "student.pt")
    return data, root / "teacher.pt", root / "student.pt"


@pytest.mark.slow
def test_prune_with_distillation_then_qat_on_an_obb_model(cli, obb_pair, tmp_path):
    from studio.core.compress import fakequant as fq
    from studio.core.compress.yolo import angle_branches, model_task
    from studio.core.models import load_detector

    data, teacher, student = obb_pair
    pruned = cli("prune", student, "--data", data, "--target-flops", 0.7, "--finetune-epochs", 1, "--teacher", teacher,
                 "--imgsz", 64, "--batch", 8, "--out", tmp_path / "prune", "--json")
    assert pruned.exit_code == 0, pruned.stderr
    report = json.loads(pruned.stdout)
    assert report["gflops"]["ratio"] <= 0.7
    tuned = report["steps"][0]["history"][0]
    assert tuned["kd_angle"] > 0 and {"kd_cls", "kd_box", "kd_fg", "kd_rel"} <= tuned.keys()
    model = load_detector(report["model"])[0]
    assert model_task(model) == "obb" and [b[-1].out_channels for b in angle_branches(model)] == [1] * 3

    qat = cli("qat", report["model"], "--teacher", teacher, "--data", data, "--epochs", 1, "--imgsz", 64, "--batch", 8,
              "--calib-batches", 1, "--out", tmp_path / "qat", "--json")
    assert qat.exit_code == 0, qat.stderr
    stage = json.loads(qat.stdout)["stages"][-1]
    assert stage["bits"] == 8 and stage["history"][0]["kd_angle"] > 0
    quantized = load_detector(stage["model"])[0]
    assert fq.is_quantized(quantized) and model_task(quantized) == "obb"
    assert all(hasattr(b[-1], "output_quant") for b in angle_branches(quantized))  # the angle leaves the conv in int8


def test_a_model_meets_only_labels_of_its_kind_and_a_teacher_of_its_kind(cli, obb_pair, tiny_pair, tmp_path):
    obb_data, obb_teacher, obb_student = obb_pair
    detect_data, detect_teacher, detect_student = tiny_pair
    wrong_labels = cli("qat", obb_student, "--data", detect_data, "--epochs", 1, "--out", tmp_path / "q")
    assert wrong_labels.exit_code == 2 and "labelled with" in wrong_labels.stderr
    wrong_teacher = cli("distill", "--student", obb_student, "--teacher", detect_teacher, "--data", obb_data,
                        "--epochs", 1, "--imgsz", 64, "--out", tmp_path / "d")
    assert wrong_teacher.exit_code == 2
    assert "distil oriented boxes from an oriented-box teacher" in wrong_teacher.stderr
