"""ONNX export in both layouts reproduces torch, and writes the sidecar the runtime relies on."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from deploy.convert.onnx_export import export_onnx, torch_outputs
from tests.conftest import NAMES, make_detector


@pytest.mark.parametrize("layout", ["rknn-split", "standard"])
def test_onnx_runtime_matches_torch(tmp_path, layout):
    model = make_detector()
    path = tmp_path / "m.onnx"
    names = export_onnx(model, path, 160, layout)
    x = torch.rand(2, 3, 160, 160, generator=torch.Generator().manual_seed(1))
    ref = torch_outputs(model, x, layout)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for i in range(2):  # one image at a time: the exported batch is 1
        outs = session.run(None, {"images": x[i : i + 1].numpy()})
        assert [o.name for o in session.get_outputs()] == names
        for r, o in zip(ref, outs):
            np.testing.assert_allclose(o, r[i : i + 1].numpy(), atol=1e-4, rtol=0)


def test_split_layout_shapes_per_scale(tmp_path):
    model = make_detector()
    path = tmp_path / "m.onnx"
    export_onnx(model, path, 160, "rknn-split")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shapes = [tuple(o.shape) for o in session.get_outputs()]
    assert shapes == [(1, 64, 20, 20), (1, 4, 20, 20), (1, 64, 10, 10), (1, 4, 10, 10), (1, 64, 5, 5), (1, 4, 5, 5)]
    scores = session.run(None, {"images": np.zeros((1, 3, 160, 160), np.float32)})[1]
    assert scores.min() >= 0 and scores.max() <= 1  # sigmoid applied in the graph


def test_logit_class_outputs_are_the_sigmoid_ones_before_the_sigmoid(tmp_path):
    model = make_detector()
    probs, logits = tmp_path / "p.onnx", tmp_path / "l.onnx"
    export_onnx(model, probs, 96, "rknn-split", "sigmoid")
    export_onnx(model, logits, 96, "rknn-split", "logits")
    x = {"images": np.random.default_rng(0).random((1, 3, 96, 96), dtype=np.float32)}
    p_out = ort.InferenceSession(str(probs), providers=["CPUExecutionProvider"]).run(None, x)
    l_out = ort.InferenceSession(str(logits), providers=["CPUExecutionProvider"]).run(None, x)
    for i in range(0, 6, 2):
        np.testing.assert_array_equal(p_out[i], l_out[i])  # box outputs untouched
        np.testing.assert_allclose(1 / (1 + np.exp(-l_out[i + 1])), p_out[i + 1], atol=1e-6)
    assert l_out[1].min() < 0  # logits, not probabilities


def test_standard_layout_single_output(tmp_path):
    path = tmp_path / "m.onnx"
    export_onnx(make_detector(), path, 160, "standard")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [tuple(o.shape) for o in session.get_outputs()] == [(1, 4 + len(NAMES), 400 + 100 + 25)]


def test_cli_onnx_export_writes_sidecar(cli, detector_pt, tmp_path):
    out = tmp_path / "exports" / "tiny.onnx"
    result = cli("export", detector_pt, "--format", "onnx", "--imgsz", 160, "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["onnx"] == str(out) and data["rknn"] is None
    meta = json.loads((tmp_path / "exports" / "tiny.onnx.json").read_text())
    assert meta["schema_version"] == 1
    assert meta["names"] == NAMES and meta["imgsz"] == 160 and meta["layout"] == "rknn-split"
    assert meta["class_scores"] == "logits"  # the default: int8 keeps low class scores
    assert meta["outputs"] == ["box0", "cls0", "box1", "cls1", "box2", "cls2"]
    assert meta["strides"] == [8, 16, 32] and meta["reg_max"] == 16
    assert meta["preprocess"]["std"] == [255.0] * 3 and meta["preprocess"]["channel_order"] == "RGB"
    assert len(meta["provenance"]["source_sha256"]) == 64
    assert meta["provenance"]["tools"]["torch"].startswith("2.")
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging left behind
