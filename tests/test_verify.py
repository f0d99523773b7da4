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
