"""`studio data tile`: cut the large images of a dataset into overlapping tiles with clipped labels.

An object cut by a tile edge keeps a label when at least `min_area` of its area lies inside
the tile: the box around its visible part, or for oriented labels the smallest turned
rectangle around it; smaller remnants are dropped (a sliver of a plane teaches nothing).
Tiles use the same origins as tiled inference (deploy.runtime.tiling).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy.errors import UserError
from deploy.runtime.output import Output, write_image
from deploy.runtime.tiling import tile_grid
from studio.core.data.formats import (
    images_in,
    label_path,
    quad_in_pixels,
    read_label_rows,
    read_yaml,
    split_dirs,
    write_data_yaml,
    yaml_names,
)
from studio.core.data.oriented import box_row, label_text, obb_row, oriented_corners, upright_box


@dataclass
class TileRequest:
    data: Path  # data.yaml of the source dataset
    out: Path
    split: str = "scenes"  # which split holds the large images
    size: int = 512  # tile side in pixels
    overlap: float = 0.2
    min_area: float = 0.5  # keep a clipped object if this fraction of its area is inside the tile
    out_split: str = "train"
    force: bool = False  # replace an existing `out` wholly


def tile_dataset(req: TileRequest, progress: Callable[[int, int], None] | None = None) -> Path:
    """Write tiles of req.split into req.out/{images,labels}/{out_split} and a data.yaml, all at once or not at all."""
    if not 0 <= req.overlap < 1 or not 0 < req.min_area <= 1 or req.size < 32:
        raise UserError("need --size >= 32, 0 <= --overlap < 1 and 0 < --min-area <= 1")
    data = read_yaml(req.data)
    names = yaml_names(data, req.data)
    dirs = split_dirs({**data, req.split: data.get(req.split) or f"images/{req.split}"}, req.data, (req.split,))
    images = images_in(dirs[req.split])
    if not images:
        raise UserError(f"{dirs[req.split]}: no images to tile")
    with Output(req.out, force=req.force, inputs=[req.data.parent, dirs[req.split]]) as staging:
        for sub in ("images", "labels"):
            (staging / sub / req.out_split).mkdir(parents=True)
        for n, path in enumerate(images, 1):
            _tile_image(path, staging, req, len(names))
            if progress:
                progress(n, len(images))
        write_data_yaml(staging, names, (req.out_split,), "studio data tile")
    return req.out / "data.yaml"


def _tile_image(path: Path, out: Path, req: TileRequest, classes: int) -> None:
    """One large image's tiles and their clipped labels, under out/{images,labels}/<out_split>."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"{path}: not a readable image")
    h, w = image.shape[:2]
    lbl = label_path(path)
    rows = read_label_rows(lbl, classes) if lbl.is_file() else []
    objects = [(cls, np.reshape(quad_in_pixels(values, w, h), (4, 2))) for cls, values in rows]
    oriented = any(len(values) == 8 for _, values in rows)
    for tx, ty, _ in tile_grid(h, w, req.size, req.overlap):
        crop = image[ty : ty + req.size, tx : tx + req.size]
        th, tw = crop.shape[:2]
        stem = f"{path.stem}_{tx}_{ty}"
        write_image(out / "images" / req.out_split / f"{stem}.png", crop)
        window = (tx, ty, tx + tw, ty + th)
        labels = []
        for cls, quad in objects:
            if oriented:
                kept = oriented_corners(quad, *window, min_visible=req.min_area)
                labels += [obb_row(cls, kept, tx, ty, tw, th)] if kept is not None else []
            else:
                box = upright_box(quad, *window, min_visible=req.min_area)
                labels += [box_row(cls, box, tx, ty, tw, th)] if box is not None else []
        (out / "labels" / req.out_split / f"{stem}.txt").write_text(label_text(labels))
