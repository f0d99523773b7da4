"""Tiling large scenes: full coverage, and an object cut by a seam comes back once, as one box."""
from __future__ import annotations

import numpy as np

from deploy.runtime.detections import Detections
from deploy.runtime.pipeline import Frame
from deploy.runtime.postprocess import NmsConfig
from deploy.runtime.tiling import merge_tiles, tile_frames, tile_origins


def test_tiles_cover_the_scene_with_the_requested_overlap():
    assert tile_origins(512, 512, 0.2) == [0]
    starts = tile_origins(2048, 512, 0.2)
    assert starts[0] == 0 and starts[-1] == 2048 - 512
    assert all(b - a <= 512 * 0.8 for a, b in zip(starts, starts[1:]))
    scene = Frame(np.zeros((1000, 1500, 3), np.uint8), 7, "scene.png")
    tiles = list(tile_frames([scene], 512, 0.25))
    assert len(tiles) == len(tile_origins(1000, 512, 0.25)) * len(tile_origins(1500, 512, 0.25))
    assert all(t.image.shape == (512, 512, 3) and t.index == 7 for t in tiles)
    assert {t.extra["tiles"] for t in tiles} == {len(tiles)}


def _tile_dets(tile: Frame, boxes_in_scene, classes, scores) -> Detections:
    """What a detector would report on this tile for scene boxes: each clipped to the tile."""
    x, y = tile.extra["offset"]
    size = tile.extra["size"]
    kept, cls, sc = [], [], []
    for box, c, s in zip(boxes_in_scene, classes, scores):
        clipped = [max(box[0], x), max(box[1], y), min(box[2], x + size), min(box[3], y + size)]
        if clipped[2] - clipped[0] > 4 and clipped[3] - clipped[1] > 4:
            kept.append([clipped[0] - x, clipped[1] - y, clipped[2] - x, clipped[3] - y])
            cls.append(c)
            sc.append(s)
    return Detections(np.array(kept, np.float32).reshape(-1, 4), np.array(sc, np.float32),
                      np.array(cls, np.int32), {"total": 1.0}, tile.index, tile.source, tile.extra)


def test_seam_cut_object_is_merged_into_one_box():
    scene = Frame(np.zeros((512, 972, 3), np.uint8), 0, "scene.png")
    tiles = list(tile_frames([scene], 512, 0.1))  # x origins 0 and 460: overlap 460..512
    assert [t.extra["offset"][0] for t in tiles] == [0, 460]
    objects = [
        [380, 100, 700, 180],  # long ship across the overlap: both tiles see only part of it
        [100, 300, 140, 340],  # small car, left tile only
        [470, 400, 500, 440],  # small car inside the overlap: both tiles see it whole
        [490, 420, 540, 470],  # tank cut at x=512 by the left tile, whole in the right one
    ]
    classes, scores = [0, 1, 1, 1], [0.9, 0.8, 0.7, 0.6]
    dets = [_tile_dets(t, objects, classes, scores) for t in tiles]
    assert sum(len(d) for d in dets) == 7  # partial or duplicate views before merging
    merged = list(merge_tiles(dets, NmsConfig()))
    assert len(merged) == 1
    got = {tuple(np.round(b).astype(int)) for b in merged[0].boxes}
    assert got == {tuple(o) for o in objects}
    assert sorted(merged[0].scores.tolist(), reverse=True) == merged[0].scores.tolist()


def test_adjacent_objects_of_one_class_are_not_merged():
    scene = Frame(np.zeros((512, 972, 3), np.uint8), 0, "scene.png")
    tiles = list(tile_frames([scene], 512, 0.1))
    objects = [[440, 100, 478, 140], [482, 100, 530, 140]]  # two cars side by side in the overlap
    dets = [_tile_dets(t, objects, [0, 0], [0.9, 0.8]) for t in tiles]
    merged = list(merge_tiles(dets, NmsConfig()))[0]
    assert len(merged) == 2


def test_a_dropped_tile_never_mixes_two_frames():
    scenes = [Frame(np.zeros((512, 972, 3), np.uint8), k, f"frame{k}") for k in range(3)]
    tiles = list(tile_frames(scenes, 512, 0.1))  # two tiles per frame
    objects = [[100, 300, 140, 340]]
    dets = [_tile_dets(t, objects, [0], [0.9]) for t in tiles]
    del dets[1]  # a live source dropped the second tile of frame 0
    merged = list(merge_tiles(dets, NmsConfig()))
    assert [m.frame for m in merged] == [0, 1, 2]
    assert [len(m) for m in merged] == [1, 1, 1]
