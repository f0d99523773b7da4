"""Paint synthetic aerial scenes: ground, fields, water and roads, objects in clusters, look-alike clutter.

Sizes are in pixels at a fixed ground resolution (a car is 9-20 px long), so a larger
image covers more ground rather than showing bigger objects, as with a real sensor. Most
objects are therefore small, as in remote-sensing datasets. Everything is drawn from one
numpy Generator, so a scene is a pure function of its seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

CLASSES = ("vehicle", "storage-tank", "plane", "ship")
LENGTH_PX = {0: (10, 22), 1: (12, 40), 2: (20, 64), 3: (16, 60)}  # long side, per class
LARGE_PX = {0: (24, 34), 1: (48, 84), 2: (72, 128), 3: (70, 150)}  # trucks, big tanks, airliners, cargo ships
LARGE_ODDS = {0: 0.03, 1: 0.15, 2: 0.4, 3: 0.45}  # how often an object is of the large kind
PAINT = {1: (220, 222, 225), 2: (225, 228, 230), 3: (210, 210, 205)}  # tanks, planes, ships (cars: CAR_COLOURS)
CAR_COLOURS = [(40, 40, 190), (230, 230, 230), (35, 35, 35), (170, 170, 175), (150, 80, 30), (40, 190, 220)]


@dataclass
class Canvas:
    """A scene being painted (BGR float32) and what is already placed on it."""

    image: np.ndarray
    water: np.ndarray  # (H, W) bool
    roads: list = field(default_factory=list)  # (start, end, width) of each road
    taken: list = field(default_factory=list)  # xyxy boxes of everything placed (objects and clutter)
    labels: list = field(default_factory=list)  # (class, x0, y0, x1, y1)
    poses: list = field(default_factory=list)  # the Pose of each labelled object
    sun: np.ndarray = field(default_factory=lambda: np.zeros(2))  # shadow offset direction

    @property
    def hw(self) -> tuple[int, int]:
        return self.image.shape[:2]


@dataclass(frozen=True)
class Pose:
    """One object's rectangle: class, centre, length (along `angle`), width, angle in radians; image pixels."""

    cls: int
    cx: float
    cy: float
    length: float
    width: float
    angle: float

    def corners(self) -> np.ndarray:
        return _rotated(_rect(self.length, self.width), self.angle, (self.cx, self.cy))


def pose_of(cls: int, parts: list[tuple[np.ndarray, float]], angle: float, centre) -> Pose:
    """The rectangle around an object's unrotated parts, turned by `angle` and moved to `centre`."""
    pts = np.concatenate([p for p, _ in parts])
    lo, hi = pts.min(0), pts.max(0)
    offset = _rotated(((lo + hi) / 2)[None], angle, (0, 0))[0]
    return Pose(cls, float(centre[0] + offset[0]), float(centre[1] + offset[1]), float(hi[0] - lo[0]),
                float(hi[1] - lo[1]), float(angle))


