"""`studio eval`: the same detections score the same through every backend; bad input is one line."""
from __future__ import annotations

import json

import pytest

from studio.core.data.synth import SynthConfig, generate


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    return generate(SynthConfig(tmp_path_factory.mktemp("data"), images=20, size=96))


def test_eval_torch_and_onnx_agree(cli, detector_pt, small_data, tmp_path):
    torch_run = cli("eval", detector_pt, "--data", small_data, "--imgsz", 96, "--json")
    assert torch_run.exit_code == 0, torch_run.stderr
    t = json.loads(torch_run.stdout)
    assert t["images"] == 4 and t["split"] == "val" and set(t["per_class"]) == {"vehicle", "storage-tank",
                                                                                "plane", "ship"}
    assert set(t["per_size"]) == {"small", "medium", "large"}
    assert set(t["latency_ms"]) >= {"preprocess", "infer", "postprocess", "total"}
    onnx_path = tmp_path / "m.onnx"
    assert cli("export", detector_pt, "--imgsz", 96, "--out", onnx_path).exit_code == 0
    o = json.loads(cli("eval", onnx_path, "--data", small_data, "--backend", "ort", "--json").stdout)
    assert 0 <= t["map50_95"] <= 1
    assert o["map50_95"] == pytest.approx(t["map50_95"], abs=0.01)  # same model, split head vs standard


def test_eval_bad_input(cli, detector_pt, small_data, tmp_path):
    result = cli("eval", detector_pt, "--data", small_data, "--backend", "tflite")
    assert result.exit_code == 2 and "--backend 'tflite'" in result.stderr
    result = cli("eval", detector_pt, "--data", small_data, "--split", "scenes", "--imgsz", 96)
    assert result.exit_code == 2 and "no 'scenes' split" in result.stderr
    other = tmp_path / "other.yaml"
    other.write_text(small_data.read_text().replace("0: vehicle", "0: car").replace("train: images/train",
                                                                                    f"path: {small_data.parent}\n"
                                                                                    "train: images/train"))
    result = cli("eval", detector_pt, "--data", other, "--imgsz", 96)
    assert result.exit_code == 2 and "differ from the dataset" in result.stderr
