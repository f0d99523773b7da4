"""`studio predict` and `studio bench`: the pipeline on real exported models, through the CLI."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

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


@pytest.fixture(scope="module")
def student_onnx(tmp_path_factory):
    """The bundled trained student exported at 128 px: it finds the synthetic scenes' objects."""
    from studio.cli import app
    from studio.core.demo import BUNDLED_STUDENT

    out = tmp_path_factory.mktemp("student") / "student.onnx"
    result = CliRunner().invoke(app, ["export", str(BUNDLED_STUDENT), "--imgsz", "128", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    return out


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_predict_tiles_a_large_scene_and_finds_each_planted_object_once(cli, student_onnx, tmp_path):
    """A 416x256 synthetic scene with 13 planted objects, cut into 128-px tiles (12 of them, overlapping):
    every object comes back exactly once, as the class it is, including those cut by a tile seam."""
    from deploy.runtime.backends import OrtBackend
    from deploy.runtime.frame import Frame
    from deploy.runtime.pipeline import Pipeline
    from deploy.runtime.postprocess import NmsConfig
    from deploy.runtime.tiling import tile_frames, tile_origins
    from studio.core.data.aerial import render_scene

    h, w, tile, overlap, conf = 256, 416, 128, 0.25, 0.4
    scene, planted, _ = render_scene(np.random.default_rng([7, 15]), h, w)
    cv2.imwrite(str(tmp_path / "scene.png"), scene)
    result = cli("predict", student_onnx, tmp_path / "scene.png", "--tile", tile, "--overlap", overlap,
                 "--conf", conf, "--json")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2 and lines[0]["frame"] == 0  # one scene, merged from its tiles
    found = lines[0]["detections"]

    # the scene has work for the merge: objects across seams, and seen in more than one tile
    seams_x = {e for x in tile_origins(w, tile, overlap) for e in (x, x + tile) if 0 < e < w}
    seams_y = {e for y in tile_origins(h, tile, overlap) for e in (y, y + tile) if 0 < e < h}
    across = [any(x0 < e < x1 for e in seams_x) or any(y0 < e < y1 for e in seams_y)
              for _, x0, y0, x1, y1 in planted]
    assert len(planted) == 13 and sum(across) >= 3
    rgb = cv2.cvtColor(scene, cv2.COLOR_BGR2RGB)
    per_tile = Pipeline(lambda i: OrtBackend(str(student_onnx)), load_meta(student_onnx), NmsConfig(conf=conf))
    pieces = sum(len(d) for d in per_tile.run(tile_frames([Frame(rgb)], tile, overlap)))
    assert pieces > len(planted) + 5  # unmerged, the tiles report many objects twice or more

    # one to one: each planted object is matched by one detection of its class, and nothing else is reported
    names = load_meta(student_onnx).names
    for cls, *box in planted:
        hits = [d for d in found if _iou(box, d["box"]) >= 0.5]
        assert len(hits) == 1, (box, hits)
        assert hits[0]["class"] == cls and hits[0]["name"] == names[cls]
    assert len(found) == len(planted)


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
    assert data["identical"] is True and data["batched_ms"] > 0 and data["reference_ms"] > 0
    assert set(data) >= {"batched_ms", "reference_ms", "speedup", "identical"}
    assert (data["nc"], data["imgsz"], data["objects"], data["int8"]) == (15, 320, 30, False) and data["detections"] > 0
    # how much faster is measured by `studio bench`, not claimed here: the speedup is the ratio of the two times
    assert data["speedup"] == pytest.approx(data["reference_ms"] / data["batched_ms"], rel=0.01, abs=0.06)


def test_bench_pipeline_json(cli, tiny_onnx):
    result = cli("bench", "pipeline", tiny_onnx, "--workers", "1,2", "--frames", 12, "--json")
    assert result.exit_code == 0, result.stderr
    runs = json.loads(result.stdout)["runs"]
    assert [r["workers"] for r in runs] == [1, 2] and all(r["in_order"] for r in runs)
    assert runs[0]["speedup"] == 1.0 and runs[1]["fps"] > 0
