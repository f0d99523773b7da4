"""Tiling large scenes: full coverage, and an object cut by a seam comes back once, as one box."""
from __future__ import annotations

import json

import numpy as np

from deploy.runtime.detections import Detections
from deploy.runtime.frame import Frame
from deploy.runtime.postprocess import NmsConfig
from deploy.runtime.tiling import (
    _cut_sides,
    _join_seams,
    merge_scene,
    merge_tiles,
    near_pairs,
    tile_frames,
    tile_grid,
    tile_origins,
)


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


def test_tiny_tiles_with_huge_overlap_step_one_pixel():
    """A step that rounds below one pixel becomes 1 px, never more: 4 px tiles on 10 px start at 0..6."""
    assert tile_origins(10, 4, 0.9) == [0, 1, 2, 3, 4, 5, 6]


def test_tiles_carry_source_read_time_and_the_scene():
    """Every tile names its frame's source and carries the whole scene; only the first tile keeps read_ms."""
    image = np.zeros((512, 972, 3), np.uint8)
    tiles = list(tile_frames([Frame(image, 3, "cam.png", 5.5)], 512, 0.1))
    assert len(tiles) == 2
    assert [t.source for t in tiles] == ["cam.png", "cam.png"]
    assert [t.read_ms for t in tiles] == [5.5, 0.0]
    assert all(t.extra["scene"] is image for t in tiles)


def test_cut_sides_flags_only_edges_inside_the_scene():
    """A side within 2 px (strictly) of a tile edge is a seam cut only where that edge is not the scene border."""
    cases = [  # box, tile offset, scene (h, w), cut?  (tiles are 512 px)
        ([100, 100, 140, 140], (0, 0), (972, 972), False),  # middle of the tile
        ([1, 100, 40, 140], (0, 0), (972, 972), False),  # at the scene's left border
        ([100, 1, 140, 40], (0, 0), (972, 972), False),  # at the scene's top border
        ([600, 600, 640, 640], (460, 460), (972, 972), False),  # middle of an inner tile
        ([600, 100, 640, 140], (460, 0), (512, 972), False),  # right tile, far from its left seam
        ([100, 600, 140, 640], (0, 460), (972, 512), False),  # bottom tile, far from its top seam
        ([462, 100, 500, 140], (460, 0), (512, 972), False),  # exactly 2 px from the left seam
        ([461.5, 100, 500, 140], (460, 0), (512, 972), True),
        ([2, 100, 40, 140], (1, 0), (512, 972), True),  # a tile starting at x=1 has a seam there
        ([400, 100, 510, 140], (0, 0), (512, 972), False),  # exactly 2 px from the right seam
        ([400, 100, 510.5, 140], (0, 0), (512, 972), True),
        ([900, 100, 971, 140], (460, 0), (512, 972), False),  # at the scene's right border
        ([100, 462, 140, 500], (0, 460), (972, 512), False),  # exactly 2 px from the top seam
        ([100, 461.5, 140, 500], (0, 460), (972, 512), True),
        ([100, 2, 140, 40], (0, 1), (972, 512), True),  # a tile starting at y=1 has a seam there
        ([100, 400, 140, 510], (0, 0), (972, 512), False),  # exactly 2 px from the bottom seam
        ([100, 400, 140, 510.5], (0, 0), (972, 512), True),
        ([100, 900, 140, 971], (0, 460), (972, 512), False),  # at the scene's bottom border
    ]
    for box, offset, scene_hw, expected in cases:
        got = _cut_sides(np.array([box], np.float32), offset, 512, scene_hw)
        assert got.tolist() == [expected], (box, offset, scene_hw)


def _join(rows, min_ios=0.5):
    """Run the seam join on rows of (box, tile, cut), one class; -> sorted merged boxes as lists."""
    boxes = np.array([r[0] for r in rows], np.float32)
    n = len(rows)
    out, _, _ = _join_seams(boxes, np.linspace(0.9, 0.5, n).astype(np.float32), np.zeros(n, np.int32),
                            np.array([r[1] for r in rows]), np.array([r[2] for r in rows]), min_ios)
    return sorted(out.tolist())


