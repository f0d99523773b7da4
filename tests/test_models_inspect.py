"""`studio models inspect` describes .yaml, .pt and .onnx detectors consistently."""
from __future__ import annotations

import json

from deploy.convert.onnx_export import export_onnx
from tests.conftest import NAMES, make_detector


def test_inspect_architecture_yaml(cli):
    result = cli("models", "inspect", "yolov8n.yaml", "--imgsz", 320, "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["kind"] == "architecture" and info["task"] == "detect"
    assert len(info["names"]) == 80
    assert 3.0e6 < info["parameters"] < 3.3e6  # yolov8n: 3.16 M
    assert 2.0 < info["gflops"] < 2.5  # 8.7 GFLOPs at 640 scales to ~2.2 at 320
    assert info["inputs"] == {"images": [1, 3, 320, 320]}
    assert info["outputs"] == {"output0": [1, 84, 2100]}
    assert "layers" not in info


def test_inspect_lists_layers_with_the_indices_prune_protects(cli):
    # at 64 px: layers and parameters do not depend on the size (the FLOPs count at 640 px took 1-19 s here)
    info = json.loads(cli("models", "inspect", "yolov8n.yaml", "--imgsz", 64, "--layers", "--json").stdout)
    layers = info["layers"]
    assert [r["index"] for r in layers] == list(range(23)) and layers[-1]["type"] == "Detect"
    assert layers[-1]["from"] == [15, 18, 21] and sum(r["parameters"] for r in layers) == info["parameters"]
    shown = cli("models", "inspect", "yolov8n.yaml", "--imgsz", 64, "--layers").stdout
    assert "Detect" in shown and "[15, 18, 21]" in shown


def test_inspect_checkpoint_and_its_onnx_agree(cli, detector_pt, tmp_path):
    pt = json.loads(cli("models", "inspect", detector_pt, "--imgsz", 256, "--json").stdout)
    assert pt["kind"] == "checkpoint" and pt["names"] == NAMES
    onnx_path = tmp_path / "m.onnx"
    assert cli("export", detector_pt, "--imgsz", 256, "--out", onnx_path).exit_code == 0
    ox = json.loads(cli("models", "inspect", onnx_path, "--json").stdout)
    assert ox["kind"] == "onnx" and ox["layout"] == "rknn-split" and ox["names"] == NAMES
    assert ox["imgsz"] == 256 and ox["outputs"]["cls0"] == [1, 4, 32, 32]
    # BN folding removes BN parameters; the conv arithmetic is the same model's.
    assert abs(ox["gflops"] - pt["gflops"]) / pt["gflops"] < 0.1
    assert ox["parameters"] < pt["parameters"]


def test_inspect_standard_onnx(tmp_path, cli):
    path = tmp_path / "std.onnx"
    export_onnx(make_detector(), path, 128, "standard")
    info = json.loads(cli("models", "inspect", path, "--json").stdout)
    assert info["layout"] == "standard" and len(info["names"]) == 4


def test_inspect_rejects_odd_imgsz(cli):
    result = cli("models", "inspect", "yolov8n.yaml", "--imgsz", 100)
    assert result.exit_code == 2 and "multiple of 32" in result.stderr


def test_help_lists_the_commands(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("models", "export", "data", "train", "demo", "gui"):
        assert command in result.stdout


def test_json_stdout_stays_json_on_a_machine_where_ultralytics_never_ran(detector_pt, tmp_path):
    """Ultralytics announces its new settings file on stdout the first time; --json output must not carry that."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "fresh")}
    done = subprocess.run([sys.executable, "-m", "studio.cli", "models", "inspect", str(detector_pt), "--json"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "fresh" / "Ultralytics" / "settings.json").is_file()  # it was a first run
    assert json.loads(done.stdout)["kind"] == "checkpoint"
