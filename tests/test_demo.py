"""The demo end to end at toy size: data, (fallback) training, RKNN export with a report; reruns reuse training."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import studio.core.demo as demo_module

pytestmark = pytest.mark.slow


def test_demo_without_bundled_model_trains_once_and_exports(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(demo_module, "BUNDLED_STUDENT", tmp_path / "absent.pt")
    monkeypatch.setattr(demo_module, "SAMPLE_SCENE", tmp_path / "absent.jpg")
    args = ("demo", "--out", tmp_path / "demo", "--images", 10, "--imgsz", 64, "--epochs", 1, "--json")
    first = cli(*args)
    assert first.exit_code == 0, first.stderr
    data = json.loads(first.stdout)
    assert Path(data["data"]).is_file() and Path(data["model"]["best"]).is_file()
    for key in ("onnx", "rknn", "metadata", "report"):
        assert Path(data["export"][key]).is_file(), key
    meta = json.loads(Path(data["export"]["metadata"]).read_text())
    assert meta["names"] == ["vehicle", "storage-tank", "plane", "ship"] and meta["imgsz"] == 64
    best_mtime = Path(data["model"]["best"]).stat().st_mtime

    second = cli(*args)
    assert second.exit_code == 0, second.stderr
    assert json.loads(second.stdout)["model"] == data["model"]
    assert Path(data["model"]["best"]).stat().st_mtime == best_mtime  # not retrained
