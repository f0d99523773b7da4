"""Paint dense aerial scenes (generator "dense-1"): rows of touching, rotated objects, as real imagery has.

Parking lots with cars side by side, harbours with ships moored hull to hull, aprons with
planes parked wingtip to wingtip, tank farms in tight grids, traffic, and lone objects
of a wide spread of sizes; rows run off the image, so objects are cut by its border.
Every object keeps its pose (centre, length, width, angle), from which both oriented and
axis-aligned labels are made. Objects may touch but never overlap: each one's rectangle,
shrunk by half a pixel, is tested against an occupancy mask of those already placed.
The ground, the object shapes and the clutter come from the sparse generator (aerial.py),
which stays as it is: datasets made by it keep their bytes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from studio.core.data.aerial import (
    CAR_COLOURS,
    LARGE_PX,
    LENGTH_PX,
    PAINT,
    Canvas,
    Pose,
    _contrast,
    _fill,
    _noise,
    _rect,
    _rotated,
    _shadow,
    object_length,
    object_polygons,
    optics,
    paint_ground,
    place_clutter,
    pose_of,
)

GENERATOR = "dense-1"
MARGIN = 160  # objects may start this far outside the image: rows run off its border


class DenseCanvas:
    """A canvas with an occupancy mask that extends MARGIN pixels past every border."""

    def __init__(self, canvas: Canvas):
        self.canvas = canvas
        h, w = canvas.hw
        self.occupied = np.zeros((h + 2 * MARGIN, w + 2 * MARGIN), np.uint8)
        self.poses: list[Pose] = []

    def free(self, corners: np.ndarray) -> bool:
        """True when the polygon, shrunk by half a pixel, touches nothing placed and lies within the margin."""
        centre = corners.mean(0)
        shrunk = centre + (corners - centre) * _shrink(corners) + MARGIN
        lo, hi = np.floor(shrunk.min(0)).astype(int), np.ceil(shrunk.max(0)).astype(int) + 1
        if (lo < 0).any() or hi[0] > self.occupied.shape[1] or hi[1] > self.occupied.shape[0]:
            return False
        patch = np.zeros((hi[1] - lo[1], hi[0] - lo[0]), np.uint8)
        cv2.fillPoly(patch, [np.round((shrunk - lo) * 4).astype(np.int32)], 1, shift=2)
        return not (self.occupied[lo[1]:hi[1], lo[0]:hi[0]] & patch).any()

    def occupy(self, corners: np.ndarray) -> None:
        cv2.fillPoly(self.occupied, [np.round((corners + MARGIN) * 4).astype(np.int32)], 1, shift=2)


def _shrink(corners: np.ndarray) -> float:
    """The factor that pulls a small rectangle's sides in by about half a pixel."""
    side = min(np.linalg.norm(corners[1] - corners[0]), np.linalg.norm(corners[2] - corners[1]))
    return max(0.0, 1 - 1.0 / max(side, 1e-6))


def place(rng: np.random.Generator, dense: DenseCanvas, cls: int, centre, angle: float, length: float,
          colour=None) -> bool:
    """Draw one object at a pose if its rectangle is free; returns whether it was placed."""
    parts = object_polygons(cls, length, rng)
    pose = pose_of(cls, parts, angle, centre)
    rect = pose.corners()
    if not dense.free(rect):
        return False
    canvas = dense.canvas
    if colour is None:
        base = PAINT.get(cls) or CAR_COLOURS[int(rng.integers(len(CAR_COLOURS)))]
        colour = np.array(base, np.float64) * rng.uniform(0.85, 1.1)
    colour = _contrast(rng, canvas, colour, centre)
    placed = [(_rotated(p, angle, centre), k) for p, k in parts]
    if cls != 3:
        _shadow(canvas, placed[0][0], length)
    for poly, k in placed:
        _fill(canvas.image, poly, tuple(c * k for c in colour))
    dense.occupy(rect)
    dense.poses.append(pose)
    canvas.taken.append(np.concatenate([rect.min(0), rect.max(0)]))  # clutter keeps away
    return True


def _anywhere(rng: np.random.Generator, canvas: Canvas, spill: float = 0.1) -> np.ndarray:
    """A point in the image or a little past its border."""
    h, w = canvas.hw
    return rng.uniform([-spill * w, -spill * h], [(1 + spill) * w, (1 + spill) * h])


@dataclass
class Group:
    """A planned group: the pads under it (painted before any object) and its objects' spots."""

    pads: list = field(default_factory=list)  # (centre, angle, length, width, colour, alpha)
    spots: list = field(default_factory=list)  # (class, centre, angle, length)


