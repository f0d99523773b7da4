"""`studio bench why-obb`: both models on one held-back split of one dataset written twice, recall over all objects
and over turned ones; datasets that do not label the same objects, or models in the wrong order, are refused."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from studio.core.data.synth import SynthConfig, generate
from studio.core.why_obb import crowding_of


def test_why_obb_compares_recall_on_the_same_objects(cli, obb_pt, detector_pt, tmp_path):
    kw = dict(images=12, size=160, generator="dense-1")
    oriented = generate(SynthConfig(tmp_path / "obb", task="obb", **kw))
    upright = generate(SynthConfig(tmp_path / "det", task="detect", **kw))
    result = cli("bench", "why-obb", obb_pt, detector_pt, "--obb-data", oriented, "--detect-data", upright,
                 "--split", "val", "--imgsz", 96, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["objects"] > 10 and 0 < report["objects_turned"] < report["objects"]
    for name in ("obb", "detect"):
        assert 0 <= report[name]["recall"] <= 1 and report[name]["recall_turned"] is not None
    assert report["recall_gain_points"] == round(100 * (report["obb"]["recall"] - report["detect"]["recall"]), 2)
    assert sum(row["objects"] for row in report["crowding"]) == report["objects"]
    assert report["nms_iou"] == 0.7
    other = generate(SynthConfig(tmp_path / "other", task="detect", seed=7, **kw))
    refused = cli("bench", "why-obb", obb_pt, detector_pt, "--obb-data", oriented, "--detect-data", other,
                  "--split", "val", "--imgsz", 96)
    assert refused.exit_code == 2 and "do not label the same objects" in refused.stderr
    swapped = cli("bench", "why-obb", detector_pt, obb_pt, "--obb-data", oriented, "--detect-data", upright,
                  "--split", "val", "--imgsz", 96)
    assert swapped.exit_code == 2 and "labelled with" in swapped.stderr


@pytest.mark.parametrize("aspect, expected", [(4, 0.4706), (10, 0.7042)])
def test_crowding_of_touching_rectangles_at_45_degrees(aspect, expected):
    """Side by side at 45 degrees, touching: upright boxes overlap (s - d)^2 / (2 s^2 - (s - d)^2) with
    s = (a + 1) / sqrt 2, d = 1 / sqrt 2; a third rectangle far away is alone."""
    step = np.array([-1, 1]) / math.sqrt(2)  # one width across the long side
    rboxes = np.array([[50, 50, aspect, 1, math.pi / 4], [50 + step[0], 50 + step[1], aspect, 1, math.pi / 4],
                       [500, 500, aspect, 1, 0.3]], np.float32)
    crowding = crowding_of(rboxes)
    assert crowding[:2] == pytest.approx([expected, expected], abs=2e-4) and crowding[2] == 0
    assert crowding_of(rboxes[:1]).tolist() == [0.0]
