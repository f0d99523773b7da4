"""Pictures of a dataset for people: an image with its labels drawn in class colours."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deploy.runtime.detections import Detections
from deploy.runtime.draw import draw_detections
from studio.core.data.formats import labels_in_pixels


def labelled_image(image: Path, names: list[str]) -> tuple[np.ndarray, int]:
    """(H, W, 3) RGB with the YOLO labels of `image` drawn, and how many objects it has."""
    import cv2

    bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{image}: not a readable image")
    h, w = bgr.shape[:2]
    rows = labels_in_pixels(image, w, h, len(names))
    boxes = np.array([r[1:] for r in rows], np.float32).reshape(-1, 4)
    dets = Detections(boxes, np.ones(len(rows), np.float32), np.array([r[0] for r in rows], np.int32))
    drawn = draw_detections(bgr[..., ::-1], dets, names, scores=False)
    return np.ascontiguousarray(drawn[..., ::-1]), len(rows)
