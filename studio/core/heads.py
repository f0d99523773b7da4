"""Synthetic YOLO head outputs with a known number of objects, for post-processing tests and benchmarks.

Each object lights a 3x3 patch of anchors on one pyramid level with decreasing scores for
one class, and the box logits there peak at plausible distances; the background stays
below any useful threshold. Int8 variants use the grids an NPU would.
"""
from __future__ import annotations

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
    for b in range(batch):
        for _ in range(objects):
            level = int(rng.integers(len(grids)))
            h, w = grids[level]
            y, x, c = int(rng.integers(h)), int(rng.integers(w)), int(rng.integers(nc))
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
    return Heads(outputs)


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