def _noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth noise in [-1, 1]-ish at a scale of `cells` blobs across the image."""
    grid = rng.normal(0, 1, (max(2, cells * h // max(h, w)), max(2, cells * w // max(h, w)))).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _rotated(points: np.ndarray, angle: float, centre) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]]) + np.asarray(centre, dtype=np.float64)


def _rect(length: float, width: float) -> np.ndarray:
    return np.array([[-length, -width], [length, -width], [length, width], [-length, width]]) / 2


def _fill(img: np.ndarray, poly: np.ndarray, colour, alpha: float = 1.0) -> None:
    """Fill a polygon, optionally blended (alpha < 1) with what is under it."""
    pts = [np.round(poly * 4).astype(np.int32)]  # 2 fractional bits: sub-pixel edges
    if alpha >= 1.0:
        cv2.fillPoly(img, pts, colour, lineType=cv2.LINE_AA, shift=2)
        return
    x0, y0 = np.floor(poly.min(0)).astype(int) - 2
    x1, y1 = np.ceil(poly.max(0)).astype(int) + 2
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return
    patch = img[y0:y1, x0:x1]
    layer = patch.copy()
    cv2.fillPoly(layer, [np.round((poly - [x0, y0]) * 4).astype(np.int32)], colour, lineType=cv2.LINE_AA, shift=2)
    patch[:] = patch * (1 - alpha) + layer * alpha


def paint_ground(rng: np.random.Generator, h: int, w: int) -> Canvas:
    """Soil and vegetation with texture at three scales, fields, sometimes water, and roads."""
    base = rng.uniform([50, 80, 70], [110, 150, 145])  # BGR: greens to browns
    base[2] = min(base[2], base[1] * 1.1)  # no pink soil
    tint = rng.uniform(0.9, 1.1, 3).astype(np.float32)
    img = np.zeros((h, w, 3), np.float32) + base.astype(np.float32)
    for cells, amp in ((3, 28.0), (12, 12.0), (max(h, w) // 3, 6.0)):
        img += _noise(rng, h, w, cells)[..., None] * amp * tint
    canvas = Canvas(img, np.zeros((h, w), bool), sun=rng.normal(0, 1, 2))
    canvas.sun /= np.linalg.norm(canvas.sun) + 1e-9
    area = h * w / 320**2
    for _ in range(rng.poisson(1.5 * area)):  # fields: rotated rectangles with furrows
        centre = rng.uniform(0, [w, h])
        size = rng.uniform(60, 200, 2)
        angle = rng.uniform(0, math.pi)
        colour = base * rng.uniform(0.75, 1.3, 3)
        poly = _rotated(_rect(*size), angle, centre)
        _fill(img, poly, tuple(colour.tolist()), alpha=0.7)
        for t in np.arange(-size[1] / 2, size[1] / 2, rng.uniform(3, 7)):
            line = _rotated(np.array([[-size[0] / 2, t], [size[0] / 2, t]]), angle, centre)
            cv2.line(img, tuple(np.round(line[0]).astype(int)), tuple(np.round(line[1]).astype(int)),
                     tuple((colour * 0.9).tolist()), 1, cv2.LINE_AA)
    if rng.random() < 0.45:  # water: a smooth dark region with a soft shore
        level = _noise(rng, h, w, 3) + rng.uniform(-0.6, 0.4)
        canvas.water = level > 0
        soft = np.clip(level * 4, 0, 1)[..., None]
        water = np.array(rng.uniform([70, 60, 20], [110, 95, 60]), np.float32)  # BGR: blue-green
        img[:] = img * (1 - soft) + (water + _noise(rng, h, w, 40)[..., None] * 3) * soft
    for _ in range(rng.poisson(1.2 * math.sqrt(area)) + (1 if rng.random() < 0.5 else 0)):
        angle = rng.uniform(0, math.pi)
        centre = rng.uniform(0, [w, h])
        reach = 2 * max(h, w)
        start = centre - reach * np.array([math.cos(angle), math.sin(angle)])
        end = centre + reach * np.array([math.cos(angle), math.sin(angle)])
        width = int(rng.integers(7, 15))
        grey = rng.uniform(85, 125)
        cv2.line(img, tuple(start.astype(int)), tuple(end.astype(int)), (grey, grey, grey + 3), width, cv2.LINE_AA)
        canvas.roads.append((start, end, width))
    return canvas


def _free(canvas: Canvas, box: np.ndarray, margin: float = 2.0) -> bool:
    """Inside the image and clear of everything placed so far."""
    h, w = canvas.hw
    if box[0] < 1 or box[1] < 1 or box[2] > w - 1 or box[3] > h - 1:
        return False
    for other in canvas.taken:
        if box[0] < other[2] + margin and other[0] < box[2] + margin and box[1] < other[3] + margin \
                and other[1] < box[3] + margin:
            return False
    return True


def _shadow(canvas: Canvas, poly: np.ndarray, length: float) -> None:
    _fill(canvas.image, poly + canvas.sun * max(1.5, length * 0.12), (25, 30, 25), alpha=0.45)


def _contrast(rng: np.random.Generator, canvas: Canvas, colour, centre) -> tuple:
    """Usually the object's own colour; one time in five, faded toward the ground beneath it."""
    if rng.random() >= 0.2:
        return tuple(float(c) for c in colour)
    x, y = int(np.clip(centre[0], 0, canvas.hw[1] - 1)), int(np.clip(centre[1], 0, canvas.hw[0] - 1))
    ground = canvas.image[y, x]
    mix = rng.uniform(0.45, 0.65)
    return tuple(float(c) for c in np.asarray(colour) * (1 - mix) + ground * mix)


