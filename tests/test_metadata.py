"""The sidecar round-trips, refuses other schema versions, and is written atomically."""
from __future__ import annotations

import json

import pytest

from deploy.runtime.metadata import BuildOptions, ModelMeta, OutputQuant, load_meta, save_meta, sidecar_path


def test_sidecar_round_trip(tmp_path):
    meta = ModelMeta(format="rknn", names=["a", "b"], imgsz=512, layout="rknn-split", outputs=["box0", "cls0"],
                     build=BuildOptions("rk3588", "int8", "normal", ["x.png"]),
                     quantization=[OutputQuant("box0", "int8", 0.05, -128)])
    path = save_meta(tmp_path / "m.rknn", meta)
    assert path == tmp_path / "m.rknn.json" == sidecar_path(tmp_path / "m.rknn")
    assert load_meta(tmp_path / "m.rknn") == meta
    assert [p.name for p in tmp_path.iterdir()] == ["m.rknn.json"]  # no temp file left


def test_unknown_schema_version_is_refused(tmp_path):
    (tmp_path / "m.onnx.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(ValueError, match="schema version 99"):
        load_meta(tmp_path / "m.onnx")


def test_missing_sidecar_is_named(tmp_path):
    with pytest.raises(ValueError, match="m.onnx.json is missing"):
        load_meta(tmp_path / "m.onnx")
