"""Pictures of a dataset for people: an image with its labels drawn in class colours (oriented ones turned)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deploy.runtime.detections import Detections
from deploy.runtime.draw import draw_detections
from deploy.runtime.rotated import enclosing, from_polygon
from studio.core.data.formats import label_path, quad_in_pixels, read_label_rows


def labelled_image(image: Path, names: list[str]) -> tuple[np.ndarray, int]:
    """(H, W, 3) RGB with the YOLO labels of `image` drawn, and how many objects it has."""
    import cv2

    bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{image}: not a readable image")
    h, w = bgr.shape[:2]
    lbl = label_path(image)
    rows = read_label_rows(lbl, len(names)) if lbl.is_file() else []
    rboxes = np.array([from_polygon(np.reshape(quad_in_pixels(v, w, h), (4, 2))) for _, v in rows],
                      np.float32).reshape(-1, 5)
    oriented = any(len(v) == 8 for _, v in rows)
    dets = Detections(enclosing(rboxes), np.ones(len(rows), np.float32), np.array([c for c, _ in rows], np.int32),
                      rboxes=rboxes if oriented else None)
    drawn = draw_detections(bgr[..., ::-1], dets, names, scores=False)
    return np.ascontiguousarray(drawn[..., ::-1]), len(rows)
