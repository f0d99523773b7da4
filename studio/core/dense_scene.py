"""A planted dense aerial scene, as per-tile detections: the input of the merge benchmark and its test.

Objects sit one per cell of a jittered grid (so no two overlap), with sizes from 12 to 36 px
and distinct scores; beside them, pairs of same-class objects that touch exactly on a tile
seam, the case a merge must not fuse. Each tile reports every object clipped to it (more
than 4 px of it visible), as a detector would: objects cut by a seam arrive as pieces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deploy.runtime.detections import Detections
from deploy.runtime.tiling import tile_grid, tile_origins

TILE = 512
OVERLAP = 0.2
MIN_VISIBLE_PX = 4


@dataclass
class DenseScene:
    hw: tuple[int, int]
    boxes: np.ndarray  # (N, 4) float32 xyxy scene pixels: every planted object
    classes: np.ndarray  # (N,) int32
    scores: np.ndarray  # (N,) float32, all different
    tiles: list[Detections]  # what each tile reports, boxes in tile pixels


def scene_side(tiles_per_side: int, tile: int = TILE, overlap: float = OVERLAP) -> int:
    """The scene side that `tiles_per_side` tiles cover at exactly the grid's step (no tile squeezed)."""
    return tile + (tiles_per_side - 1) * max(1, int(tile * (1 - overlap)))


def plant(objects: int, tiles_per_side: int, nc: int = 4, seed: int = 0) -> DenseScene:
    """`objects` objects (fewer only if the scene has no room) over a square scene of tiles_per_side^2 tiles."""
    rng = np.random.default_rng(seed)
    side = scene_side(tiles_per_side)
    touching = _touching_pairs(side)
    target = max(objects - len(touching), 0)
    cells = int(np.ceil(np.sqrt(target * 1.1))) if target else 0  # spare cells for those the pairs displace
    pitch = side / max(cells, 1)
    shift = rng.uniform(0, pitch, size=2)  # so that cell borders do not line up with tile edges
    boxes = []
    for gy in range(-1, cells):
        for gx in range(-1, cells):
            w, h = rng.uniform(12, min(36, pitch - 4), size=2)
            x0 = shift[0] + gx * pitch + rng.uniform(0, pitch - w - 2)
            y0 = shift[1] + gy * pitch + rng.uniform(0, pitch - h - 2)
            boxes.append([x0, y0, x0 + w, y0 + h])
    boxes = [o for o in boxes if o[0] >= 0 and o[1] >= 0 and o[2] <= side and o[3] <= side
             and not any(_near(o, t) for t in touching)]
    boxes = [boxes[i] for i in sorted(rng.choice(len(boxes), min(target, len(boxes)), replace=False))] + touching
    classes = list(rng.integers(0, nc, len(boxes) - len(touching))) + [1] * len(touching)
    boxes = np.round(np.array(boxes, np.float64)).astype(np.float32)
    scores = (0.3 + 0.69 * rng.permutation(len(boxes)) / len(boxes)).astype(np.float32)
    classes = np.array(classes, np.int32)
    grid = tile_grid(side, side, TILE, OVERLAP)
    tiles = [_tile_detections(k, x, y, len(grid), (side, side), boxes, classes, scores)
             for k, (x, y, _) in enumerate(grid)]
    return DenseScene((side, side), boxes, classes, scores, tiles)


