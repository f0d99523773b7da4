"""The tile merge for oriented boxes: which pieces cut by seams are one object, and the box that makes it.

A turned object cut by a seam comes back from each tile as the rectangle of the part that
tile saw. Two such rectangles (same class, different tiles, one of them at a seam) are one
object when one lies mostly inside the other (a piece within a whole view), or when both
are cut, they overlap (the tiles' shared band saw the same part) and together they fill
the smallest rectangle around them as one straight object would, end to end, no thicker
than they are (two parked cars touching side by side fill a rectangle too, twice as thick). Each group comes back as
its largest view when that holds most of each other piece, else as the smallest rectangle
around all of it, with its best score; the merge's greedy NMS, over probiou, then removes
the whole views several tiles saw. Only nearby pairs are measured (their upright boxes
share a grid cell), so the work grows with the number of boxes.
"""
import numpy as np

from deploy.runtime.rotated import corners, from_polygon, quad_overlaps

FILL = 0.85  # two pieces are one straight object when they fill this much of the rectangle around both
PIECE = 0.8  # a corner cut off is a triangle: its rectangle holds it twice, so "mostly inside" asks a bit less
THICK = 1.25  # ... and that rectangle is at most this much thicker than the thicker piece


def join_rotated(rboxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, tile_ids: np.ndarray,
                 cut: np.ndarray, pairs: tuple[np.ndarray, np.ndarray], min_ios: float):
    """Union the pieces of objects cut by seams; (rboxes, scores, classes) of the groups, in first-member order."""
    i, j = pairs
    candidate = (classes[i] == classes[j]) & (tile_ids[i] != tile_ids[j]) & (cut[i] | cut[j])
    i, j = i[candidate], j[candidate]
    quads = corners(rboxes)
    areas = rboxes[:, 2].astype(np.float64) * rboxes[:, 3]
    lo, hi = quads.min(1), quads.max(1)
    meet = (np.minimum(hi[i], hi[j]) > np.maximum(lo[i], lo[j])).all(1)  # upright extents overlap: only those can
    inter = np.zeros(len(i))
    inter[meet] = quad_overlaps(quads[i[meet]], quads[j[meet]])
    one = (inter > 0) & (inter >= min_ios * PIECE * np.minimum(areas[i], areas[j]))  # a piece within a view
    ends = np.flatnonzero((inter > 0) & ~one & cut[i] & cut[j])
    one[ends] = [_end_to_end(quads, rboxes, areas, i[k], j[k], inter[k]) for k in ends]
    heads, group = unite(len(rboxes), i[one], j[one])
    out = rboxes[heads].astype(np.float32, copy=True)
    joined = np.flatnonzero(np.bincount(group)[group] > 1)  # the members of groups of two or more
    if joined.size:
        members = joined[np.lexsort((-areas[joined], group[joined]))]  # by group, the largest view first
        first = np.r_[True, group[members][1:] != group[members][:-1]]
        whole = members[first][np.cumsum(first) - 1]  # each member's group's largest view
        others = ~first
        held = quad_overlaps(quads[members[others]], quads[whole[others]]) >= min_ios * PIECE * areas[members[others]]
        covered = np.ones(len(heads), bool)
        np.logical_and.at(covered, group[members[others]], held)
        # a whole view that holds the other pieces is the object; else the pieces make it up together
        for g, start, stop in _runs(group[members]):
            out[g] = rboxes[members[start]] if covered[g] else from_polygon(quads[members[start:stop]].reshape(-1, 2))
    best = np.full(len(heads), -np.inf, np.float32)
    np.maximum.at(best, group, scores)
    return out, best, classes[heads].astype(np.int32)


def _runs(sorted_ids: np.ndarray):
    """(id, start, stop) of each run of equal ids in a sorted array."""
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    stops = np.r_[starts[1:], len(sorted_ids)]
    return zip(sorted_ids[starts].tolist(), starts.tolist(), stops.tolist())


def _end_to_end(quads, rboxes, areas, a: int, b: int, inter: float) -> bool:
    """Two overlapping cut pieces that fill the rectangle around both as one straight object would, end to end,
    not side by side (parked cars touch side by side)."""
    around = from_polygon(np.concatenate([quads[a], quads[b]]))
    thick = max(min(rboxes[a, 2], rboxes[a, 3]), min(rboxes[b, 2], rboxes[b, 3]))
    return bool((areas[a] + areas[b] - inter) >= FILL * around[2] * around[3] and around[3] <= THICK * thick)


def unite(n: int, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Groups of n items joined by the pairs (i, j), as (each group's first item, each item's group), groups in
    the order of their first items (union-find, the smaller index the root)."""
    parent = np.arange(n)

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for a, b in zip(i.tolist(), j.tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.unique(np.array([find(k) for k in range(n)], np.int64), return_inverse=True)
