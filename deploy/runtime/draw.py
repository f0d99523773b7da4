"""Draw detections on a frame for people to look at (saved images, video, the live panel)."""
from typing import Optional

import numpy as np

from deploy.runtime.detections import Detections
from deploy.runtime.rotated import corners


def class_color(cls: int) -> tuple:
    """A stable, distinct RGB colour per class."""
    hue = (cls * 0.618034) % 1.0
    i, f = int(hue * 6), hue * 6 - int(hue * 6)
    q, t = int(255 * (1 - f)), int(255 * f)
    return [(255, t, 0), (q, 255, 0), (0, 255, t), (0, q, 255), (t, 0, 255), (255, 0, q)][i % 6]


def draw_detections(rgb: np.ndarray, dets: Detections, names: Optional[list[str]] = None,
                    scores: bool = True) -> np.ndarray:
    """A BGR copy of an RGB frame with each box (oriented boxes as turned rectangles) and its class (and score)
    (needs OpenCV)."""
    import cv2

    canvas = np.ascontiguousarray(rgb[..., ::-1])
    thickness = max(1, round(max(canvas.shape[:2]) / 600))
    text = len(dets) <= 80  # a crowded scene reads better with boxes alone (the table lists them)
    quads = None if dets.rboxes is None else np.round(corners(dets.rboxes) * 4).astype(np.int32)
    for k, (box, score, cls) in enumerate(zip(dets.boxes, dets.scores, dets.classes)):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        r, g, b = class_color(int(cls))
        if quads is None:
            cv2.rectangle(canvas, (x1, y1), (x2, y2), (b, g, r), thickness)
        else:  # the oriented box itself, with 2 fractional bits for smooth edges
            cv2.polylines(canvas, [quads[k]], True, (b, g, r), thickness, cv2.LINE_AA, shift=2)
            x1, y1 = (int(v) for v in (quads[k] // 4).min(0))
        if not text:
            continue
        label = f"{names[cls] if names and cls < len(names) else cls}" + (f" {score:.2f}" if scores else "")
        cv2.putText(canvas, label, (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35 * thickness,
                    (b, g, r), thickness, cv2.LINE_AA)
    return canvas
