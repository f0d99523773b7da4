"""`studio data tile`: cut the large images of a dataset into overlapping tiles with clipped labels.

An object cut by a tile edge keeps its clipped box when at least `min_area` of its area
lies inside the tile; smaller remnants are dropped (a sliver of a plane teaches nothing).
Tiles use the same origins as tiled inference (deploy.runtime.tiling).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deploy.errors import UserError
from deploy.runtime.output import Output, write_image
from deploy.runtime.tiling import tile_grid
from studio.core.data.formats import images_in, labels_in_pixels, read_yaml, split_dirs, write_data_yaml, yaml_names


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


def clip_to_tile(box, x: int, y: int, size: int, min_area: float):
    """A pixel xyxy box clipped to the tile at (x, y), in tile pixels, or None if too little remains."""
    x0, y0, x1, y1 = box
    cx0, cy0, cx1, cy1 = max(x0, x), max(y0, y), min(x1, x + size), min(y1, y + size)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    if (cx1 - cx0) * (cy1 - cy0) < min_area * (x1 - x0) * (y1 - y0):
        return None
    return cx0 - x, cy0 - y, cx1 - x, cy1 - y


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
    boxes = labels_in_pixels(path, w, h, classes)
    for tx, ty, _ in tile_grid(h, w, req.size, req.overlap):
        crop = image[ty : ty + req.size, tx : tx + req.size]
        th, tw = crop.shape[:2]
        stem = f"{path.stem}_{tx}_{ty}"
        write_image(out / "images" / req.out_split / f"{stem}.png", crop)
        lines = []
        for cls, *box in boxes:
            clipped = clip_to_tile(box, tx, ty, req.size, req.min_area)
            if clipped:
                x0, y0, x1, y1 = clipped
                lines.append(f"{cls} {(x0 + x1) / 2 / tw:.6f} {(y0 + y1) / 2 / th:.6f} "
                             f"{(x1 - x0) / tw:.6f} {(y1 - y0) / th:.6f}\n")
        (out / "labels" / req.out_split / f"{stem}.txt").write_text("".join(lines))
