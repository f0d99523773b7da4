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
from tests.conftest import coloured_near


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


def _edge_midpoints(rbox) -> np.ndarray:
    """(4, 2) the midpoints of a turned rectangle's sides."""
    from deploy.runtime.rotated import corners

    quad = corners(np.array([rbox], np.float32))[0]
    return (quad + np.roll(quad, -1, axis=0)) / 2


def test_the_live_panel_draws_turned_boxes_and_lists_their_angles(window, qtbot, obb_student_onnx, tmp_path):
    """The last box drawn (the lowest score; nothing is drawn over it) is turned: the midpoints of its turned sides,
    read back from the table, carry its class colour in the picture on screen."""
    import cv2

    from deploy.runtime.draw import class_color
    from studio.core.demo import DENSE_SCENE

    crop = tmp_path / "parking.png"  # 320 px of the dense scene: the model's own size, objects at their scale
    cv2.imwrite(str(crop), cv2.imread(str(DENSE_SCENE))[400:720, 400:720])
    page = window.page("Live")
    page.model.setText(str(obb_student_onnx))
    page.source.setText(str(crop))
    page.conf[0].setValue(40)
    page.start()
    qtbot.waitUntil(lambda: page.frames_shown >= 1 or window.last_error is not None, timeout=60000)
    page.stop()
    assert window.last_error is None, window.last_error.text()
    rows = page.table.rowCount()
    assert rows > 0
    last = page.table.item(rows - 1, 2).text()
    assert last.endswith("\N{DEGREE SIGN}")
    cx, cy, w, h, degrees = (float(v) for v in last.rstrip("\N{DEGREE SIGN}").split(","))
    cls = page.names.index(page.table.item(rows - 1, 0).text())
    image = page.view._pixmap.toImage()
    rgb = np.array([[image.pixelColor(x, y).getRgb()[:3] for x in range(image.width())] for y in range(image.height())])
    sides = _edge_midpoints([cx, cy, w, h, np.radians(degrees)])
    inside = [p for p in sides if 0 <= p[0] < rgb.shape[1] and 0 <= p[1] < rgb.shape[0]]
    assert inside and sum(coloured_near(rgb, p, class_color(cls)) for p in inside) >= len(inside) - 1


def test_the_deploy_page_takes_an_obb_model(window, obb_onnx):
    deploy = window.page("Deploy")
    deploy.model.setText(str(obb_onnx))
    assert deploy._need_model() and window.last_error is None
