"""Oriented-box models: export to ONNX and RKNN (split layout with angle outputs, sidecar task obb), decoded by the
studio's runtime exactly as ultralytics decodes the torch model, verified with rotated IoU; the live views, the
deploy page and the board agent take them and draw turned boxes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ultralytics.utils.nms import non_max_suppression
from ultralytics.utils.ops import regularize_rboxes

from deploy.runtime.backends import OrtBackend
from deploy.runtime.metadata import read_model_meta
from deploy.runtime.postprocess import NmsConfig
from deploy.runtime.postprocess_obb import postprocess_obb_split
from studio.core.models import load_detector


def test_onnx_export_writes_angle_outputs_and_task(cli, obb_pt, obb_onnx):
    meta = read_model_meta(obb_onnx)
    assert meta.task == "obb" and meta.layout == "rknn-split" and meta.strides == [8, 16, 32]
    assert meta.outputs == [f"{k}{i}" for i in range(3) for k in ("box", "cls", "angle")]
    for model in (obb_pt, obb_onnx):
        assert json.loads(cli("models", "inspect", model, "--json").stdout)["task"] == "obb"


def test_the_runtime_decodes_the_onnx_as_ultralytics_decodes_the_model(obb_pt, obb_onnx, calib_dir):
    """Same input: our post-processing of the exported outputs gives ultralytics' own OBB detections."""
    import cv2

    from deploy.runtime.preprocess import letterbox, to_nchw_float

    model, _ = load_detector(str(obb_pt))
    meta = read_model_meta(obb_onnx)
    cfg = NmsConfig(conf=0.6, iou=0.95, max_det=300)
    image = cv2.cvtColor(cv2.imread(str(sorted(calib_dir.iterdir())[0])), cv2.COLOR_BGR2RGB)
    tensor = to_nchw_float(letterbox(image, 96)[0])
    with torch.no_grad():
        preds = model(torch.from_numpy(tensor))[0]
    theirs = non_max_suppression(preds, cfg.conf, cfg.iou, nc=len(meta.names), rotated=True)[0]
    theirs = torch.cat([regularize_rboxes(torch.cat([theirs[:, :4], theirs[:, -1:]], 1)), theirs[:, 4:6]], 1).numpy()
    outputs = OrtBackend(str(obb_onnx)).infer(tensor)
    ours = postprocess_obb_split(outputs, meta.strides, cfg, logits=meta.class_scores == "logits")[0]
    assert 5 <= len(ours) == len(theirs)  # an untrained head: plenty of confident boxes
    mine = np.concatenate([ours.rboxes, ours.scores[:, None], ours.classes[:, None]], 1)
    # an untrained head saturates many scores at one value: compare as sets, rows in one canonical order
    mine, theirs = (rows[np.lexsort(np.round(rows, 2).T[::-1])] for rows in (mine, theirs))
    np.testing.assert_allclose(mine[:, 5], theirs[:, 5], atol=1e-4)
    np.testing.assert_array_equal(mine[:, 6], theirs[:, 6])
    np.testing.assert_allclose(mine[:, :4], theirs[:, :4], atol=0.05)
    np.testing.assert_allclose(mine[:, 4], theirs[:, 4], atol=1e-3)


def test_standard_layout_is_refused_for_oriented_boxes(cli, obb_pt, tmp_path):
    result = cli("export", obb_pt, "--layout", "standard", "--imgsz", 96, "--out", tmp_path / "s.onnx")
    assert result.exit_code == 2 and "rknn-split layout only" in result.stderr


@pytest.mark.slow  # one rknn-toolkit2 build with the simulator
def test_int8_rknn_export_verifies_with_rotated_iou(cli, obb_onnx, calib_dir, tmp_path):
    out = tmp_path / "obb.rknn"
    result = cli("export", obb_onnx, "--format", "rknn", "--quant", "int8", "--calib", calib_dir, "--report",
                 "--report-count", 2, "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert [o["name"] for o in report["outputs"]] == read_model_meta(obb_onnx).outputs
    assert report["detections"]["reference"] > 0 and 0 <= report["detections"]["agreement"] <= 1
    meta = read_model_meta(out)
    assert meta.task == "obb" and [q.name for q in meta.quantization] == meta.outputs
    angle = meta.quantization[2]
    assert angle.dtype == "int8" and angle.scale * 255 < 3.2  # at most half a turn over 256 steps


def test_the_deploy_page_takes_an_obb_model(window, obb_onnx):
    deploy = window.page("Deploy")
    deploy.model.setText(str(obb_onnx))
    assert deploy._need_model() and window.last_error is None