def test_join_seams_threshold_edges():
    """ios exactly min_ios joins; extent IoU exactly 0.6 joins two cut pieces; touching or disjoint ones don't."""
    assert _join([([0, 0, 10, 10], 0, True), ([5, 0, 15, 10], 1, False)]) == [[0, 0, 15, 10]]  # ios 50/100
    assert _join([([0, 0, 10, 10], 0, True), ([9, 0, 19, 10], 1, False)]) == [[0, 0, 10, 10], [9, 0, 19, 10]]
    # x extents [0,4] and [1,5]: 3/5 = 0.6; y [0,10] and [6,16]: 4/16; ios 12/40
    assert _join([([0, 0, 4, 10], 0, True), ([1, 6, 5, 16], 1, True)]) == [[0, 0, 5, 16]]
    # aligned in y, overlapping by only half a pixel in x: still two pieces of one object
    assert _join([([0, 0, 10, 10], 0, True), ([9.5, 0, 19.5, 10], 1, True)]) == [[0, 0, 19.5, 10]]
    assert _join([([0, 0, 10, 10], 0, True), ([10, 0, 20, 10], 1, True)]) == [[0, 0, 10, 10], [10, 0, 20, 10]]
    assert _join([([0, 0, 10, 10], 0, True), ([50, 50, 60, 60], 1, True)]) == [[0, 0, 10, 10], [50, 50, 60, 60]]


def test_join_seams_weighs_each_partner_on_its_own():
    """One cut box against several partners: each pair's ios and extents decide alone, never mixed across pairs."""
    far = ([500, 500, 510, 510], 2, False)
    # ios 300/1000, y extents agree fully: joins as a piece; the far box stays apart
    assert _join([([0, 0, 100, 10], 0, True), ([70, 0, 200, 10], 1, True), far]) == [[0, 0, 200, 10], far[0]]
    # a partner inside the cut box joins on ios, one overlapping little in both extents does not
    rows = [([0, 0, 100, 10], 0, True), ([20, 0, 40, 10], 1, False), ([90, 5, 300, 200], 2, True), far]
    assert _join(rows) == [[0, 0, 100, 10], [90, 5, 300, 200], far[0]]


def test_join_seams_sub_pixel_boxes():
    """Areas and spans below one pixel are divided by as they are, not by a floor of 1."""
    assert _join([([0, 0, 0.5, 0.5], 0, True), ([0, 0, 0.5, 0.5], 1, False)]) == [[0, 0, 0.5, 0.5]]
    # x extents 0.4/0.6 = 0.67 >= 0.6; ios 2/5
    assert _join([([0, 0, 0.5, 10], 0, True), ([0.1, 5, 0.6, 15], 1, True)]) == [[0, 0, np.float32(0.6), 15]]


def test_a_cut_box_without_partner_does_not_stop_the_join():
    """A cut box with no same-class box in another tile is skipped; later cut boxes still join."""
    boxes = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [22, 0, 30, 10]], np.float32)
    out, scores, classes = _join_seams(boxes, np.array([0.9, 0.8, 0.7], np.float32), np.array([1, 0, 0], np.int32),
                                       np.array([0, 0, 1]), np.array([True, True, False]), 0.5)
    assert out.tolist() == [[0, 0, 10, 10], [20, 0, 30, 10]]
    assert scores.tolist() == [np.float32(0.9), np.float32(0.8)] and classes.tolist() == [1, 0]


def _dets(boxes, scores, classes, offset=(0, 0), k=0, tiles=1, scene_hw=(512, 512), timings=None, image=None):
    """Detections of one 512 px tile at offset (boxes in tile pixels), built directly."""
    extra = {"offset": offset, "tile": k, "tiles": tiles, "scene_hw": scene_hw, "size": 512, "scene": "whole"}
    return Detections(np.array(boxes).reshape(-1, 4), np.array(scores), np.array(classes), timings or {}, 4,
                      "scene.png", extra, image)


