"""Box decoding against oracles that share none of its code: ultralytics' own decode, and the standard layout."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from deploy.convert.onnx_export import export_onnx
from deploy.runtime.decode import anchor_grid, decode_dfl
from deploy.runtime.postprocess import NmsConfig, postprocess_split, postprocess_standard
from tests.conftest import make_detector

REG_MAX = 16


def ultralytics_decode(levels: list[torch.Tensor], strides: list[int]) -> torch.Tensor:
    """(A, 4) xyxy input pixels as ultralytics' Detect head decodes (B=1, 4*reg_max, h, w) box outputs."""
    from ultralytics.nn.modules.block import DFL
    from ultralytics.utils.tal import dist2bbox, make_anchors

    anchors, stride_tensor = make_anchors(levels, torch.tensor(strides, dtype=torch.float32), 0.5)
    dist = torch.cat([lv.view(1, 4 * REG_MAX, -1) for lv in levels], 2)  # (1, 64, A)
    boxes = dist2bbox(DFL(REG_MAX)(dist), anchors.T.unsqueeze(0), xywh=False, dim=1) * stride_tensor.T
    return boxes[0].T  # (A, 4)


@pytest.mark.parametrize("hw", [[(40, 40), (20, 20), (10, 10)], [(6, 10), (3, 5), (2, 3)]])
def test_every_anchor_decodes_as_ultralytics_decodes(hw):
    """Anchor centres, DFL expectation and ltrb -> xyxy agree with ultralytics on square and non-square grids."""
    strides = [8, 16, 32]
    gen = torch.Generator().manual_seed(len(hw[0]) + hw[0][1])
    levels = [torch.randn(1, 4 * REG_MAX, h, w, generator=gen) * 3 for h, w in hw]
    want = ultralytics_decode(levels, strides).numpy()
    centres, anchor_strides = anchor_grid(hw, strides)
    dist = np.concatenate([lv[0].reshape(4 * REG_MAX, -1).T.numpy() for lv in levels])  # (A, 64)
    got = decode_dfl(dist, centres, anchor_strides)
    assert got.shape == want.shape == (sum(h * w for h, w in hw), 4)
    np.testing.assert_allclose(got, want, atol=2e-4, rtol=0)


def test_postprocessed_boxes_are_ultralytics_boxes_at_their_anchors():
    """The batched post-processor's detections carry the box ultralytics decodes at the same anchor."""
    strides, hw, nc = [8, 16, 32], [(24, 16), (12, 8), (6, 4)], 3
    gen = torch.Generator().manual_seed(7)
    boxes = [torch.randn(1, 4 * REG_MAX, h, w, generator=gen) * 3 for h, w in hw]
    scores = [torch.rand(1, nc, h, w, generator=gen) ** 4 for h, w in hw]
    outputs = [t.numpy() for pair in zip(boxes, scores) for t in pair]
    found = postprocess_split(outputs, strides, NmsConfig(conf=0.3, iou=0.9))[0]
    assert len(found) > 20
    want = ultralytics_decode(boxes, strides).numpy()
    np.testing.assert_allclose(found.boxes, want[found.anchors], atol=2e-4, rtol=0)


@pytest.fixture(scope="module")
def both_layouts(tmp_path_factory):
    """The same tiny detector exported in the rknn-split and the standard layout, and their outputs on one image."""
    folder = tmp_path_factory.mktemp("layouts")
    model = make_detector(seed=3)
    image = np.random.default_rng(5).random((1, 3, 160, 160), dtype=np.float32)
    outputs = {}
    for layout in ("rknn-split", "standard"):
        path = folder / f"{layout}.onnx"
        export_onnx(model, path, 160, layout)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outputs[layout] = session.run(None, {"images": image})
    return outputs


