"""Labels of objects cut by a window (an image border, a tile edge), oriented or axis-aligned, as YOLO text.

An object cut by the window keeps its label when at least `min_visible` of its area is inside;
its oriented label becomes the minimum-area rectangle of the visible part (corners kept within
the window), its axis-aligned label the box around the visible part. Smaller remnants are
dropped: a sliver of a ship teaches a detector nothing and cannot be asked of it in evaluation.
"""
from __future__ import annotations

import numpy as np

from deploy.runtime.rotated import clip_polygon, corners, from_polygon, polygon_area

MIN_VISIBLE = 0.5  # the share of an object's area that must be inside the window (image or tile)
WHOLE = 1 - 1e-6


def visible_part(poly: np.ndarray, x0: float, y0: float, x1: float, y1: float,
                 min_visible: float = MIN_VISIBLE) -> np.ndarray | None:
    """The polygon's part inside the window, or None when less than `min_visible` of its area is there."""
    area = polygon_area(poly)
    part = clip_polygon(poly, x0, y0, x1, y1)
    if area <= 0 or len(part) < 3 or polygon_area(part) < min_visible * area:
        return None
    return part


def oriented_corners(poly: np.ndarray, x0: float, y0: float, x1: float, y1: float,
                     min_visible: float = MIN_VISIBLE) -> np.ndarray | None:
    """(4, 2) corners of the object's oriented label in the window, or None when too little is visible."""
    part = visible_part(poly, x0, y0, x1, y1, min_visible)
    if part is None:
        return None
    if polygon_area(part) >= WHOLE * polygon_area(poly) and len(poly) == 4:
        return np.asarray(poly, np.float64)
    rect = corners(from_polygon(part))[0]
    return np.clip(rect, [x0, y0], [x1, y1])


def upright_box(poly: np.ndarray, x0: float, y0: float, x1: float, y1: float,
                min_visible: float = MIN_VISIBLE) -> tuple[float, float, float, float] | None:
    """The axis-aligned xyxy box around the object's visible part, or None when too little is visible."""
    part = visible_part(poly, x0, y0, x1, y1, min_visible)
    if part is None:
        return None
    lo, hi = part.min(0), part.max(0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def obb_row(cls: int, quad: np.ndarray, ox: float, oy: float, w: float, h: float) -> list[float]:
    """[class, x1, y1, ..., x4, y4] normalized to a w x h image whose origin is (ox, oy)."""
    q = (np.asarray(quad, np.float64) - [ox, oy]) / [w, h]
    return [cls, *np.clip(q, 0, 1).reshape(-1).tolist()]


def box_row(cls: int, box, ox: float, oy: float, w: float, h: float) -> list[float]:
    """[class, cx, cy, bw, bh] normalized, from a pixel xyxy box in a w x h image whose origin is (ox, oy)."""
    x0, y0, x1, y1 = box[0] - ox, box[1] - oy, box[2] - ox, box[3] - oy
    return [cls, (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h]


def label_text(rows: list[list[float]]) -> str:
    """YOLO label lines: the class as an integer, then the coordinates to six decimals."""
    return "".join(f"{int(r[0])} " + " ".join(f"{v:.6f}" for v in r[1:]) + "\n" for r in rows)
