"""`studio eval` on oriented-box models: ultralytics' OBB scoring (probiou matching, its AP), difficult labels left
out, size buckets by turned area; the exported ONNX scores as the checkpoint does."""
from __future__ import annotations

import json

import numpy as np
import pytest

from studio.core.data.synth import SynthConfig, generate
from studio.core.evaluate_obb import Truth, match_split, obb_metrics, obb_truth

NAMES = ["vehicle", "storage-tank", "plane", "ship"]


@pytest.fixture(scope="module")
def dense_obb(tmp_path_factory):
    return generate(SynthConfig(tmp_path_factory.mktemp("dense") / "ds", images=10, size=160, generator="dense-1",
                                task="obb"))


def _perfect(truths):
    return [(t.rboxes.copy(), np.linspace(0.9, 0.5, len(t.classes)).astype(np.float32), t.classes.copy())
            for t in truths]


def test_labels_as_predictions_score_full_marks_and_losses_cost_what_they_should(dense_obb):
    truths, images = obb_truth(dense_obb, "val", NAMES, None)
    assert len(images) == 2 and sum(len(t.classes) for t in truths) > 10
    perfect = obb_metrics(match_split(truths, _perfect(truths)), NAMES)
    assert perfect["map50_95"] > 0.99 and perfect["map50"] > 0.99
    shifted = [(r + np.array([1.5, 0, 0, 0, 0], np.float32), s, c) for r, s, c in _perfect(truths)]
    worse = obb_metrics(match_split(truths, shifted), NAMES)  # a pixel and a half off: fails the strict thresholds
    assert worse["map50"] > 0.9 and worse["map50_95"] < perfect["map50_95"] - 0.1
    halved = [(r[::2], s[::2], c[::2]) for r, s, c in _perfect(truths)]
    half = obb_metrics(match_split(truths, halved), NAMES)
    assert 0.3 < half["map50"] < 0.75
    noisy = [(np.concatenate([r, r + [40, 40, 0, 0, 0.3]]), np.concatenate([s, s * 0.1]), np.concatenate([c, c]))
             for r, s, c in _perfect(truths)]  # low-scored false positives after every true one
    assert obb_metrics(match_split(truths, noisy), NAMES)["map50_95"] == pytest.approx(perfect["map50_95"], abs=0.01)


def test_difficult_labels_neither_reward_nor_punish():
    rboxes = np.array([[50, 50, 30, 10, 0.3], [150, 150, 30, 10, 0.8]], np.float32)
    easy = Truth(rboxes[:1], np.array([0]), np.array([False]))
    marked = Truth(rboxes, np.array([0, 0]), np.array([False, True]))
    found = [(rboxes.copy(), np.array([0.9, 0.8], np.float32), np.array([0, 0]))]
    assert obb_metrics(match_split([marked], found), ["a"]) == obb_metrics(match_split([easy], found[:1] and [
        (rboxes[:1], np.array([0.9], np.float32), np.array([0]))]), ["a"])
    missed = obb_metrics(match_split([marked], [(rboxes[:1], np.array([0.9], np.float32), np.array([0]))]), ["a"])
    assert missed["map50"] > 0.99  # not finding the difficult one costs nothing


@pytest.mark.slow  # three evaluations of the tiny OBB model
def test_eval_of_an_obb_model_reports_probiou_figures_and_onnx_agrees_with_torch(cli, obb_pt, obb_onnx, dense_obb,
                                                                                 tmp_path):
    data = dense_obb
    torch_run = json.loads(cli("eval", obb_pt, "--data", data, "--imgsz", 96, "--json").stdout)
    onnx_run = json.loads(cli("eval", obb_onnx, "--data", data, "--json").stdout)
    assert torch_run["settings"]["task"] == onnx_run["settings"]["task"] == "obb"
    assert "probiou" in onnx_run["settings"]["metric"] and set(onnx_run["per_size"]) == {"small", "medium", "large"}
    assert onnx_run["map50_95"] == pytest.approx(torch_run["map50_95"], abs=0.005)
    assert onnx_run["recall"]["labels"] > 10 and onnx_run["recall"]["conf"] == 0.25
    upright = generate(SynthConfig(tmp_path / "up", images=10, size=160))
    refused = cli("eval", obb_onnx, "--data", upright)
    assert refused.exit_code == 2 and "labelled with upright boxes" in refused.stderr and "--task obb" in refused.stderr


def test_training_a_detector_on_oriented_labels_is_refused_before_it_starts(cli, dense_obb, tmp_path):
    result = cli("train", "yolov8n.yaml", "--data", dense_obb, "--epochs", 1, "--project", tmp_path / "runs")
    assert result.exit_code == 2 and "labelled with oriented boxes" in result.stderr
    assert not (tmp_path / "runs").exists()