def object_polygons(cls: int, length: float, rng: np.random.Generator) -> list[tuple[np.ndarray, float]]:
    """The parts of one object, centred on 0 and unrotated, each with a brightness factor."""
    if cls == 0:  # vehicle: body and a darker windscreen
        width = length * rng.uniform(0.42, 0.5)
        screen = _rect(length * 0.18, width * 0.8) + [length * 0.18, 0]
        return [(_rect(length, width), 1.0), (screen, 0.35)]
    if cls == 1:  # storage tank: a disc with a darker roof ring and a centre
        t = np.linspace(0, 2 * math.pi, 28, endpoint=False)
        circle = np.stack([np.cos(t), np.sin(t)], 1) * length / 2
        return [(circle, 1.0), (circle * 0.72, 0.78), (circle * 0.18, 0.6)]
    if cls == 2:  # plane: fuselage, swept wings, tailplane
        f = length * 0.09
        span = length * rng.uniform(0.85, 1.0) / 2
        fuselage = _rect(length, 2 * f)
        wings = np.array([[f * 1.5, 0], [-f * 2.2, span], [-f * 3.6, span], [-f * 1.2, 0],
                          [-f * 3.6, -span], [-f * 2.2, -span]])
        tail = np.array([[-length / 2 + f * 1.8, 0], [-length / 2, span * 0.38], [-length / 2, -span * 0.38]])
        return [(fuselage, 1.0), (wings, 0.95), (tail, 0.95)]
    width = length * rng.uniform(0.2, 0.3)  # ship: hull with a pointed bow and a deckhouse
    hull = np.array([[-length / 2, -width / 2], [length * 0.25, -width / 2], [length / 2, 0],
                     [length * 0.25, width / 2], [-length / 2, width / 2]])
    return [(hull, 1.0), (_rect(length * 0.22, width * 0.6) - [length * 0.18, 0], 0.7)]


def object_length(rng: np.random.Generator, cls: int) -> float:
    """Mostly small, with a tail of large ones so every pyramid level of a detector has work."""
    return rng.uniform(*(LARGE_PX if rng.random() < LARGE_ODDS[cls] else LENGTH_PX)[cls])


def place_object(rng: np.random.Generator, canvas: Canvas, cls: int, centre, angle: float,
                 length: float | None = None, colour=None) -> bool:
    """Draw one labelled object if its box is free; returns whether it was placed."""
    length = length if length is not None else object_length(rng, cls)
    shape = object_polygons(cls, length, rng)
    parts = [(_rotated(p, angle, centre), k) for p, k in shape]
    pts = np.concatenate([p for p, _ in parts])
    box = np.concatenate([pts.min(0), pts.max(0)])
    if not _free(canvas, box):
        return False
    if colour is None:
        base = {0: CAR_COLOURS[int(rng.integers(len(CAR_COLOURS)))], **PAINT}[cls]
        colour = np.array(base, np.float64) * rng.uniform(0.85, 1.1)
    colour = _contrast(rng, canvas, colour, centre)
    if cls != 3:  # ships sit on water: no cast shadow, a pale wake instead
        _shadow(canvas, parts[0][0], length)
    else:
        wake = _rotated(np.array([[-length / 2, -length * 0.08], [-length * 1.2, -length * 0.18],
                                  [-length * 1.2, length * 0.18], [-length / 2, length * 0.08]]), angle, centre)
        _fill(canvas.image, wake, (190, 190, 180), alpha=0.12)
    for poly, k in parts:
        _fill(canvas.image, poly, tuple(c * k for c in colour))
    canvas.taken.append(box)
    canvas.labels.append((cls, *box.tolist()))
    canvas.poses.append(pose_of(cls, shape, angle, centre))
    return True


def _random_point(rng: np.random.Generator, canvas: Canvas, on_water: bool | None = None, tries: int = 30):
    h, w = canvas.hw
    for _ in range(tries):
        p = rng.uniform([8, 8], [w - 8, h - 8])
        if on_water is None or canvas.water[int(p[1]), int(p[0])] == on_water:
            return p
    return None


def place_objects(rng: np.random.Generator, canvas: Canvas) -> None:
    """Parking rows, vehicles on roads, tank farms, planes on land, ships on water."""
    area = canvas.hw[0] * canvas.hw[1] / 320**2
    for _ in range(rng.poisson(1.2 * area)):  # parking rows
        start = _random_point(rng, canvas, on_water=False)
        if start is None:
            continue
        angle = rng.uniform(0, math.pi)
        length = rng.uniform(*LENGTH_PX[0])
        along = np.array([math.cos(angle), math.sin(angle)])
        across = np.array([-along[1], along[0]])
        for r in range(int(rng.integers(1, 3))):
            for k in range(int(rng.integers(2, 8))):
                if rng.random() < 0.8:
                    place_object(rng, canvas, 0, start + across * k * length * 0.62 + along * r * length * 1.25,
                                 angle + math.pi / 2 + rng.normal(0, 0.05), length * rng.uniform(0.92, 1.08))
    for start, end, _ in canvas.roads:  # traffic
        for t in rng.uniform(0, 1, rng.poisson(2.0 * math.sqrt(area))):
            p = start + (end - start) * t
            heading = math.atan2(*(end - start)[::-1]) + (math.pi if rng.random() < 0.5 else 0)
            place_object(rng, canvas, 0, p, heading + rng.normal(0, 0.03))
    for _ in range(rng.poisson(0.5 * area)):  # tank farms
        start = _random_point(rng, canvas, on_water=False)
        if start is None:
            continue
        length = object_length(rng, 1)
        cols, rows = int(rng.integers(1, 4)), int(rng.integers(1, 3))
        for r in range(rows):
            for c in range(cols):
                place_object(rng, canvas, 1, start + np.array([c, r]) * length * 1.35, 0.0, length)
    for _ in range(rng.poisson(1.0 * area)):
        p = _random_point(rng, canvas, on_water=False)
        if p is not None:
            place_object(rng, canvas, 2, p, rng.uniform(0, 2 * math.pi))
    if canvas.water.any():
        for _ in range(rng.poisson(2.5 * area * canvas.water.mean() + 0.6)):
            p = _random_point(rng, canvas, on_water=True)
            if p is not None:
                place_object(rng, canvas, 3, p, rng.uniform(0, 2 * math.pi))


