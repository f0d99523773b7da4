"""Recall at the working threshold: each label found at most once, by a detection of its class above conf whose
overlap (turned or upright) reaches 0.5."""
from __future__ import annotations

import numpy as np

from studio.core.recall import found_labels, recall_summary


def test_oriented_labels_are_found_once_by_a_close_enough_confident_detection():
    labels = np.array([[50, 50, 40, 10, 0.5], [120, 50, 40, 10, 1.2], [200, 80, 30, 30, 0.0]], np.float32)
    classes = np.array([0, 0, 1])
    preds = np.array([[50, 50, 40, 10, 0.5], [51, 50, 40, 10, 0.5],  # both on the first: one match only
                      [120, 50, 40, 10, 1.2 + 0.6],  # turned 34 degrees away: IoU below 0.5
                      [200, 80, 30, 30, 0.0]], np.float32)  # right place, wrong class
    scores = np.array([0.9, 0.8, 0.9, 0.9], np.float32)
    found = found_labels(labels, classes, preds, scores, np.array([0, 0, 0, 0]), oriented=True)
    assert found.tolist() == [True, False, False]
    turned_back = preds.copy()
    turned_back[2, 4] = 1.25
    found = found_labels(labels, classes, turned_back, scores, np.array([0, 0, 0, 1]), oriented=True)
    assert found.tolist() == [True, True, True]
    quiet = found_labels(labels, classes, turned_back, np.full(4, 0.2, np.float32), np.array([0, 0, 0, 1]), True)
    assert not quiet.any()  # below conf 0.25
    assert recall_summary([found, quiet])["recall"] == 0.5


def test_upright_labels_match_by_box_iou():
    labels = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)
    preds = np.array([[0, 0, 10, 5.1], [20, 0, 30, 4.9]], np.float32)  # IoU 0.51 and 0.49
    found = found_labels(labels, np.array([0, 0]), preds, np.array([0.5, 0.5], np.float32), np.array([0, 0]), False)
    assert found.tolist() == [True, False]
