"""The full-budget rule: a stage is flat when its best val mAP50-95 rose by less than 0.3 points over its last 10
epochs; read from the studio loop's history or an ultralytics run's results.csv, and shown in the compress report."""
from __future__ import annotations

from studio.core.compress.int8_report import _gain
from studio.core.convergence import convergence, late_gain, results_csv_maps


def test_the_gain_is_the_best_of_the_last_ten_over_the_best_before_them():
    rising = [0.5 + 0.01 * k for k in range(20)]
    assert late_gain(rising) == 0.1 and convergence(rising)["flat"] is False
    flat = [0.5 + 0.01 * k for k in range(10)] + [0.59, 0.591, 0.588, 0.592, 0.59, 0.589, 0.591, 0.592, 0.59, 0.591]
    assert late_gain(flat) == 0.002 and convergence(flat) == {"epochs": 20, "gain_last_10": 0.002, "flat": True}
    peaked = [0.6] * 5 + [0.55] * 10  # worse since: no gain, flat
    assert late_gain(peaked) == 0.0 and convergence(peaked)["flat"]
    assert convergence([0.5] * 10) == {"epochs": 10, "gain_last_10": None, "flat": None}


def test_an_ultralytics_results_csv_is_read_with_its_padded_headers(tmp_path):
    (tmp_path / "results.csv").write_text("  epoch,  metrics/mAP50(B),  metrics/mAP50-95(B)\n"
                                          "1, 0.6, 0.43319\n2, 0.5, 0.28652\n3, 0.7, 0.52708\n")
    assert results_csv_maps(tmp_path) == [0.43319, 0.28652, 0.52708]
    assert results_csv_maps(tmp_path / "none") == []


def test_the_report_says_flat_rising_or_too_short():
    assert _gain({"epochs": 20, "gain_last_10": 0.002, "flat": True}) == "+0.20 points (flat)"
    assert _gain({"epochs": 20, "gain_last_10": 0.015, "flat": False}) == "+1.50 points (still rising)"
    assert _gain({"epochs": 3, "gain_last_10": None, "flat": None}) == "- (3 epochs: too short to tell)"