def test_merge_scene_output_types_frame_timings_and_scene():
    """Merged: float32 boxes/scores, int32 classes whatever the tiles held; timings summed; frame and source kept."""
    tiles = [_dets([[10, 10, 50, 50]], [0.9], [2], (0, 0), 0, 2, (512, 972), {"infer": 1.5, "post": 0.25}),
             _dets([[100, 10, 150, 50]], [0.8], [1], (460, 0), 1, 2, (512, 972), {"infer": 2.0})]
    m = merge_scene(tiles, NmsConfig())
    assert m.boxes.dtype == np.float32 and m.scores.dtype == np.float32 and m.classes.dtype == np.int32
    assert m.boxes.tolist() == [[10, 10, 50, 50], [560, 10, 610, 50]] and m.classes.tolist() == [2, 1]
    assert m.timings == {"infer": 3.5, "post": 0.25}
    assert (m.frame, m.source, m.tile, m.image) == (4, "scene.png", None, None)
    drawn = merge_scene([_dets([[10, 10, 50, 50]], [0.9], [2], image=np.zeros((512, 512, 3), np.uint8))],
                        NmsConfig())
    assert drawn.image == "whole" and drawn.tile is None


def test_merge_scene_of_empty_tiles_is_empty_float32():
    """Tiles with no detections merge into an empty (0, 4) float32 result."""
    empty = [_dets(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32), (x, 0), k, 2,
                   (512, 972)) for k, x in enumerate([0, 460])]
    m = merge_scene(empty, NmsConfig())
    assert m.boxes.shape == (0, 4) and m.boxes.dtype == np.float32 and len(m) == 0


def test_merge_scene_nms_keeps_the_best_duplicate_with_the_callers_settings():
    """Duplicate views keep the higher score; the caller's IoU threshold and agnostic flag apply."""
    tiles = [_dets([[470, 400, 500, 440]], [0.6], [0], (0, 0), 0, 2, (512, 972)),
             _dets([[12, 400, 42, 440]], [0.9], [0], (460, 0), 1, 2, (512, 972))]
    m = merge_scene(tiles, NmsConfig())
    assert m.boxes.tolist() == [[472, 400, 502, 440]] and m.scores.tolist() == [np.float32(0.9)]
    pair = [[100, 100, 140, 140], [104, 100, 144, 140]]  # IoU 36/44 = 0.82
    assert len(merge_scene([_dets(pair, [0.9, 0.8], [0, 0])], NmsConfig(iou=0.9))) == 2
    assert len(merge_scene([_dets(pair, [0.9, 0.8], [0, 0])], NmsConfig())) == 1
    assert len(merge_scene([_dets(pair, [0.9, 0.8], [0, 1])], NmsConfig(agnostic=True))) == 1


def test_merge_scene_ties_keep_tile_then_detector_order():
    """Equal scores come out in tile order, then in each tile's own order (stable sorts; numpy's default sort
    keeps the order of ties only below about a hundred of them, so there are more here)."""
    n = 60
    boxes = [[8 * i, 0, 8 * i + 5, 5] for i in range(n)]
    tiles = [_dets(boxes, [0.5] * n, [0] * n, (0, 0), 0, 2, (512, 972)),
             _dets(boxes, [0.5] * n, [1] * n, (460, 0), 1, 2, (512, 972))]
    m = merge_scene(tiles, NmsConfig())
    assert m.boxes[:, 0].tolist() == [8 * i for i in range(n)] + [460 + 8 * i for i in range(n)]