@pytest.mark.parametrize("cfg", [NmsConfig(conf=0.25), NmsConfig(conf=0.05, iou=0.7, multi_label=True)])
def test_split_layout_finds_what_the_standard_layout_finds(both_layouts, cfg):
    """Our DFL decode of the split outputs gives the detections ultralytics' in-graph decode gives."""
    split = postprocess_split(both_layouts["rknn-split"], [8, 16, 32], cfg)[0]
    standard = postprocess_standard(both_layouts["standard"][0], cfg)[0]
    assert len(split) > 10
    np.testing.assert_array_equal(split.anchors, standard.anchors)
    np.testing.assert_array_equal(split.classes, standard.classes)
    np.testing.assert_allclose(split.scores, standard.scores, atol=1e-5, rtol=0)
    np.testing.assert_allclose(split.boxes, standard.boxes, atol=2e-3, rtol=0)


def test_anchor_grid_gives_literal_float32_centres_and_strides():
    """A 2x3 level at stride 8 then a 1x1 level at stride 16: centres (x + 0.5, y + 0.5) row by row, in float32."""
    centres, strides = anchor_grid([(2, 3), (1, 1)], [8, 16])
    assert centres.dtype == np.float32 and strides.dtype == np.float32
    np.testing.assert_array_equal(centres, [[0.5, 0.5], [1.5, 0.5], [2.5, 0.5], [0.5, 1.5], [1.5, 1.5], [2.5, 1.5],
                                            [0.5, 0.5]])
    np.testing.assert_array_equal(strides, [8, 8, 8, 8, 8, 8, 16])


def test_dfl_decodes_huge_logits_side_by_side_with_small_ones():
    """Each side's softmax is shifted by its own maximum: a side at logit 1000 and a side near 0 both decode."""
    dist = np.zeros((1, 4, 4), np.float32)  # reg_max 4
    dist[0, 0, 3] = 1000.0  # left: all mass on bin 3
    dist[0, 1, 1] = 900.0   # top: all mass on bin 1
    # right: weights (1, 1, 3, 1) -> expectation (0 * 1 + 1 * 1 + 2 * 3 + 3 * 1) / 6 = 5/3
    dist[0, 2] = [0.0, 0.0, np.log(3.0), 0.0]
    # bottom: flat -> expectation 1.5
    boxes = decode_dfl(dist.reshape(1, 16), np.array([[10.0, 10.0]], np.float32), np.array([2.0], np.float32))
    assert boxes.dtype == np.float32
    np.testing.assert_allclose(boxes, [[(10 - 3) * 2, (10 - 1) * 2, (10 + 5 / 3) * 2, (10 + 1.5) * 2]], rtol=1e-6)


def test_iou_of_sub_pixel_and_side_by_side_boxes():
    """IoU is exact for boxes smaller than a pixel, and 0 for boxes that share a y range but not an x range."""
    from deploy.runtime.decode import box_areas, iou_one_to_many

    box = np.array([0.0, 0.0, 0.5, 0.5])
    others = np.array([[0.0, 0.0, 0.5, 0.5], [0.25, 0.0, 0.75, 0.5], [0.6, 0.0, 1.0, 0.5]])
    # identical: 1; half overlapping in x: 0.125 / (0.25 + 0.25 - 0.125) = 1/3; apart in x: 0
    np.testing.assert_allclose(iou_one_to_many(box, 0.25, others, box_areas(others)), [1.0, 1 / 3, 0.0])


def test_int8_threshold_is_the_first_level_at_or_above_the_confidence():
    """With scale 1/256 and zero point -128, q means (q + 128) / 256: conf 0.5 is met exactly at q = 0."""
    from deploy.runtime.decode import int8_threshold

    assert int8_threshold(0.5, 1 / 256, -128) == 0          # exactly equal counts as above
    assert int8_threshold(0.5 + 1e-4, 1 / 256, -128) == 1
    assert int8_threshold(-1.0, 1 / 256, -128) == -128      # every level passes
    assert int8_threshold(2.0, 1 / 256, -128) == 128        # none does: a threshold above every int8 value


def test_logit_of_certainty_is_finite():
    """conf 1.0 (keep only certain boxes) becomes logit(1 - 1e-7) = ln(1e7 - 1), not a division by zero."""
    from deploy.runtime.decode import logit

    assert float(logit(1.0)) == pytest.approx(np.log(1e7 - 1), rel=1e-5)
    assert float(logit(0.5)) == 0.0
