"""Verification arithmetic: cosine edge cases and the below-one-int8-step flag."""
from __future__ import annotations

import numpy as np
import pytest

from deploy.convert.verify import cosine, mark_below_resolution, report_markdown


def test_cosine_of_scaled_copy_is_one_and_of_opposite_is_minus_one():
    a = np.random.default_rng(0).normal(size=(1, 4, 8, 8))
    assert cosine(a, 3 * a) == pytest.approx(1.0)
    assert cosine(a, -a) == pytest.approx(-1.0)


def test_cosine_with_zero_tensors():
    z, a = np.zeros(5), np.ones(5)
    assert cosine(z, z) == 1.0
    assert cosine(a, z) == 0.0  # what an int8 output that rounded to zero scores


def _report():
    return {
        "rknn": "m.rknn", "imgsz": 64, "images": ["a.png"], "reference": "ort", "converted": "sim",
        "min_cosine": 0.0, "mean_cosine": 0.6,
        "outputs": [
            {"name": "box0", "min_cosine": 0.999, "mean_cosine": 0.999, "reference_max": 9.5},
            {"name": "cls0", "min_cosine": 0.995, "mean_cosine": 0.996, "reference_max": 0.7},
            {"name": "cls1", "min_cosine": 0.0, "mean_cosine": 0.0, "reference_max": 0.0007},
        ],
    }


def test_outputs_below_half_a_step_are_flagged_and_excluded_from_active_minimum():
    report = _report()
    quant = [{"name": "box0", "dtype": "int8", "scale": 0.08, "zero_point": -15},
             {"name": "cls0", "dtype": "int8", "scale": 1 / 255, "zero_point": -128},
             {"name": "cls1", "dtype": "int8", "scale": 1 / 510, "zero_point": -128}]
    mark_below_resolution(report, quant)
    assert [o["below_int8_step"] for o in report["outputs"]] == [False, False, True]
    assert report["min_cosine"] == 0.0  # the raw minimum stays honest
    assert report["min_cosine_active"] == 0.995
    text = report_markdown(report)
    assert "cls1: every float value is below half an int8 step" in text
    assert "| cls1 | 0.0000 | 0.0000 | 0.0007 (below one step) | 0.00196 |" in text


def test_float_outputs_are_never_flagged():
    report = _report()
    mark_below_resolution(report, [{"name": o["name"], "dtype": "float16"} for o in report["outputs"]])
    assert not any(o["below_int8_step"] for o in report["outputs"])
    assert report["min_cosine_active"] == 0.0
    assert "below half an int8 step" not in report_markdown(report)


def _frame(boxes, classes):
    from deploy.runtime.postprocess import FrameResult

    n = len(boxes)
    return FrameResult(np.array(boxes, np.float32).reshape(-1, 4), np.linspace(0.9, 0.5, n).astype(np.float32),
                       np.array(classes, np.int32), np.arange(n))


def test_detection_matching_needs_same_class_and_iou():
    from deploy.convert.verify import agreement, match_detections

    ref = _frame([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]], [0, 1, 2])
    conv = _frame([[1, 0, 10, 10], [20, 20, 40, 40], [70, 70, 80, 80]], [0, 0, 2])
    assert match_detections(ref, conv) == 1  # only the first: same class and IoU 0.9
    assert agreement(3, 3, 1)["agreement"] == pytest.approx(1 / 3, abs=1e-4)
    assert agreement(0, 0, 0)["agreement"] == 1.0


def test_each_reference_detection_pairs_once():
    from deploy.convert.verify import match_detections

    ref = _frame([[0, 0, 10, 10]], [0])
    twice = _frame([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], [0, 0, 0])
    assert match_detections(ref, twice) == 1  # three copies of one box are one match, not three
    assert match_detections(twice, ref) == 1
    empty = _frame([], [])
    assert match_detections(ref, empty) == 0 and match_detections(empty, ref) == 0