def test_merge_scene_does_not_cap_before_joining():
    """Hundreds of one-class boxes (past the pairwise NMS limit) all survive when max_det allows them."""
    boxes = [[12 * (i % 40) + 1, 12 * (i // 40) + 1, 12 * (i % 40) + 9, 12 * (i // 40) + 9] for i in range(700)]
    m = merge_scene([_dets(boxes, np.linspace(0.9, 0.3, 700), [0] * 700)], NmsConfig(max_det=1000))
    assert len(m) == 700


def test_a_dropped_last_tile_still_yields_the_last_frame():
    """When the final tile of the stream is lost, the scene's remaining tiles are merged and yielded."""
    scenes = [Frame(np.zeros((512, 972, 3), np.uint8), k, f"frame{k}") for k in range(2)]
    tiles = list(tile_frames(scenes, 512, 0.1))
    dets = [_tile_dets(t, [[100, 300, 140, 340]], [0], [0.9]) for t in tiles][:-1]
    merged = list(merge_tiles(dets, NmsConfig()))
    assert [(m.frame, len(m)) for m in merged] == [(0, 1), (1, 1)]


def test_a_dense_scene_comes_back_whole_once_per_object():
    """Over 600 planted objects, many cut by seams, some touching across one: every object exactly once,
    none cut off at the per-frame max_det, none doubled at a seam, touching neighbours not fused."""
    from studio.core.dense_scene import plant

    scene = plant(650, 3)
    seams = {x for x, _, _ in tile_grid(*scene.hw, 512, 0.2)} | {x + 512 for x, _, _ in tile_grid(*scene.hw, 512, 0.2)}
    crossing = [b for b in scene.boxes.tolist() if any(b[0] < s < b[2] or b[1] < s < b[3] for s in seams)]
    touching = [b for b in scene.boxes.tolist() if b[2] in seams or b[0] in seams]
    assert len(scene.boxes) == 650 and len(crossing) > 50 and len(touching) > 10
    assert sum(len(t) for t in scene.tiles) > 1.3 * 650  # the overlaps see many objects twice or more
    merged = merge_scene(scene.tiles, NmsConfig(max_det=300))
    found = sorted((tuple(b), c) for b, c in zip(np.round(merged.boxes).tolist(), merged.classes.tolist()))
    assert found == sorted((tuple(b), c) for b, c in zip(scene.boxes.tolist(), scene.classes.tolist()))
    assert sorted(merged.scores.tolist(), reverse=True) == merged.scores.tolist()


def test_a_scene_cap_keeps_the_best_objects_only_when_asked():
    """scene_max_det keeps the highest-scored objects of the merged scene; without it nothing is dropped."""
    from studio.core.dense_scene import plant

    scene = plant(120, 2)
    best = np.sort(scene.scores)[::-1][:50]
    capped = merge_scene(scene.tiles, NmsConfig(), scene_max_det=50)
    assert len(capped) == 50 and np.array_equal(capped.scores, best)
    assert len(merge_scene(scene.tiles, NmsConfig(max_det=10))) == 120


def test_the_merge_reads_the_settings_again_for_every_scene():
    """Given a function, merge_tiles asks it for the settings at each scene: an IoU changed mid-run applies."""
    scenes = [Frame(np.zeros((512, 512, 3), np.uint8), k, f"frame{k}") for k in range(2)]
    tiles = list(tile_frames(scenes, 512, 0.1))  # one tile per frame
    pair = [[100, 100, 140, 140], [104, 100, 144, 140]]  # IoU 36/44 = 0.82
    dets = [_tile_dets(t, pair, [0, 0], [0.9, 0.8]) for t in tiles]
    settings = iter([NmsConfig(iou=0.5), NmsConfig(iou=0.9)])
    assert [len(m) for m in merge_tiles(dets, lambda: next(settings))] == [1, 2]


def test_neighbour_pairs_include_every_overlapping_or_touching_pair():
    """The grid search finds each pair of boxes that overlap or touch (checked against all pairs), once."""
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 600, (300, 2))
    wh = rng.uniform(1, 150, (300, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    i, j = near_pairs(boxes)
    found = set(zip(i.tolist(), j.tolist()))
    assert len(found) == len(i) and all(a < b for a, b in found)
    every = {(a, b) for a in range(300) for b in range(a + 1, 300)
             if boxes[a, 0] <= boxes[b, 2] and boxes[b, 0] <= boxes[a, 2]
             and boxes[a, 1] <= boxes[b, 3] and boxes[b, 1] <= boxes[a, 3]}
    assert every <= found and len(every) > 100


def test_merge_nms_keeps_an_overlap_exactly_at_the_threshold_and_other_classes():
    """Within a scene, IoU exactly at cfg.iou does not suppress, and boxes of different classes never do."""
    half = [[0, 0, 10, 10], [0, 0, 10, 5]]  # IoU 50/100 = 0.5
    assert len(merge_scene([_dets(half, [0.9, 0.8], [0, 0])], NmsConfig(iou=0.5))) == 2
    assert len(merge_scene([_dets(half, [0.9, 0.8], [0, 0])], NmsConfig(iou=0.49))) == 1
    same_place = [[100, 100, 140, 140], [100, 100, 140, 140]]
    assert len(merge_scene([_dets(same_place, [0.9, 0.8], [0, 1])], NmsConfig())) == 2


def test_a_long_object_joins_across_a_seam_beside_touching_neighbours():
    """Two halves of one long object (joined by their shared extent) and, in the same scene, a same-class pair
    touching on the seam (kept apart): each pair is judged on its own."""
    objects = [[100, 380, 180, 700], [300, 490, 340, 512], [300, 512, 340, 540]]
    assert _merge((972, 512), objects, [3, 3, 3], [0.9, 0.8, 0.7]) == sorted(
        (tuple(o), 3, s) for o, s in zip(objects, [0.9, 0.8, 0.7]))


def test_tied_objects_keep_the_order_of_their_best_view_after_joining():
    """An object joined from pieces ranks by its best piece; at a tie with another object, the one whose best
    view came first (tile order) stays first, whatever the scores of lower-ranked pieces."""
    # tile 0 (x 0..512): whole object A at 0.5, and the left piece of object B at 0.3 (cut at the seam x=512);
    # tile 1 (x 460..972): B's right part, including what tile 0 saw, at 0.5
    tiles = [_dets([[100, 10, 140, 50], [480, 100, 512, 140]], [0.5, 0.3], [0, 0], (0, 0), 0, 2, (512, 972)),
             _dets([[20, 100, 80, 140]], [0.5], [0], (460, 0), 1, 2, (512, 972))]
    m = merge_scene(tiles, NmsConfig())
    assert m.boxes.tolist() == [[100, 10, 140, 50], [480, 100, 540, 140]]
    assert m.scores.tolist() == [0.5, 0.5]


def test_every_way_a_scene_ends_honours_the_scene_cap():
    """scene_max_det caps a scene whether it ends complete, at the next frame (a tile dropped) or at the end."""
    scenes = [Frame(np.zeros((512, 972, 3), np.uint8), k, f"frame{k}") for k in range(3)]
    tiles = list(tile_frames(scenes, 512, 0.1))  # two tiles per frame
    objects = [[100, 300, 140, 340], [200, 300, 240, 340], [600, 300, 640, 340]]  # two in the first tile
    dets = [_tile_dets(t, objects, [0, 1, 2], [0.9, 0.8, 0.7]) for t in tiles]
    del dets[-1], dets[1]  # frame 0 loses its second tile, frame 2 its last
    assert [len(m) for m in merge_tiles(dets, NmsConfig())] == [2, 3, 2]
    capped = list(merge_tiles(dets, NmsConfig(), scene_max_det=1))
    assert [m.scores.tolist() for m in capped] == [[np.float32(0.9)]] * 3


def test_turned_objects_cut_by_seams_come_back_once_and_parked_cars_stay_apart():
    """A dense scene of turned objects (rows of parked cars touching side by side across seams among them):
    each planted object comes back exactly once, its whole rectangle restored from the tiles' pieces."""
    from deploy.runtime.rotated import enclosing, polygon_iou
    from studio.core.dense_scene import plant_rotated

    scene = plant_rotated(300, 3)
    pieces = sum(len(t) for t in scene.tiles)
    assert pieces > 1.3 * len(scene.classes) and (scene.rboxes[:, 2] == 30).sum() > 20  # the parked rows
    merged = merge_scene(scene.tiles, NmsConfig(iou=0.7, max_det=300))
    assert merged.rboxes is not None and len(merged) == len(scene.classes)
    iou = polygon_iou(scene.rboxes, merged.rboxes) * (scene.classes[:, None] == merged.classes[None])
    assert ((iou >= 0.95).sum(1) == 1).all() and ((iou >= 0.95).sum(0) == 1).all()
    assert np.allclose(merged.boxes, enclosing(merged.rboxes), atol=1e-3)  # upright boxes around the turned ones


def test_bench_merge_and_postprocess_for_oriented_boxes(cli):
    merge = json.loads(cli("bench", "merge", "--task", "obb", "--objects", 150, "--tiles", 4, "--repeat", 1,
                           "--json").stdout)
    assert merge["task"] == "obb" and merge["exact"] and merge["objects_out"] == merge["objects_in"] > 100
    post = json.loads(cli("bench", "postprocess", "--task", "obb", "--nc", 15, "--objects", 100, "--repeat", 20,
                          "--json").stdout)
    assert post["task"] == "obb" and post["identical"] and post["detections"] >= 100 and post["speedup"] > 1
