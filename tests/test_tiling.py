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


def _merge(scene_hw, objects, classes, scores, overlap=0.1):
    """Tile an empty scene of scene_hw, report each object clipped to every tile, merge; -> {(box, class, score)}."""
    scene = Frame(np.zeros((*scene_hw, 3), np.uint8), 0, "scene.png")
    tiles = list(tile_frames([scene], 512, overlap))
    merged = list(merge_tiles([_tile_dets(t, objects, classes, scores) for t in tiles], NmsConfig()))
    assert len(merged) == 1
    m = merged[0]
    return sorted((tuple(np.round(b).astype(int).tolist()), int(c), round(float(s), 3))
                  for b, c, s in zip(m.boxes, m.classes, m.scores))


def test_seam_cut_objects_are_merged_across_a_horizontal_seam():
    """The y-direction twin of the x-seam test: y origins 0 and 460, objects cut at y=512 come back whole, once."""
    objects = [[100, 380, 180, 700], [300, 100, 340, 140], [400, 470, 440, 500], [420, 490, 470, 540]]
    classes, scores = [3, 0, 0, 1], [0.9, 0.8, 0.7, 0.6]
    assert _merge((972, 512), objects, classes, scores) == sorted(
        (tuple(o), c, s) for o, c, s in zip(objects, classes, scores))


def test_an_object_across_the_corner_of_four_tiles_comes_back_once():
    """Four partial views around a seam crossing (x and y cut) join into the one object."""
    objects = [[400, 400, 600, 600], [100, 100, 140, 130]]
    assert _merge((972, 972), objects, [2, 0], [0.9, 0.5]) == [((100, 100, 140, 130), 0, 0.5),
                                                                ((400, 400, 600, 600), 2, 0.9)]


def test_objects_of_different_classes_at_a_seam_are_never_joined():
    """A vehicle on a plane's wing, cut by the seam: its pieces join each other, never the plane."""
    objects = [[380, 100, 700, 300], [505, 120, 525, 140]]
    assert _merge((512, 972), objects, [2, 0], [0.9, 0.8]) == [((380, 100, 700, 300), 2, 0.9),
                                                                ((505, 120, 525, 140), 0, 0.8)]


def test_touching_neighbours_of_one_class_across_a_seam_stay_apart():
    """Two cars touching exactly at the left tile's edge (x=512), and two stacked ones at y=512: four cars."""
    objects = [[490, 100, 512, 140], [512, 100, 540, 140], [100, 480, 140, 512], [100, 512, 140, 545]]
    got = _merge((972, 972), objects, [0, 0, 0, 0], [0.9, 0.8, 0.7, 0.6])
    assert got == sorted((tuple(o), 0, s) for o, s in zip(objects, [0.9, 0.8, 0.7, 0.6]))
