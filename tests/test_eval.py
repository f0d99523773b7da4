"""`studio eval`: the same detections score the same through every backend; bad input is one line."""
from __future__ import annotations

import json

import pytest

from studio.core.data.synth import SynthConfig, generate


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    return generate(SynthConfig(tmp_path_factory.mktemp("data"), images=20, size=96))


@pytest.fixture(scope="module")
def scored_data(tmp_path_factory):
    """20 synthetic 256-px images: the 4 of the val split hold 9 objects of all 4 classes."""
    return generate(SynthConfig(tmp_path_factory.mktemp("scored"), images=20, size=256))


def test_eval_torch_and_onnx_agree(cli, scored_data, tmp_path):
    """The bundled student finds these objects, so equal scores mean equal detections, not two zeros."""
    from studio.core.demo import BUNDLED_STUDENT

    torch_run = cli("eval", BUNDLED_STUDENT, "--data", scored_data, "--imgsz", 256, "--json")
    assert torch_run.exit_code == 0, torch_run.stderr
    t = json.loads(torch_run.stdout)
    assert t["images"] == 4 and t["split"] == "val" and set(t["per_class"]) == {"vehicle", "storage-tank",
                                                                                "plane", "ship"}
    assert set(t["per_size"]) == {"small", "medium", "large"}
    assert set(t["latency_ms"]) >= {"preprocess", "infer", "postprocess", "total"}
    assert t["map50_95"] > 0.5 and t["map50"] > 0.8  # a trained model on its own kind of data (0.78 and 1.0 here)
    assert all(ap is not None and ap > 0.3 for ap in t["per_class"].values())  # every class present and found
    onnx_path = tmp_path / "m.onnx"
    exported = cli("export", BUNDLED_STUDENT, "--imgsz", 256, "--out", onnx_path)
    assert exported.exit_code == 0, exported.stderr
    o = json.loads(cli("eval", onnx_path, "--data", scored_data, "--json").stdout)  # the backend follows the file
    assert o["backend"] == "ort" and t["backend"] == "torch"
    # same model, split head decoded by our post-processing vs ultralytics' standard head
    assert o["map50_95"] == pytest.approx(t["map50_95"], abs=0.01)
    assert o["map50"] == pytest.approx(t["map50"], abs=0.01)
    assert o["per_class"] == pytest.approx(t["per_class"], abs=0.02)


def test_eval_bad_input(cli, detector_pt, small_data, tmp_path):
    result = cli("eval", detector_pt, "--data", small_data, "--backend", "tflite")
    assert result.exit_code == 2 and "--backend 'tflite'" in result.stderr
    result = cli("eval", detector_pt, "--data", small_data, "--backend", "ort")
    assert result.exit_code == 2 and "does not run tiny.pt: use --backend torch" in result.stderr
    result = cli("eval", detector_pt, "--data", small_data, "--split", "scenes", "--imgsz", 96)
    assert result.exit_code == 2 and "no 'scenes' split" in result.stderr
    other = tmp_path / "other.yaml"
    other.write_text(small_data.read_text().replace("0: vehicle", "0: car").replace("train: images/train",
                                                                                    f"path: {small_data.parent}\n"
                                                                                    "train: images/train"))
    result = cli("eval", detector_pt, "--data", other, "--imgsz", 96)
    assert result.exit_code == 2 and "differ from the dataset" in result.stderr