def place_clutter(rng: np.random.Generator, canvas: Canvas) -> None:
    """Unlabelled look-alikes: buildings, containers, round roofs, trees and rocks."""
    area = canvas.hw[0] * canvas.hw[1] / 320**2
    if rng.random() < 0.15:  # a few images stay clean
        return
    for _ in range(rng.poisson(3.0 * area)):
        p = _random_point(rng, canvas, on_water=False)
        if p is None:
            continue
        kind = rng.choice(["building", "container", "roof", "trees", "rock"], p=[0.25, 0.25, 0.15, 0.2, 0.15])
        angle = rng.uniform(0, math.pi)
        if kind == "building":  # larger than a vehicle, with a ridge line
            size = rng.uniform([22, 16], [60, 40])
            poly = _rotated(_rect(*size), angle, p)
            colour = rng.uniform(90, 170, 3)
            parts = [(poly, colour), (_rotated(_rect(size[0], 2), angle, p), colour * 0.7)]
        elif kind == "container":  # vehicle-coloured but longer and plain
            size = np.array([rng.uniform(22, 32), rng.uniform(7, 9)])
            parts = [(_rotated(_rect(*size), angle, p), np.array(CAR_COLOURS[int(rng.integers(6))]) * 0.9)]
        elif kind == "roof":  # round and pale like a tank, but flat: no roof ring
            t = np.linspace(0, 2 * math.pi, 24, endpoint=False)
            parts = [(np.stack([np.cos(t), np.sin(t)], 1) * rng.uniform(5, 16) + p, np.full(3, rng.uniform(150, 200)))]
        elif kind == "trees":
            parts = [(np.stack([np.cos(t), np.sin(t)], 1) * rng.uniform(3, 7) + p + rng.normal(0, 8, 2),
                      np.array([35, 70, 40]) * rng.uniform(0.7, 1.2)) for t in [np.linspace(0, 6.28, 12)] * 5]
        else:  # a grey rock, irregular
            t = np.linspace(0, 2 * math.pi, 9, endpoint=False)
            radius = rng.uniform(4, 12) * rng.uniform(0.6, 1.0, 9)
            parts = [(np.stack([np.cos(t), np.sin(t)], 1) * radius[:, None] + p, np.full(3, rng.uniform(100, 160)))]
        pts = np.concatenate([q for q, _ in parts])
        box = np.concatenate([pts.min(0), pts.max(0)])
        if not _free(canvas, box):
            continue
        _shadow(canvas, parts[0][0], float(np.ptp(pts[:, 0])))
        for poly, colour in parts:
            _fill(canvas.image, poly, tuple(float(c) for c in colour))
        canvas.taken.append(box)


def paint_scene(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, Canvas]:
    """One scene: (H, W, 3) uint8 BGR and the canvas that knows its objects (labels, poses) and clutter."""
    canvas = paint_ground(rng, h, w)
    place_objects(rng, canvas)
    place_clutter(rng, canvas)
    return np.clip(np.rint(optics(rng, canvas.image)), 0, 255).astype(np.uint8), canvas


def optics(rng: np.random.Generator, painted: np.ndarray) -> np.ndarray:
    """The painted scene as a camera sees it: a slight blur and sensor noise (float32)."""
    img = cv2.GaussianBlur(painted, (0, 0), rng.uniform(0.4, 0.8))
    img += rng.normal(0, rng.uniform(1.5, 4.0), img.shape).astype(np.float32)
    return img


def render_scene(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, list, int]:
    """One scene: (H, W, 3) uint8 BGR, labels [(class, x0, y0, x1, y1)] in pixels, and the clutter count."""
    image, canvas = paint_scene(rng, h, w)
    return image, canvas.labels, len(canvas.taken) - len(canvas.labels)
