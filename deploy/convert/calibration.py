"""Calibration images for RKNN int8 quantization, letterboxed exactly as the runtime does it.

rknn-toolkit2 would otherwise resize (stretch) images itself; we hand it .npy files of
the letterboxed RGB pixels in NCHW (it applies the model's mean/std to them), so the
activation ranges it measures are those the board will see.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from deploy.errors import UserError
from deploy.runtime.preprocess import letterbox

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def list_images(folder: Path, count: int) -> list[Path]:
    """The first `count` images of a folder (recursively, sorted: the same set every time)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--calib {folder}: no such folder")
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise UserError(f"--calib {folder}: holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return images[:count] if count > 0 else images


def read_rgb(path: Path) -> np.ndarray:
    """An (H, W, 3) uint8 RGB image, or a UserError naming the file."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"{path}: cannot be read as an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def prepare_calibration(
    images: list[Path], imgsz: int, workdir: Path, progress: Callable[[int, int], None] | None = None
) -> tuple[Path, list[Path]]:
    """Write letterboxed (1, 3, imgsz, imgsz) uint8 .npy files and the dataset.txt listing them.

    Returns the dataset.txt (the toolkit's calibration list) and the .npy files in order.
    """
    lines = []
    for i, path in enumerate(images):
        rgb, _ = letterbox(read_rgb(path), imgsz)
        npy = workdir / f"calib_{i:05d}.npy"
        np.save(npy, rgb.transpose(2, 0, 1)[None])  # (1, 3, H, W) uint8 RGB
        lines.append(npy)
        if progress:
            progress(i + 1, len(images))
    dataset = workdir / "dataset.txt"
    dataset.write_text("".join(f"{p.resolve()}\n" for p in lines))
    return dataset, lines
