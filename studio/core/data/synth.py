"""A synthetic aerial dataset: objects drawn on textured ground, with YOLO labels and a data.yaml.

Nothing can be downloaded here, so the studio makes its own data. Every image comes from
its own generator seeded by (seed, index): the same seed gives the same bytes, and
asking for more images keeps the first ones unchanged.

This is the first, simple version (shapes on textured ground); the data issue deepens it.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy.errors import UserError

CLASSES = ("vehicle", "storage-tank", "plane", "ship")


@dataclass
class SynthConfig:
    """What to generate; defaults make a small dataset that a detector learns in minutes."""

    out: Path
    images: int = 200  # total, split into train and val
    size: int = 320  # square image side in pixels
    seed: int = 0
    val_fraction: float = 0.2  # the last images form the val split
    objects: tuple[int, int] = (3, 9)  # objects per image, inclusive range
    scale: tuple[float, float] = (0.06, 0.18)  # object length as a fraction of the image side


def _ground(rng: np.random.Generator, size: int) -> np.ndarray:
    """Earth-toned ground: a base colour plus noise at three scales, and sometimes a road."""
    import cv2

    base = rng.uniform([70, 90, 60], [140, 150, 120])  # BGR
    img = np.zeros((size, size, 3), np.float32) + base
    tint = rng.uniform(0.8, 1.2, 3).astype(np.float32)  # soil vs vegetation balance
    for cells, amp in ((4, 30.0), (16, 14.0), (size // 2, 8.0)):
        noise = rng.normal(0, 1, (cells, cells)).astype(np.float32)  # brightness, shared by the channels
        img += cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)[..., None] * amp * tint
    if rng.random() < 0.6:  # a straight grey road across the scene
        angle = rng.uniform(0, math.pi)
        cx, cy = rng.uniform(0, size, 2)
        dx, dy = math.cos(angle) * size * 2, math.sin(angle) * size * 2
        width = int(rng.integers(size // 40 + 2, size // 16 + 3))
        cv2.line(img, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), (105, 105, 110), width)
    return img


def _shape(cls: int, length: float) -> list[np.ndarray]:
    """Polygons (in object coordinates, centred on 0) that draw class `cls` at the given length."""
    half = length / 2
    if cls == 0:  # vehicle: a short rectangle with a windscreen
        w = half * 0.5
        screen = np.array([[0.3, -0.8], [0.6, -0.8], [0.6, 0.8], [0.3, 0.8]]) * [half, w]
        return [np.array([[-half, -w], [half, -w], [half, w], [-half, w]]), screen]
    if cls == 1:  # storage tank: a circle (polygon) with a darker roof ring
        t = np.linspace(0, 2 * math.pi, 24, endpoint=False)
        return [np.stack([np.cos(t), np.sin(t)], 1) * half, np.stack([np.cos(t), np.sin(t)], 1) * half * 0.6]
    if cls == 2:  # plane: fuselage and wings
        f, s = half * 0.18, half * 0.9
        return [np.array([[-half, -f], [half, -f], [half, f], [-half, f]]),
                np.array([[-f * 2, -s], [f * 1.5, -s], [f * 1.5, s], [-f * 2, s]]),
                np.array([[-half, -s * 0.4], [-half + f * 2, -s * 0.4], [-half + f * 2, s * 0.4], [-half, s * 0.4]])]
    w = half * 0.28  # ship: a long hull with a pointed bow
    return [np.array([[-half, -w], [half * 0.6, -w], [half, 0], [half * 0.6, w], [-half, w]])]


COLORS = {0: ((40, 40, 200), (230, 230, 230)), 1: ((225, 225, 225), (170, 170, 170)),
          2: ((235, 235, 235), (200, 200, 205)), 3: ((60, 60, 60), (245, 245, 245))}  # BGR fill, detail


def _draw_object(img: np.ndarray, rng: np.random.Generator, cls: int, cfg: SynthConfig) -> list[float] | None:
    """Draw one object at a random place, size and rotation; return its YOLO label (cls cx cy w h)."""
    import cv2

    size = cfg.size
    length = rng.uniform(*cfg.scale) * size
    angle = rng.uniform(0, 2 * math.pi)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    centre = rng.uniform(length / 2, size - length / 2, 2)
    polys = [p @ rot.T + centre for p in _shape(cls, length)]
    shadow = [p + length * 0.08 for p in polys[:1]]
    cv2.fillPoly(img, [np.round(shadow[0]).astype(np.int32)], (30, 35, 30), lineType=cv2.LINE_AA)
    fill, detail = COLORS[cls]
    jitter = rng.uniform(-25, 25)
    for i, poly in enumerate(polys):
        colour = tuple(float(np.clip(c + jitter, 0, 255)) for c in (fill if i != 1 else detail))
        cv2.fillPoly(img, [np.round(poly).astype(np.int32)], colour, lineType=cv2.LINE_AA)
    pts = np.concatenate(polys)
    x0, y0 = np.clip(pts.min(0), 0, size)
    x1, y1 = np.clip(pts.max(0), 0, size)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return [cls, (x0 + x1) / 2 / size, (y0 + y1) / 2 / size, (x1 - x0) / size, (y1 - y0) / size]


def render_image(cfg: SynthConfig, index: int) -> tuple[np.ndarray, list[list[float]]]:
    """One BGR image and its labels, determined by (cfg.seed, index) alone."""
    rng = np.random.default_rng([cfg.seed, index])
    img = _ground(rng, cfg.size)
    labels = []
    for _ in range(int(rng.integers(cfg.objects[0], cfg.objects[1] + 1))):
        label = _draw_object(img, rng, int(rng.integers(len(CLASSES))), cfg)
        if label:
            labels.append(label)
    img += rng.normal(0, 3, img.shape)  # sensor noise
    return np.clip(img, 0, 255).astype(np.uint8), labels


def write_data_yaml(out: Path, names: tuple[str, ...] | list[str]) -> Path:
    """A data.yaml that ultralytics reads; paths are relative to the yaml's own folder."""
    lines = ["# written by studio data synth", "train: images/train", "val: images/val", "names:"]
    lines += [f"  {i}: {n}" for i, n in enumerate(names)]
    path = out / "data.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def generate(cfg: SynthConfig, progress: Callable[[int, int], None] | None = None) -> Path:
    """Write images/, labels/ (train and val) and data.yaml under cfg.out; return the data.yaml."""
    import cv2

    if cfg.images < 2:
        raise UserError("--images must be at least 2 (one train and one val image)")
    if cfg.size < 64 or cfg.size % 32:
        raise UserError(f"--size {cfg.size} must be a multiple of 32, at least 64")
    n_val = max(1, int(round(cfg.images * cfg.val_fraction)))
    for i in range(cfg.images):
        split = "val" if i >= cfg.images - n_val else "train"
        img, labels = render_image(cfg, i)
        for sub in ("images", "labels"):
            (cfg.out / sub / split).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(cfg.out / "images" / split / f"{i:06d}.png"), img)
        text = "".join(f"{int(c)} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in labels)
        (cfg.out / "labels" / split / f"{i:06d}.txt").write_text(text)
        if progress:
            progress(i + 1, cfg.images)
    return write_data_yaml(cfg.out, CLASSES)