def _touching_pairs(side: int) -> list[list[float]]:
    """Same-class pairs that touch exactly on the first two seams, along x and along y, none near another."""
    seams = sorted({x + TILE for x in tile_origins(side, TILE, OVERLAP)} - {side})[:2]
    touching: list[list[float]] = []
    for seam in seams:
        for y in range(40, side - 40, max(side // 6, 1)):
            for a, b in (([seam - 14, y, seam, y + 12], [seam, y, seam + 14, y + 12]),
                         ([y, seam - 14, y + 12, seam], [y, seam, y + 12, seam + 14])):
                if not any(_near(a, o) or _near(b, o) for o in touching):
                    touching += [a, b]
    return touching


def _near(a, b, gap: float = 2.0) -> bool:
    """The boxes overlap or come within `gap` px of each other (touching pairs are 0 px apart on purpose)."""
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def _tile_detections(k: int, x: int, y: int, count: int, hw: tuple[int, int], boxes: np.ndarray,
                     classes: np.ndarray, scores: np.ndarray) -> Detections:
    clipped = np.stack([np.maximum(boxes[:, 0], x), np.maximum(boxes[:, 1], y),
                        np.minimum(boxes[:, 2], x + TILE), np.minimum(boxes[:, 3], y + TILE)], axis=1)
    seen = ((clipped[:, 2] - clipped[:, 0]) > MIN_VISIBLE_PX) & ((clipped[:, 3] - clipped[:, 1]) > MIN_VISIBLE_PX)
    local = clipped[seen] - np.array([x, y, x, y], np.float32)
    extra = {"offset": (x, y), "tile": k, "tiles": count, "scene_hw": hw, "size": TILE, "scene": None}
    return Detections(local.astype(np.float32), scores[seen], classes[seen], {"total": 0.0}, 0, "planted", extra)


@dataclass
class DenseRotatedScene:
    hw: tuple[int, int]
    rboxes: np.ndarray  # (N, 5) float32 cx, cy, w, h, angle in scene pixels: every planted object
    classes: np.ndarray  # (N,) int32
    tiles: list[Detections]  # what each tile reports: the turned rectangle of each object's visible part


def plant_rotated(objects: int, tiles_per_side: int, nc: int = 4, seed: int = 0) -> DenseRotatedScene:
    """Turned objects (long and thin, any angle) one per cell of a jittered grid, beside rows of parallel
    same-class objects that touch side by side across the first seams (the parking-lot case a merge must not
    fuse). Each tile reports every object more than MIN_VISIBLE_PX across in it, as the turned rectangle of
    the part it sees."""
    rng = np.random.default_rng(seed)
    side = scene_side(tiles_per_side)
    rows = _parked_rows(side)
    target = max(objects - len(rows), 0)
    cells = int(np.ceil(np.sqrt(target * 1.1))) if target else 0
    pitch = side / max(cells, 1)
    length = rng.uniform(14, min(44, pitch * 0.8), (cells + 1) ** 2)
    planted = []
    for k, (gy, gx) in enumerate(np.ndindex(cells + 1, cells + 1)):
        cx, cy = (gx - 0.5 + rng.uniform(0.35, 0.65)) * pitch, (gy - 0.5 + rng.uniform(0.35, 0.65)) * pitch
        box = [cx, cy, length[k], length[k] * rng.uniform(0.25, 0.6), rng.uniform(0, np.pi)]
        if min(cx, cy) - length[k] / 2 > 0 and max(cx, cy) + length[k] / 2 < side and \
                not any(abs(cx - r[0]) < 50 and abs(cy - r[1]) < 50 for r in rows):
            planted.append(box)
    planted = [planted[i] for i in sorted(rng.choice(len(planted), min(target, len(planted)), replace=False))]
    rboxes = np.array(planted + rows, np.float32).reshape(-1, 5)
    classes = np.array(list(rng.integers(0, nc, len(planted))) + [1] * len(rows), np.int32)
    scores = (0.3 + 0.69 * rng.permutation(len(rboxes)) / max(len(rboxes), 1)).astype(np.float32)
    grid = tile_grid(side, side, TILE, OVERLAP)
    tiles = [_tile_rotated(k, x, y, len(grid), (side, side), rboxes, classes, scores)
             for k, (x, y, _) in enumerate(grid)]
    return DenseRotatedScene((side, side), rboxes, classes, tiles)


def _parked_rows(side: int) -> list[list[float]]:
    """Cars 30 x 12 px at 40 degrees, side by side 12 px apart (touching), in rows across the first seams."""
    seams = sorted({x + TILE for x in tile_origins(side, TILE, OVERLAP)} - {side})[:2]
    angle = np.radians(40.0)
    across = np.array([-np.sin(angle), np.cos(angle)]) * 12.0  # from one car to the next, side by side
    rows = []
    for seam in seams:
        for y in range(60, side - 60, max(side // 5, 1)):
            for k in range(-2, 3):
                cx, cy = np.array([seam, y], float) + k * across
                rows.append([float(cx), float(cy), 30.0, 12.0, float(angle)])
    return rows


def _tile_rotated(k: int, x: int, y: int, count: int, hw: tuple[int, int], rboxes: np.ndarray,
                  classes: np.ndarray, scores: np.ndarray) -> Detections:
    from deploy.runtime.rotated import corners, enclosing, from_polygon
    from studio.core.data.oriented import visible_part

    seen, parts = [], []
    for i, quad in enumerate(corners(rboxes)):
        part = visible_part(quad, x, y, x + TILE, y + TILE, min_visible=0.0)
        if part is None:
            continue
        rect = from_polygon(part)
        if min(rect[2], rect[3]) > MIN_VISIBLE_PX or np.allclose(part.min(0), quad.min(0)):
            seen.append(i)
            parts.append(rect - [x, y, 0, 0, 0])
    local = np.array(parts, np.float32).reshape(-1, 5)
    extra = {"offset": (x, y), "tile": k, "tiles": count, "scene_hw": hw, "size": TILE, "scene": None}
    return Detections(enclosing(local), scores[seen], classes[seen], {"total": 0.0}, 0, "planted", extra,
                      rboxes=local)
