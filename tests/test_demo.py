"""The demo pipeline end to end at toy size: data, training, RKNN export with a report; reruns reuse training."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_writes_every_artifact_and_reuses_its_training(cli, tmp_path):
    args = ("demo", "--out", tmp_path, "--images", 10, "--imgsz", 64, "--epochs", 1, "--json")
    first = cli(*args)
    assert first.exit_code == 0, first.stderr
    data = json.loads(first.stdout)
    assert Path(data["data"]).is_file() and Path(data["training"]["best"]).is_file()
    for key in ("onnx", "rknn", "metadata", "report"):
        assert Path(data["export"][key]).is_file(), key
    meta = json.loads(Path(data["export"]["metadata"]).read_text())
    assert meta["names"] == ["vehicle", "storage-tank", "plane", "ship"] and meta["imgsz"] == 64
    best_mtime = Path(data["training"]["best"]).stat().st_mtime

    second = cli(*args)
    assert second.exit_code == 0, second.stderr
    assert json.loads(second.stdout)["training"] == data["training"]
    assert Path(data["training"]["best"]).stat().st_mtime == best_mtime  # not retrained
