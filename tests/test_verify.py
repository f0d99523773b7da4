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