def test_match_iou_threshold_is_inclusive():
    from deploy.convert.verify import MATCH_IOU, match_detections

    ref = _frame([[0, 0, 10, 10]], [1])
    assert MATCH_IOU == 0.5
    assert match_detections(ref, _frame([[0, 0, 10, 5]], [1])) == 1  # IoU 50/100 = 0.5 exactly
    assert match_detections(ref, _frame([[0, 0, 10, 4.9]], [1])) == 0  # IoU 49/100
    assert match_detections(ref, _frame([[0, 0, 10, 4.9]], [1]), min_iou=0.49) == 1


def test_a_detection_takes_its_best_overlapping_reference_not_the_first():
    """A1=[0,10] and A2=[4,14] overlap; b1=[3,13] overlaps A1 at 7/13 but A2 at 9/11, b2=[-1,9] only A1 (9/11)
    well (A2: 5/15). Pairing b1 with the first reference above 0.5 (A1) would leave b2 unmatched."""
    from deploy.convert.verify import match_detections

    ref = _frame([[0, 0, 10, 10], [4, 0, 14, 10]], [0, 0])
    conv = _frame([[3, 0, 13, 10], [-1, 0, 9, 10]], [0, 0])
    assert match_detections(ref, conv) == 2


def test_agreement_is_the_f1_of_the_matches():
    from deploy.convert.verify import agreement

    # 4 reference detections, 2 converted, both matched: precision 1, recall 1/2, F1 = 2PR / (P + R) = 2/3
    det = agreement(4, 2, 2)
    assert det["agreement"] == pytest.approx(2 / 3, abs=1e-4)
    assert (det["reference"], det["converted"], det["matched"]) == (4, 2, 2)
    assert agreement(5, 0, 0)["agreement"] == 0.0  # everything lost is no agreement
    assert agreement(3, 3, 3)["agreement"] == 1.0


def _letterboxed_inputs(calib_dir, imgsz, workdir):
    from deploy.convert.calibration import list_images, prepare_calibration

    images = list_images(calib_dir, 0)
    return images, prepare_calibration(images, imgsz, workdir)[1]


def _ort_outputs(onnx_path, inputs):
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return [session.run(None, {"images": np.load(p).astype(np.float32) / 255}) for p in inputs]


def test_identical_outputs_agree_exactly_and_count_what_the_runtime_detects(tiny_onnx, calib_dir, tmp_path):
    from deploy.convert.calibration import read_rgb
    from deploy.convert.verify import AGREEMENT_CFG, compare_outputs
    from deploy.runtime.backends import OrtBackend
    from deploy.runtime.frame import Frame
    from deploy.runtime.metadata import load_meta
    from deploy.runtime.pipeline import detect

    images, inputs = _letterboxed_inputs(calib_dir, 96, tmp_path)
    report = compare_outputs(tiny_onnx, inputs, _ort_outputs(tiny_onnx, inputs), logits=True)
    assert report["min_cosine"] == report["mean_cosine"] == 1.0
    assert [o["name"] for o in report["outputs"]] == ["box0", "cls0", "box1", "cls1", "box2", "cls2"]
    # the runtime's own path (letterbox, ONNX Runtime, post-processing) on the original images finds as many
    backend, meta = OrtBackend(str(tiny_onnx)), load_meta(tiny_onnx)
    found = sum(len(detect(backend, meta, Frame(read_rgb(p)), AGREEMENT_CFG)) for p in images)
    det = report["detections"]
    assert found > 0 and (det["reference"], det["converted"], det["matched"]) == (found, found, found)
    assert det["agreement"] == 1.0


def test_box_outputs_off_by_a_scale_keep_cosine_but_lose_detections(tiny_onnx, calib_dir, tmp_path):
    """Cosine cannot see a converted box output scaled by a constant (a wrong output scale, say);
    the detections decoded from it move, and the agreement says so."""
    from deploy.convert.verify import compare_outputs

    _, inputs = _letterboxed_inputs(calib_dir, 96, tmp_path)
    faithful = _ort_outputs(tiny_onnx, inputs)
    halved = [[o * 0.5 if k % 2 == 0 else o for k, o in enumerate(frame)] for frame in faithful]
    report = compare_outputs(tiny_onnx, inputs, halved, logits=True)
    assert report["min_cosine"] == pytest.approx(1.0, abs=1e-6)
    det = report["detections"]
    assert det["matched"] < det["reference"] and det["agreement"] < 0.97
