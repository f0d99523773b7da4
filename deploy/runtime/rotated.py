"""Geometry of oriented boxes (cx, cy, w, h, angle in radians, ultralytics' convention), in NumPy.

Corners, the canonical form ultralytics reports, enclosing axis-aligned boxes, its
probabilistic IoU (a Gaussian overlap: what its NMS and its OBB val use), and the exact
polygon IoU and clipping that tiles and DOTA-style figures need.
"""
import math

import numpy as np

CLIP_SLOTS = 8  # a quadrilateral clipped by four half-planes keeps at most 8 vertices


def corners(rboxes: np.ndarray) -> np.ndarray:
    """(N, 5) xywhr -> (N, 4, 2) corners, in the order ultralytics writes them."""
    r = np.asarray(rboxes, np.float64).reshape(-1, 5)
    cos, sin = np.cos(r[:, 4]), np.sin(r[:, 4])
    along = np.stack([r[:, 2] / 2 * cos, r[:, 2] / 2 * sin], -1)
    across = np.stack([-r[:, 3] / 2 * sin, r[:, 3] / 2 * cos], -1)
    ctr = r[:, :2]
    return np.stack([ctr + along + across, ctr + along - across, ctr - along - across, ctr - along + across], 1)


def regularize(rboxes: np.ndarray) -> np.ndarray:
    """Angles into [0, pi/2), swapping w and h where the angle moved by a quarter turn (ultralytics' rule)."""
    r = np.array(rboxes, np.float32).reshape(-1, 5)
    swap = np.mod(r[:, 4], math.pi) >= math.pi / 2
    r[swap, 2], r[swap, 3] = r[swap, 3].copy(), r[swap, 2].copy()
    r[:, 4] = np.mod(r[:, 4], math.pi / 2)
    return r


def enclosing(rboxes: np.ndarray) -> np.ndarray:
    """The axis-aligned xyxy boxes that enclose each oriented box."""
    r = np.asarray(rboxes, np.float32).reshape(-1, 5)
    cos, sin = np.abs(np.cos(r[:, 4])), np.abs(np.sin(r[:, 4]))
    half_w = (r[:, 2] * cos + r[:, 3] * sin) / 2
    half_h = (r[:, 2] * sin + r[:, 3] * cos) / 2
    return np.stack([r[:, 0] - half_w, r[:, 1] - half_h, r[:, 0] + half_w, r[:, 1] + half_h], 1)


def from_polygon(points: np.ndarray) -> np.ndarray:
    """The minimum-area rectangle around a polygon's points, as one xywhr row (w the longer side,
    angle in [-pi/4, 3pi/4), as ultralytics converts labels)."""
    import cv2

    (cx, cy), (w, h), degrees = cv2.minAreaRect(np.asarray(points, np.float32).reshape(-1, 2))
    theta = degrees / 180 * math.pi
    if w < h:
        w, h, theta = h, w, theta + math.pi / 2
    while theta >= 3 * math.pi / 4:
        theta -= math.pi
    while theta < -math.pi / 4:
        theta += math.pi
    return np.array([cx, cy, w, h, theta], np.float64)