def _axes(angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors along a row at `angle` and across it."""
    along = np.array([math.cos(angle), math.sin(angle)])
    return along, np.array([-along[1], along[0]])


def parking_lot(rng: np.random.Generator, canvas: Canvas) -> Group:
    """Rows of cars parked side by side, a finger's width apart, rows back to back or across an aisle."""
    start, angle = _anywhere(rng, canvas), rng.uniform(0, math.pi)
    length = rng.uniform(*LENGTH_PX[0])
    along, across = _axes(angle)  # the row runs along; cars point across
    rows, slots = int(rng.integers(1, 5)), int(rng.integers(5, 16))
    pitch = length * 0.46 + rng.uniform(0.6, 2.5)
    aisle = [length + (rng.uniform(0.8, 2.0) * length if r % 2 else rng.uniform(0.6, 1.5)) for r in range(rows)]
    offsets = np.concatenate([[0.0], np.cumsum(aisle[:-1])])
    middle = start + along * pitch * (slots - 1) / 2 + across * offsets[-1] / 2
    asphalt = np.full(3, rng.uniform(70, 105)) + rng.normal(0, 4, 3)
    group = Group([(middle, angle, pitch * slots + 6, offsets[-1] + length + 6, asphalt, 0.85)])
    for r in range(rows):
        for k in range(slots):
            if rng.random() < 0.85:
                turn = math.pi if rng.random() < 0.5 else 0.0  # parked nose in or nose out
                group.spots.append((0, start + along * k * pitch + across * offsets[r],
                                    angle + math.pi / 2 + turn + rng.normal(0, 0.03), length * rng.uniform(0.94, 1.06)))
    return group


def harbour(rng: np.random.Generator, canvas: Canvas) -> Group:
    """A basin with a pier and ships moored hull to hull along it."""
    start, angle = _anywhere(rng, canvas), rng.uniform(0, math.pi)
    along, across = _axes(angle)
    ships = int(rng.integers(3, 12))
    lengths = rng.uniform(18, 70, ships) if rng.random() < 0.7 else rng.uniform(60, 140, ships)
    pitch = lengths * 0.25 + rng.uniform(0.5, 2.5, ships)
    positions = np.concatenate([[0.0], np.cumsum(pitch[:-1])])
    reach, depth = positions[-1] + pitch[-1], lengths.max() * 1.3
    water = np.array(rng.uniform([70, 60, 20], [110, 95, 60]), np.float32)
    group = Group([(start + along * reach / 2 + across * depth / 2, angle, reach + 30, depth + 20, water, 0.95),
                   (start + along * reach / 2 - across * 4, angle, reach + 30, 6, np.full(3, 150.0), 1.0)])  # pier
    for k in range(ships):
        bow = math.pi / 2 if rng.random() < 0.8 else -math.pi / 2
        group.spots.append((3, start + along * positions[k] + across * lengths[k] / 2, angle + bow, lengths[k]))
    return group


def apron(rng: np.random.Generator, canvas: Canvas) -> Group:
    """Planes parked nose in along a terminal, wingtip close to wingtip."""
    start, angle = _anywhere(rng, canvas), rng.uniform(0, math.pi)
    along, _ = _axes(angle)
    planes = int(rng.integers(2, 8))
    length = rng.uniform(24, 72)
    pitch = length * 1.02 + rng.uniform(1, 4)
    concrete = np.full(3, rng.uniform(150, 185))
    group = Group([(start + along * pitch * (planes - 1) / 2, angle, pitch * planes + 10, length * 1.4, concrete,
                    0.85)])
    group.spots += [(2, start + along * k * pitch, angle + math.pi / 2, length * rng.uniform(0.95, 1.02))
                    for k in range(planes)]
    return group


def tank_farm(rng: np.random.Generator, canvas: Canvas) -> Group:
    """Storage tanks in a tight grid."""
    start = _anywhere(rng, canvas)
    diameter = rng.uniform(12, 48)
    along, across = _axes(rng.uniform(0, math.pi / 2))
    pitch = diameter + rng.uniform(0.5, 4)
    rows, cols = int(rng.integers(1, 5)), int(rng.integers(2, 6))
    return Group(spots=[(1, start + (c * along + r * across) * pitch, 0.0, diameter)
                        for r in range(rows) for c in range(cols)])


def loners(rng: np.random.Generator, dense: DenseCanvas) -> None:
    """Traffic along the roads and single objects of every size, large ones included."""
    canvas = dense.canvas
    area = canvas.hw[0] * canvas.hw[1] / 320**2
    for start, end, _ in canvas.roads:
        for t in rng.uniform(0, 1, rng.poisson(3.0 * math.sqrt(area))):
            heading = math.atan2(*(end - start)[::-1]) + (math.pi if rng.random() < 0.5 else 0)
            place(rng, dense, 0, start + (end - start) * t, heading + rng.normal(0, 0.03), object_length(rng, 0))
    for _ in range(rng.poisson(3.0 * area)):
        cls = int(rng.integers(4))
        length = rng.uniform(*LARGE_PX[cls]) if rng.random() < 0.3 else object_length(rng, cls)
        place(rng, dense, cls, _anywhere(rng, canvas, 0.05), rng.uniform(0, 2 * math.pi), length)


GROUPS = ((parking_lot, 2.0), (harbour, 1.0), (apron, 0.7), (tank_farm, 0.7))  # (planner, groups per 320^2 px)


def render_dense_scene(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, list[Pose]]:
    """One dense scene: (H, W, 3) uint8 BGR and the pose of every object, including those cut by the border."""
    canvas = paint_ground(rng, h, w)
    dense = DenseCanvas(canvas)
    area = h * w / 320**2
    planners = [plan for plan, rate in GROUPS for _ in range(rng.poisson(rate * area))]
    groups = [planners[k](rng, canvas) for k in rng.permutation(len(planners))]
    for centre, angle, length, width, colour, alpha in (pad for g in groups for pad in g.pads):
        _fill(canvas.image, _rotated(_rect(length, width), angle, centre), tuple(float(c) for c in colour), alpha)
    for cls, centre, angle, length in (spot for g in groups for spot in g.spots):
        place(rng, dense, cls, centre, angle, length)
    loners(rng, dense)
    place_clutter(rng, canvas)
    img = optics(rng, canvas.image)
    img += _noise(rng, h, w, 2)[..., None] * rng.uniform(0, 8)  # uneven illumination
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), dense.poses
