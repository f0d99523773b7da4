"""Synthetic YOLO head outputs with a known number of objects, for post-processing tests and benchmarks.

Each object lights a 3x3 patch of anchors on one pyramid level with decreasing scores for
one class, and the box logits there peak at plausible distances; the background stays
below any useful threshold. Int8 variants use the grids an NPU would.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

STRIDES = (8, 16, 32)
BOX_SCALE, BOX_ZP = 20.0 / 255, -77  # int8 grid of box logits in [-8, 12]
CLS_SCALE, CLS_ZP = 1.0 / 255, -128  # int8 grid of sigmoid scores in [0, 1]


@dataclass
class Heads:
    outputs: list[np.ndarray]  # [box0, cls0, box1, cls1, box2, cls2], each (B, C, h, w)
    strides: tuple[int, ...] = STRIDES
    quant: list[tuple[float, int]] | None = None  # per output, when int8
    objects: list[tuple[int, int, int, int]] | None = None  # (frame, level, row, column) of each planted object


def synthetic_heads(nc: int = 80, imgsz: int = 512, objects: int = 30, batch: int = 1, seed: int = 0,
                    background: float = 0.05, everything: bool = False) -> Heads:
    """Float heads: `objects` objects per frame; `everything` lifts every score above 0.5."""
    rng = np.random.default_rng(seed)
    outputs = []
    grids = [(imgsz // s, imgsz // s) for s in STRIDES]
    for h, w in grids:
        box = rng.normal(0.0, 1.5, (batch, 64, h, w)).astype(np.float32)
        cls = (rng.random((batch, nc, h, w)) * background).astype(np.float32)
        if everything:
            cls += np.float32(0.5)
        outputs += [box, cls]
    planted = []
    for b in range(batch):
        for _ in range(objects):
            level = int(rng.integers(len(grids)))
            h, w = grids[level]
            y, x, c = int(rng.integers(h)), int(rng.integers(w)), int(rng.integers(nc))
            planted.append((b, level, y, x))
            peak = rng.uniform(0.5, 0.99)
            ltrb = rng.integers(1, 8, 4)  # favourite bin per side
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w:
                        decay = 1.0 if dy == dx == 0 else rng.uniform(0.45, 0.85)
                        outputs[2 * level + 1][b, c, yy, xx] = max(outputs[2 * level + 1][b, c, yy, xx],
                                                                   peak * decay)
                        logits = outputs[2 * level][b, :, yy, xx].reshape(4, 16)
                        logits[np.arange(4), ltrb + np.array([dx, dy, -dx, -dy]).clip(-1, 1)] += 6.0
    return Heads(outputs, objects=planted)


def quantize_heads(heads: Heads, cls_grid: tuple[float, int] = (CLS_SCALE, CLS_ZP)) -> Heads:
    """The same heads on the int8 grids an NPU would output (cls_grid: LOGIT_GRID for logit heads)."""
    quant, outputs = [], []
    for i, out in enumerate(heads.outputs):
        scale, zp = (BOX_SCALE, BOX_ZP) if i % 2 == 0 else cls_grid
        outputs.append(np.clip(np.rint(out / scale) + zp, -128, 127).astype(np.int8))
        quant.append((scale, zp))
    return Heads(outputs, heads.strides, quant)


LOGIT_GRID = (24.0 / 255, 85)  # int8 grid of class logits in [-20, 4]


def as_logits(heads: Heads) -> Heads:
    """The same float heads with class outputs as logits (what `--scores logits` exports)."""
    outputs = list(heads.outputs)
    for i in range(1, len(outputs), 2):
        p = np.clip(outputs[i], 1e-7, 1 - 1e-7)
        outputs[i] = np.log(p / (1 - p)).astype(np.float32)
    return Heads(outputs, heads.strides)


ANGLE_SCALE, ANGLE_ZP = math.pi / 255, -64  # int8 grid of angles in [-pi/4, 3pi/4]: -pi/4 is -128
OBB_BOX_SCALE, OBB_BOX_ZP = 20.0 / 255, 25  # int8 grid of box logits in [-12, 8]: a trained head's quiet bins
TAIL = -12.0  # the logit of the bins far from an object's distance


def synthetic_obb_heads(nc: int = 15, imgsz: int = 512, objects: int = 100, batch: int = 1, seed: int = 0,
                        background: float = 0.05, wrap: bool = False, squares: bool = False) -> Heads:
    """Float OBB heads [box, cls, angle] per level with `objects` rotated objects per frame.

    Each object lights a 3x3 patch of anchors (decreasing scores, one class); every anchor of
    the patch holds the object's own angle and the distances, in the object's turned frame,
    that decode to the object's box, so the patch collapses to one detection under NMS as a
    trained model's would. `wrap` puts angles within a degree of -pi/4, pi/4 and 3pi/4 (where
    regularization swaps the sides); `squares` gives objects of equal sides (ambiguous angle).
    """
    rng = np.random.default_rng(seed)
    grids = [(imgsz // s, imgsz // s) for s in STRIDES]
    outputs = []
    for h, w in grids:
        outputs += [rng.normal(0.0, 1.5, (batch, 64, h, w)).astype(np.float32),
                    (rng.random((batch, nc, h, w)) * background).astype(np.float32),
                    rng.uniform(-math.pi / 4, 3 * math.pi / 4, (batch, 1, h, w)).astype(np.float32)]
    planted = []
    for b in range(batch):
        for _ in range(objects):
            level = int(rng.integers(len(grids)))
            h, w = grids[level]
            centre = rng.uniform([1, 1], [w - 1, h - 1])  # in cells
            size = rng.uniform(1.5, 9.0, 2)
            if squares:
                size[1] = size[0]
            if wrap:
                theta = rng.choice([-math.pi / 4, math.pi / 4, 3 * math.pi / 4]) + rng.uniform(-0.015, 0.015)
                theta = float(np.clip(theta, -math.pi / 4, 3 * math.pi / 4 - 1e-4))
            else:
                theta = rng.uniform(-math.pi / 4, 3 * math.pi / 4)
            _plant(outputs[3 * level : 3 * level + 3], b, centre, size, theta, int(rng.integers(nc)),
                   rng.uniform(0.5, 0.99), rng)
            planted.append((b, level, int(centre[1]), int(centre[0])))
    return Heads(outputs, objects=planted)


def _plant(level: list[np.ndarray], b: int, centre: np.ndarray, size: np.ndarray, theta: float, cls: int,
           peak: float, rng: np.random.Generator) -> None:
    """Write one object into a level's [box, cls, angle] outputs: the anchors around its centre."""
    box, scores, angle = level
    h, w = scores.shape[2:]
    cos, sin = math.cos(theta), math.sin(theta)
    col, row = int(centre[0]), int(centre[1])
    for yy in range(row - 1, row + 2):
        for xx in range(col - 1, col + 2):
            if not (0 <= yy < h and 0 <= xx < w):
                continue
            d = centre - (xx + 0.5, yy + 0.5)  # anchor to centre, image axes
            along, across = d[0] * cos + d[1] * sin, -d[0] * sin + d[1] * cos  # in the object's frame
            ltrb = np.array([size[0] / 2 - along, size[1] / 2 - across, size[0] / 2 + along, size[1] / 2 + across])
            if (ltrb < 0).any() or (ltrb > 14.9).any():
                continue  # this anchor lies outside the object: it stays background
            decay = 1.0 if (yy, xx) == (row, col) else rng.uniform(0.45, 0.85)
            scores[b, cls, yy, xx] = max(scores[b, cls, yy, xx], peak * decay)
            angle[b, 0, yy, xx] = theta
            bins = np.full((4, 16), TAIL, np.float32)
            low = np.floor(ltrb).astype(int)
            frac = ltrb - low
            bins[np.arange(4), low] = np.log(np.maximum(1 - frac, np.exp(TAIL)))
            bins[np.arange(4), low + 1] = np.log(np.maximum(frac, np.exp(TAIL)))
            box[b, :, yy, xx] = bins.reshape(-1)


def quantize_obb_heads(heads: Heads) -> Heads:
    """OBB heads on the int8 grids an NPU would output."""
    quant, outputs = [], []
    for i, out in enumerate(heads.outputs):
        scale, zp = ((OBB_BOX_SCALE, OBB_BOX_ZP), (CLS_SCALE, CLS_ZP), (ANGLE_SCALE, ANGLE_ZP))[i % 3]
        outputs.append(np.clip(np.rint(out / scale) + zp, -128, 127).astype(np.int8))
        quant.append((scale, zp))
    return Heads(outputs, heads.strides, quant)