def _covariance(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entries (a, b, c) of the covariance [[a, c], [c, b]] of each box's uniform Gaussian."""
    a, b = r[:, 2] ** 2 / 12, r[:, 3] ** 2 / 12
    cos, sin = np.cos(r[:, 4]), np.sin(r[:, 4])
    return a * cos**2 + b * sin**2, a * sin**2 + b * cos**2, (a - b) * cos * sin


def pair_probiou(boxes: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float32 probabilistic IoU of boxes[a[k]] and boxes[b[k]]: 1 - the Hellinger distance of their uniform
    Gaussians (ultralytics' formula), computed in float64 and rounded once, so that a value does not depend on
    how many pairs are computed together. Per box once: the covariance and the root of its determinant."""
    r = boxes.astype(np.float64)
    ca, cb, cc = _covariance(r)
    root = np.sqrt(np.clip(ca * cb - cc**2, 0, None))
    sa, sb, sc = ca[a] + ca[b], cb[a] + cb[b], cc[a] + cc[b]
    dx, dy = r[a, 0] - r[b, 0], r[a, 1] - r[b, 1]
    eps = 1e-7
    det = sa * sb - sc**2
    bd = (sa * dy**2 + sb * dx**2 - 2 * sc * dx * dy) / (det + eps) * 0.25 \
        + np.log(det / (4 * root[a] * root[b] + eps) + eps) * 0.5
    return (1 - np.sqrt(1 - np.exp(-np.clip(bd, eps, 100.0)) + eps)).astype(np.float32)


def probiou(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """(N, M) float32 probabilistic IoU of two sets of xywhr boxes (what ultralytics' NMS and OBB val use)."""
    r1 = np.asarray(r1, np.float32).reshape(-1, 5)
    r2 = np.asarray(r2, np.float32).reshape(-1, 5)
    i, j = np.divmod(np.arange(len(r1) * len(r2)), max(len(r2), 1))
    return pair_probiou(np.concatenate([r1, r2]), i, len(r1) + j).reshape(len(r1), len(r2))


def polygon_area(poly: np.ndarray) -> float:
    """Area of a simple polygon (shoelace), in the square of its units."""
    p = np.asarray(poly, np.float64).reshape(-1, 2)
    if len(p) < 3:
        return 0.0
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def clip_polygon(poly: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """The part of a convex polygon inside the window [x0, x1] x [y0, y1] (Sutherland-Hodgman); (0, 2) if none."""
    pts = [tuple(p) for p in np.asarray(poly, np.float64).reshape(-1, 2)]
    for axis, bound, keep_above in ((0, x0, True), (0, x1, False), (1, y0, True), (1, y1, False)):
        if not pts:
            break
        inside = [(p[axis] >= bound) if keep_above else (p[axis] <= bound) for p in pts]
        out = []
        for k, p in enumerate(pts):
            q, q_in = pts[k - 1], inside[k - 1]
            if inside[k] != q_in:  # the edge q -> p crosses the bound
                t = (bound - q[axis]) / (p[axis] - q[axis])
                out.append((q[0] + t * (p[0] - q[0]), q[1] + t * (p[1] - q[1])))
            if inside[k]:
                out.append(p)
        pts = out
    return np.array(pts, np.float64).reshape(-1, 2)


def quad_overlaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P,) areas of the intersections of convex quadrilaterals a[k] and b[k], (P, 4, 2) each, all at once:
    a clipped by each edge of b in turn (Sutherland-Hodgman, at most 8 vertices survive). Exact for
    near-identical shapes, where cv2.intersectConvexConvex can lose half."""
    a = np.asarray(a, np.float64).reshape(-1, 4, 2)
    b = np.asarray(b, np.float64).reshape(-1, 4, 2)
    count = len(a)
    if count == 0:
        return np.zeros(0)
    x, y = b[..., 0], b[..., 1]
    clockwise = (x * np.roll(y, -1, 1) - y * np.roll(x, -1, 1)).sum(1) < 0
    b = np.where(clockwise[:, None, None], b[:, ::-1], b)  # "inside" is to the left of each edge
    rows, slots = np.arange(count)[:, None], np.arange(CLIP_SLOTS)[None, :]
    pts = np.zeros((count, CLIP_SLOTS, 2))
    pts[:, :4] = a
    n = np.full(count, 4)
    for e in range(4):
        p0, edge = b[:, e], b[:, (e + 1) % 4] - b[:, e]
        valid = slots < n[:, None]
        side = edge[:, None, 0] * (pts[..., 1] - p0[:, None, 1]) - edge[:, None, 1] * (pts[..., 0] - p0[:, None, 0])
        prev = (slots - 1) % np.maximum(n, 1)[:, None]
        q, side_q = pts[rows, prev], side[rows, prev]
        crossing = valid & ((side >= 0) != (side_q >= 0))  # the edge q -> p crosses the clip line
        t = np.where(crossing, side_q / np.where(crossing, side_q - side, 1.0), 0.0)
        candidates = np.stack([q + t[..., None] * (pts - q), pts], 2).reshape(count, 2 * CLIP_SLOTS, 2)
        kept = np.stack([crossing, valid & (side >= 0)], 2).reshape(count, 2 * CLIP_SLOTS)
        place = np.cumsum(kept, axis=1) - 1  # each kept point's slot, in polygon order
        r, c = np.nonzero(kept & (place < CLIP_SLOTS))
        pts = np.zeros((count, CLIP_SLOTS, 2))
        pts[r, place[r, c]] = candidates[r, c]
        n = np.minimum(kept.sum(1), CLIP_SLOTS)
    valid = slots < n[:, None]
    following = (slots + 1) % np.maximum(n, 1)[:, None]
    xs, ys = pts[..., 0], pts[..., 1]
    twice = np.where(valid, xs * ys[rows, following] - ys * xs[rows, following], 0.0).sum(1)
    return np.where(n >= 3, np.abs(twice) / 2, 0.0)


def polygon_iou(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """(N, M) exact IoU of the rectangles of two sets of xywhr boxes (the DOTA-style overlap)."""
    c1, c2 = corners(r1), corners(r2)
    area1 = np.asarray(r1, np.float64).reshape(-1, 5)[:, 2:4].prod(1)
    area2 = np.asarray(r2, np.float64).reshape(-1, 5)[:, 2:4].prod(1)
    box1, box2 = enclosing(r1), enclosing(r2)
    out = np.zeros((len(c1), len(c2)), np.float64)
    i, j = np.nonzero((box2[None, :, 0] < box1[:, None, 2]) & (box2[None, :, 2] > box1[:, None, 0]) &
                      (box2[None, :, 1] < box1[:, None, 3]) & (box2[None, :, 3] > box1[:, None, 1]))
    inter = quad_overlaps(c1[i], c2[j])
    union = area1[i] + area2[j] - inter
    out[i, j] = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return out
