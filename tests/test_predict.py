"""`studio predict` and `studio bench`: the pipeline on real exported models, through the CLI."""
from __future__ import annotations

import json

import cv2
import pytest

from deploy.runtime.metadata import load_meta


def test_predict_folder_json_lines_skips_corrupt_image(cli, tiny_onnx, calib_dir, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for p in sorted(calib_dir.iterdir()):
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "zz_corrupt.png").write_bytes(b"garbage")
    result = cli("predict", tiny_onnx, folder, "--workers", 2, "--conf", 0.05, "--save", tmp_path / "saved", "--json")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    frames, summary = lines[:-1], lines[-1]["summary"]
    assert [f["frame"] for f in frames] == [0, 1, 2, 3]
    assert summary["frames"] == 4 and summary["skipped"] == [str(folder / "zz_corrupt.png")]
    assert "zz_corrupt.png" in result.stderr
    assert summary["detections"] == sum(len(f["detections"]) for f in frames) > 0
    names = load_meta(tiny_onnx).names
    assert all(d["name"] in names for f in frames for d in f["detections"])
    assert len(list((tmp_path / "saved").glob("*.jpg"))) == 4
    h, w = cv2.imread(str(calib_dir / "img1.png")).shape[:2]
    for d in frames[1]["detections"]:  # boxes are in original pixels of the 128x96 image
        assert 0 <= d["box"][0] <= d["box"][2] <= w and 0 <= d["box"][1] <= d["box"][3] <= h


def test_predict_tiles_a_large_scene(cli, tiny_onnx, tmp_path):
    from studio.core.data.synth import SynthConfig, render_image

    scene = cv2.resize(render_image(SynthConfig(tmp_path, size=128), 0)[0], (300, 200))
    cv2.imwrite(str(tmp_path / "scene.png"), scene)
    result = cli("predict", tiny_onnx, tmp_path / "scene.png", "--tile", 96, "--overlap", 0.25, "--conf", 0.05,
                 "--json")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2 and lines[0]["frame"] == 0  # one scene, merged from its tiles
    assert all(0 <= d["box"][2] <= 300 and 0 <= d["box"][3] <= 200 for d in lines[0]["detections"])


@pytest.mark.parametrize("args,message", [
    (("--backend", "tensorrt"), "--backend 'tensorrt'"),
    (("--backend", "rknn-sim"), "runs a .rknn model"),
    (("--workers", "0"), "--workers"),
    (("--overlap", "1.5", "--tile", "96"), "--overlap"),
])
def test_predict_bad_options(cli, tiny_onnx, calib_dir, args, message):
    result = cli("predict", tiny_onnx, calib_dir, *args)
    assert result.exit_code == 2 and message in result.stderr, result.stderr


def test_predict_model_without_sidecar(cli, tiny_onnx, calib_dir, tmp_path):
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(tiny_onnx.read_bytes())
    result = cli("predict", bare, calib_dir)
    assert result.exit_code == 2 and "bare.onnx.json is missing" in result.stderr


def test_bench_postprocess_json(cli):
    result = cli("bench", "postprocess", "--nc", 15, "--imgsz", 320, "--objects", 30, "--repeat", 20, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["identical"] is True and data["batched_ms"] > 0 and data["speedup"] > 1
    assert set(data) >= {"batched_ms", "reference_ms", "speedup", "identical"}


def test_bench_pipeline_json(cli, tiny_onnx):
    result = cli("bench", "pipeline", tiny_onnx, "--workers", "1,2", "--frames", 12, "--json")
    assert result.exit_code == 0, result.stderr
    runs = json.loads(result.stdout)["runs"]
    assert [r["workers"] for r in runs] == [1, 2] and all(r["in_order"] for r in runs)
    assert runs[0]["speedup"] == 1.0 and runs[1]["fps"] > 0
