"""Cut large remote-sensing images into overlapping tiles, and merge the tiles' detections back.

An object cut by a seam shows up as two partial boxes, one per tile. Plain IoU NMS
keeps both (two halves overlap little), so after the usual NMS the merge joins
same-class boxes from different tiles when one of them touches an inner tile edge and
their intersection covers enough of the smaller box: the object comes back once, as
one box covering it.
"""
from collections.abc import Iterable, Iterator

import numpy as np

from deploy.runtime.decode import box_areas
from deploy.runtime.detections import Detections
from deploy.runtime.frame import Frame
from deploy.runtime.postprocess import NmsConfig, greedy_nms

EDGE_PX = 2.0  # a box side this close to an inner tile edge counts as cut there


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


def tile_frames(frames: Iterable[Frame], tile: int, overlap: float) -> Iterator[Frame]:
    """Each frame becomes its tiles; `extra` records the scene, the offset and the tile grid."""
    for frame in frames:
        h, w = frame.image.shape[:2]
        grid = tile_grid(h, w, tile, overlap)
        count = len(grid)
        for k, (x, y, _) in enumerate(grid):
            crop = frame.image[y : y + tile, x : x + tile]
            yield Frame(crop, frame.index, frame.source, frame.read_ms if k == 0 else 0.0,
                        {"offset": (x, y), "tile": k, "tiles": count, "scene_hw": (h, w), "size": tile,
                         "scene": frame.image})


def _cut_sides(boxes: np.ndarray, offset: tuple[int, int], size: int, scene_hw: tuple[int, int]) -> np.ndarray:
    """(N,) bool: the box touches an edge of its tile that lies inside the scene (a seam)."""
    x, y = offset
    h, w = scene_hw
    right, bottom = min(x + size, w), min(y + size, h)
    return (((boxes[:, 0] - x < EDGE_PX) & (x > 0)) | ((right - boxes[:, 2] < EDGE_PX) & (right < w))
            | ((boxes[:, 1] - y < EDGE_PX) & (y > 0)) | ((bottom - boxes[:, 3] < EDGE_PX) & (bottom < h)))


def merge_scene(tiles: list[Detections], cfg: NmsConfig, min_ios: float = 0.5) -> Detections:
    """Detections of all tiles of one scene (boxes in tile pixels) -> one Detections in scene pixels."""
    boxes, scores, classes, tile_ids, cut = [], [], [], [], []
    timings = {}
    for dets in tiles:
        x, y = dets.tile["offset"]
        shifted = dets.boxes + np.array([x, y, x, y], np.float32)
        boxes.append(shifted)
        scores.append(dets.scores)
        classes.append(dets.classes)
        tile_ids.append(np.full(len(dets), dets.tile["tile"]))
        cut.append(_cut_sides(shifted, (x, y), dets.tile["size"], dets.tile["scene_hw"]))
        for k, v in dets.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    boxes, scores, classes = np.concatenate(boxes), np.concatenate(scores), np.concatenate(classes)
    tile_ids, cut = np.concatenate(tile_ids), np.concatenate(cut)
    order = np.argsort(-scores, kind="stable")
    boxes, scores, classes, tile_ids, cut = boxes[order], scores[order], classes[order], tile_ids[order], cut[order]
    keep = greedy_nms(boxes, classes, NmsConfig(iou=cfg.iou, max_det=len(boxes) or 1, agnostic=cfg.agnostic))
    boxes, scores, classes, tile_ids, cut = boxes[keep], scores[keep], classes[keep], tile_ids[keep], cut[keep]
    boxes, scores, classes = _join_seams(boxes, scores, classes, tile_ids, cut, min_ios)
    order = np.argsort(-scores, kind="stable")[: cfg.max_det]
    first = tiles[0]
    scene = first.tile["scene"] if first.image is not None else None
    return Detections(boxes[order], scores[order], classes[order], timings, first.frame, first.source, None, scene)


def _join_seams(boxes, scores, classes, tile_ids, cut, min_ios: float, min_extent_iou: float = 0.6):
    """Union same-class boxes of different tiles where one is cut by a seam and they are one object.

    One object: the intersection covers >= min_ios of the smaller box (a partial view inside
    a whole one), or both are cut and, across the seam, their extents agree (IoU along x or
    y >= min_extent_iou): the two halves of an object longer than the overlap.
    """
    n = len(boxes)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    b64 = boxes.astype(np.float64)
    areas = box_areas(b64)
    for i in np.flatnonzero(cut):
        others = np.flatnonzero((classes == classes[i]) & (tile_ids != tile_ids[i]))
        if not others.size:
            continue
        lo, hi = np.maximum(b64[i, :2], b64[others, :2]), np.minimum(b64[i, 2:], b64[others, 2:])
        inter = np.maximum(0.0, hi - lo)  # (M, 2) overlap along x and y
        ios = inter.prod(axis=1) / np.maximum(np.minimum(areas[i], areas[others]), 1e-9)
        # two pieces of one long object, each cut by the seam, share their extent across it
        span = np.maximum(b64[i, 2:], b64[others, 2:]) - np.minimum(b64[i, :2], b64[others, :2])
        extent_iou = (inter / np.maximum(span, 1e-9)).max(axis=1)
        pieces = cut[others] & (inter > 0).all(axis=1) & (extent_iou >= min_extent_iou)
        for j in others[(ios >= min_ios) | pieces]:
            parent[find(int(j))] = find(int(i))
    groups = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    merged = [(np.concatenate([boxes[m, :2].min(0), boxes[m, 2:].max(0)]), scores[m].max(), classes[m[0]])
              for m in (np.array(g) for g in groups.values())]
    if not merged:
        return boxes, scores, classes
    return (np.array([m[0] for m in merged], np.float32), np.array([m[1] for m in merged], np.float32),
            np.array([m[2] for m in merged], np.int32))


def merge_tiles(results: Iterable[Detections], cfg: NmsConfig) -> Iterator[Detections]:
    """Group the tiles of each scene (consecutive, same frame index) and merge each scene.

    A live source may drop single tiles; a scene then ends when the next frame's tiles
    begin, and is merged from the tiles that arrived, never mixed with another frame's.
    """
    scene: list[Detections] = []
    for dets in results:
        if scene and dets.frame != scene[0].frame:
            yield merge_scene(scene, cfg)
            scene = []
        scene.append(dets)
        if len(scene) == dets.tile["tiles"]:
            yield merge_scene(scene, cfg)
            scene = []
    if scene:
        yield merge_scene(scene, cfg)
