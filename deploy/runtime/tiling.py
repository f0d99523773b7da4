"""Cut large remote-sensing images into overlapping tiles, and merge the tiles' detections back.

An object cut by a seam shows up as two partial boxes, one per tile. Plain IoU NMS
keeps both (two halves overlap little), so after the usual NMS the merge joins
same-class boxes from different tiles when one of them touches an inner tile edge and
their intersection covers enough of the smaller box: the object comes back once, as
one box covering it. Oriented boxes are merged the same way with their own geometry (tiling_obb.py).
"""
import time
from collections.abc import Iterable, Iterator
from typing import Callable, Optional, Union

import numpy as np

from deploy.runtime.decode import box_areas
from deploy.runtime.detections import Detections
from deploy.runtime.frame import Frame
from deploy.runtime.postprocess import NmsConfig, pair_iou, settle_greedy
from deploy.runtime.rotated import enclosing, pair_probiou
from deploy.runtime.tiling_obb import join_rotated, unite

EDGE_PX = 2.0  # a box side this close to an inner tile edge counts as cut there
CELL_PX = 64.0  # grid cell of the neighbour search: about the size of a typical object


def tile_origins(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets along one side: tiles of `tile` px, evenly spread, overlapping by at least `overlap`."""
    if length <= tile:
        return [0]
    step = max(1, int(tile * (1 - overlap)))
    count = -(-(length - tile) // step) + 1  # ceil division: enough tiles for the overlap
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def tile_grid(h: int, w: int, tile: int, overlap: float) -> list[tuple[int, int, int]]:
    """(x, y, size) of every tile of an h x w image, row by row: the order tiles are cut and numbered in."""
    return [(x, y, tile) for y in tile_origins(h, tile, overlap) for x in tile_origins(w, tile, overlap)]


def tile_frames(frames: Iterable[Frame], tile: int, overlap: float,
                skip: Optional[Callable[[Frame, int], bool]] = None) -> Iterator[Frame]:
    """Each frame becomes its tiles; `extra` records the scene, the offset and the tile grid. A lazy scene
    (raster.RasterImage) is read window by window, and its tiles without a valid pixel are not run; a tile
    that `skip(frame, k)` says is done already (a resumed run) is not read from it either (image None)."""
    for frame in frames:
        h, w = frame.image.shape[:2]
        empty = getattr(frame.image, "empty", None)
        grid = [(x, y, s) for x, y, s in tile_grid(h, w, tile, overlap) if not (empty and empty(x, y, tile))]
        count = len(grid)
        for k, (x, y, _) in enumerate(grid):
            extra = {"offset": (x, y), "tile": k, "tiles": count, "scene_hw": (h, w), "size": tile,
                     "scene": frame.image}
            if empty and skip is not None and skip(frame, k):
                yield Frame(None, frame.index, frame.source, 0.0, extra)
                continue
            start = time.perf_counter()
            crop = frame.image[y : y + tile, x : x + tile]
            read_ms = (time.perf_counter() - start) * 1e3 if empty else (frame.read_ms if k == 0 else 0.0)
            yield Frame(crop, frame.index, frame.source, read_ms, extra)


def _cut_sides(boxes: np.ndarray, offset: tuple[int, int], size: int, scene_hw: tuple[int, int]) -> np.ndarray:
    """(N,) bool: the box touches an edge of its tile that lies inside the scene (a seam)."""
    x, y = offset
    h, w = scene_hw
    right, bottom = min(x + size, w), min(y + size, h)
    return (((boxes[:, 0] - x < EDGE_PX) & (x > 0)) | ((right - boxes[:, 2] < EDGE_PX) & (right < w))
            | ((boxes[:, 1] - y < EDGE_PX) & (y > 0)) | ((bottom - boxes[:, 3] < EDGE_PX) & (bottom < h)))


def merge_scene(tiles: list[Detections], cfg: NmsConfig, min_ios: float = 0.5,
                scene_max_det: Optional[int] = None) -> Detections:
    """Detections of all tiles of one scene (boxes in tile pixels) -> one Detections in scene pixels.

    First the pieces of objects cut by seams are joined to the other tiles' views of them
    (before NMS, so a piece can never suppress the whole view it belongs to), then greedy
    NMS removes the views of one object that several tiles saw whole. cfg.max_det capped
    each tile; the scene keeps every object (a dense aerial scene holds thousands) unless
    scene_max_det caps it too. Only boxes near each other are compared, so the work grows
    with the number of boxes, not with its square.
    """
    boxes, scores, classes, tile_ids, cut, rboxes = [], [], [], [], [], []
    timings = {}
    for dets in tiles:
        x, y = dets.tile["offset"]
        shifted = dets.boxes + np.array([x, y, x, y], np.float32)
        boxes.append(shifted)
        scores.append(dets.scores)
        classes.append(dets.classes)
        tile_ids.append(np.full(len(dets), dets.tile["tile"]))
        cut.append(_cut_sides(shifted, (x, y), dets.tile["size"], dets.tile["scene_hw"]))
        if dets.rboxes is not None:
            rboxes.append(dets.rboxes + np.array([x, y, 0, 0, 0], np.float32))
        for k, v in dets.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    boxes, scores, classes = np.concatenate(boxes), np.concatenate(scores), np.concatenate(classes)
    tile_ids, cut = np.concatenate(tile_ids), np.concatenate(cut)
    order = np.argsort(-scores, kind="stable")
    first = tiles[0]
    scene = next((d.tile["scene"] for d in tiles if d.image is not None), None)  # kept for drawing sinks
    if rboxes:  # oriented boxes: their own notion of pieces and overlap (tiling_obb.py)
        turned = np.concatenate(rboxes)[order]
        turned, scores, classes = join_rotated(turned, scores[order], classes[order], tile_ids[order], cut[order],
                                               near_pairs(boxes[order]), min_ios)
        order = np.argsort(-scores, kind="stable")
        turned, scores, classes = turned[order], scores[order], classes[order]
        boxes = enclosing(turned).astype(np.float32)
        keep = _nms_near(boxes, classes, cfg, lambda i, j: pair_probiou(turned, i, j) > np.float32(cfg.iou))
        keep = keep[:scene_max_det]
        return Detections(boxes[keep], scores[keep], classes[keep], timings, first.frame, first.source, None, scene,
                          rboxes=turned[keep])
    boxes, scores, classes = _join_seams(boxes[order], scores[order], classes[order], tile_ids[order], cut[order],
                                         min_ios)
    order = np.argsort(-scores, kind="stable")
    boxes, scores, classes = boxes[order], scores[order], classes[order]
    b64 = boxes.astype(np.float64)
    keep = _nms_near(boxes, classes, cfg, lambda i, j: pair_iou(b64, box_areas(b64), i, j) > cfg.iou)[:scene_max_det]
    return Detections(boxes[keep], scores[keep], classes[keep], timings, first.frame, first.source, None, scene)


def near_pairs(boxes: np.ndarray, cell: float = CELL_PX) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) with i < j of every two boxes that share a cell of a `cell`-px grid: all pairs that overlap
    or touch are among them. Each box is entered in the cells it covers; pairs come from within cells."""
    n = len(boxes)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lo = np.floor(np.maximum(boxes[:, :2], 0) / cell).astype(np.int64)
    hi = np.maximum(np.floor(np.maximum(boxes[:, 2:], 0) / cell).astype(np.int64), lo)
    span = hi - lo + 1  # (n, 2) cells along x and y
    counts = span[:, 0] * span[:, 1]
    owner = np.repeat(np.arange(n), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)  # cell number within its box
    cx = lo[owner, 0] + k % span[owner, 0]
    cy = lo[owner, 1] + k // span[owner, 0]
    key = cy * (int(hi[:, 0].max()) + 1) + cx
    order = np.argsort(key, kind="stable")
    key, owner = key[order], owner[order]
    _, sizes = np.unique(key, return_counts=True)
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    later = np.repeat(sizes, sizes) - 1 - (np.arange(len(key)) - starts)  # members after each one in its cell
    first = np.repeat(np.arange(len(key)), later)
    second = first + 1 + np.arange(len(first)) - np.repeat(np.cumsum(later) - later, later)
    a, b = owner[first], owner[second]
    pair = np.unique(np.minimum(a, b) * n + np.maximum(a, b))
    return pair // n, pair % n


def _nms_near(boxes: np.ndarray, classes: np.ndarray, cfg: NmsConfig,
              overlapping: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Greedy NMS (boxes sorted by score) that measures only nearby pairs (their upright `boxes` share a grid
    cell): box j is dropped when a kept box of its class ranked before it overlaps it, as `overlapping(i, j)`
    says (by IoU, or by probiou for oriented boxes); settled by iterating that rule."""
    i, j = near_pairs(boxes)
    if not cfg.agnostic:
        same = classes[i] == classes[j]
        i, j = i[same], j[same]
    overlap = overlapping(i, j)
    return settle_greedy(len(boxes), i[overlap], j[overlap])  # i < j: i ranks before j


def _join_seams(boxes, scores, classes, tile_ids, cut, min_ios: float, min_extent_iou: float = 0.6):
    """Union same-class boxes of different tiles where one is cut by a seam and they are one object.

    One object: the intersection covers >= min_ios of the smaller box (a partial view inside
    a whole one), or both are cut and, across the seam, their extents agree (IoU along x or
    y >= min_extent_iou): the two halves of an object longer than the overlap. Returns the
    groups' union boxes, best scores and classes, in the order of each group's first box.
    """
    n = len(boxes)
    if not n:
        return boxes, scores, classes
    i, j = near_pairs(boxes)
    i, j = _seam_partners(boxes.astype(np.float64), i, j, classes, tile_ids, cut, min_ios, min_extent_iou)
    heads, group = unite(n, i, j)  # heads: each group's first box, in order
    out = np.empty((len(heads), 4), np.float32)
    out[:, :2] = np.inf
    out[:, 2:] = -np.inf
    np.minimum.at(out[:, :2], group, boxes[:, :2])
    np.maximum.at(out[:, 2:], group, boxes[:, 2:])
    best = np.full(len(heads), -np.inf, np.float32)
    np.maximum.at(best, group, scores)
    return out, best, classes[heads].astype(np.int32)


def _seam_partners(b64, i, j, classes, tile_ids, cut, min_ios: float, min_extent_iou: float):
    """The pairs (i, j) that are pieces of one object across a seam (see _join_seams)."""
    candidate = (classes[i] == classes[j]) & (tile_ids[i] != tile_ids[j]) & (cut[i] | cut[j])
    i, j = i[candidate], j[candidate]
    lo, hi = np.maximum(b64[i, :2], b64[j, :2]), np.minimum(b64[i, 2:], b64[j, 2:])
    inter = np.maximum(0.0, hi - lo)  # (M, 2) overlap along x and y
    areas = box_areas(b64)
    ios = inter.prod(axis=1) / np.maximum(np.minimum(areas[i], areas[j]), 1e-9)
    span = np.maximum(b64[i, 2:], b64[j, 2:]) - np.minimum(b64[i, :2], b64[j, :2])
    extent_iou = (inter / np.maximum(span, 1e-9)).max(axis=1)
    pieces = cut[i] & cut[j] & (inter > 0).all(axis=1) & (extent_iou >= min_extent_iou)
    join = (ios >= min_ios) | pieces
    return i[join], j[join]


def merge_tiles(results: Iterable[Detections], cfg: Union[NmsConfig, Callable[[], NmsConfig]],
                scene_max_det: Optional[int] = None) -> Iterator[Detections]:
    """Group the tiles of each scene (consecutive, same frame index) and merge each scene.

    A live source may drop single tiles; a scene then ends when the next frame's tiles
    begin, and is merged from the tiles that arrived, never mixed with another frame's.
    `cfg` may be a function giving the current settings, read again for every scene, so a
    threshold changed during a live run reaches the merge as well as the workers.
    """
    current = cfg if callable(cfg) else (lambda: cfg)

    def merged(tiles: list[Detections]) -> Detections:
        start = time.perf_counter()
        dets = merge_scene(tiles, current(), scene_max_det=scene_max_det)
        dets.timings["merge"] = (time.perf_counter() - start) * 1e3  # the scene's merge, once (not per tile)
        return dets

    scene: list[Detections] = []
    for dets in results:
        if scene and dets.frame != scene[0].frame:
            yield merged(scene)
            scene = []
        scene.append(dets)
        if len(scene) == dets.tile["tiles"]:
            yield merged(scene)
            scene = []
    if scene:
        yield merged(scene)
