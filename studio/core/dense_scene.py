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
