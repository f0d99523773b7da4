"""`studio data synth`: a synthetic remote-sensing dataset in YOLO layout, with a data.yaml.

Nothing can be downloaded here, so the studio makes its own data (see aerial.py for how
scenes are painted). Every image comes from its own generator seeded by (seed, index),
so the same seed gives the same bytes and asking for more images keeps the first ones.

    studio data synth --out data/synth --images 1200 --size 320 --scenes 3
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy.errors import UserError
from deploy.runtime.output import Output, write_image
from studio.core.data.aerial import CLASSES, paint_scene
from studio.core.data.aerial_dense import render_dense_scene
from studio.core.data.formats import write_data_yaml
from studio.core.data.oriented import box_row, label_text, obb_row, oriented_corners, upright_box

SCENE_SEED_OFFSET = 1_000_000  # scenes draw from their own seed stream
GENERATORS = ("sparse-1", "dense-1")  # sparse-1: the first generator, whose bytes never change
TASKS = ("detect", "obb")


@dataclass
class SynthConfig:
    """What to generate. Object sizes are fixed in pixels: a larger image shows more ground."""

    out: Path
    images: int = 200  # tiles of training data, split train / val / test
    size: int = 320  # square image side in pixels
    seed: int = 0
    val_fraction: float = 0.2  # images after the train split
    test_fraction: float = 0.1  # the last images
    scenes: int = 0  # large scenes for the tiling demo, written as the split "scenes"
    scene_size: int = 2048
    force: bool = False  # replace an existing `out` (wholly: old and new images are never mixed)
    generator: str = "sparse-1"  # sparse-1: scattered objects; dense-1: rows of touching, rotated objects
    task: str = "detect"  # detect: axis-aligned boxes; obb: oriented boxes (four corners)


def render_image(cfg: SynthConfig, index: int, size: int | None = None) -> tuple[np.ndarray, list[list[float]]]:
    """One BGR image and its YOLO labels from (cfg.seed, index) alone: [cls, cx, cy, w, h] for detect,
    [cls, x1, y1, ..., x4, y4] for obb, normalized."""
    side = size or cfg.size
    rng = np.random.default_rng([cfg.seed, index])
    if cfg.generator == "sparse-1" and cfg.task == "detect":  # boxes around the painted parts, as ever
        image, canvas = paint_scene(rng, side, side)
        return image, [box_row(c, box, 0, 0, side, side) for c, *box in canvas.labels]
    if cfg.generator == "sparse-1":
        image, canvas = paint_scene(rng, side, side)
        poses = canvas.poses
    else:
        image, poses = render_dense_scene(rng, side, side)
    rows = []
    for pose in poses:
        quad = pose.corners()
        if cfg.task == "obb":
            kept = oriented_corners(quad, 0, 0, side, side)
            rows += [obb_row(pose.cls, kept, 0, 0, side, side)] if kept is not None else []
        else:
            box = upright_box(quad, 0, 0, side, side)
            rows += [box_row(pose.cls, box, 0, 0, side, side)] if box is not None else []
    return image, rows


def split_of(index: int, cfg: SynthConfig) -> str:
    """train for the first images, then val, then test."""
    n_test = int(round(cfg.images * cfg.test_fraction))
    n_val = max(1, int(round(cfg.images * cfg.val_fraction)))
    if index >= cfg.images - n_test:
        return "test"
    return "val" if index >= cfg.images - n_test - n_val else "train"


def _write(out: Path, split: str, stem: str, image: np.ndarray, labels: list[list[float]]) -> None:
    for sub in ("images", "labels"):
        (out / sub / split).mkdir(parents=True, exist_ok=True)
    write_image(out / "images" / split / f"{stem}.png", image)
    (out / "labels" / split / f"{stem}.txt").write_text(label_text(labels))


def generate(cfg: SynthConfig, progress: Callable[[int, int], None] | None = None,
             splits: tuple[str, ...] = ("train", "val", "test")) -> Path:
    """Write images/ and labels/ for the splits (and scenes), plus data.yaml; return the yaml.

    Asking for fewer splits (say, only "val" to evaluate a bundled model) writes exactly the
    images a full run would have put there.
    """
    if cfg.generator not in GENERATORS:
        raise UserError(f"--generator {cfg.generator}: choose one of {', '.join(GENERATORS)}")
    if cfg.task not in TASKS:
        raise UserError(f"--task {cfg.task}: choose one of {', '.join(TASKS)}")
    if cfg.images < 3:
        raise UserError("--images must be at least 3 (train, val and test get one each)")
    if cfg.size < 64 or cfg.size % 32:
        raise UserError(f"--size {cfg.size} must be a multiple of 32, at least 64")
    if cfg.scenes and cfg.scene_size < cfg.size:
        raise UserError(f"--scene-size {cfg.scene_size} must be at least --size {cfg.size}")
    total = cfg.images + cfg.scenes
    need = 2 * (cfg.images * cfg.size**2 + cfg.scenes * cfg.scene_size**2)  # their PNGs take 1.4-1.8 bytes a pixel
    with Output(cfg.out, force=cfg.force, need_bytes=need) as staging:
        for i in range(cfg.images):
            if split_of(i, cfg) in splits:
                _write(staging, split_of(i, cfg), f"{i:06d}", *render_image(cfg, i))
            if progress:
                progress(i + 1, total)
        for k in range(cfg.scenes):
            image, labels = render_image(cfg, SCENE_SEED_OFFSET + k, cfg.scene_size)
            _write(staging, "scenes", f"scene_{k:03d}", image, labels)
            if progress:
                progress(cfg.images + k + 1, total)
        written = [s for s in splits if any(split_of(i, cfg) == s for i in range(cfg.images))]
        write_data_yaml(staging, CLASSES, tuple(written),
                        f"studio data synth --generator {cfg.generator} --task {cfg.task} --seed {cfg.seed}")
    return cfg.out / "data.yaml"
