"""`studio bench why-obb`: both models on one held-back split of one dataset written twice, recall over all objects
and over turned ones; datasets that do not label the same objects, or models in the wrong order, are refused."""
from __future__ import annotations

import json

from studio.core.data.synth import SynthConfig, generate


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
    other = generate(SynthConfig(tmp_path / "other", task="detect", seed=7, **kw))
    refused = cli("bench", "why-obb", obb_pt, detector_pt, "--obb-data", oriented, "--detect-data", other,
                  "--split", "val", "--imgsz", 96)
    assert refused.exit_code == 2 and "do not label the same objects" in refused.stderr
    swapped = cli("bench", "why-obb", detector_pt, obb_pt, "--obb-data", oriented, "--detect-data", upright,
                  "--split", "val", "--imgsz", 96)
    assert swapped.exit_code == 2 and "labelled with" in swapped.stderr
