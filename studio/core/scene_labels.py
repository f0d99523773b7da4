"""A scene's detections as labels to train on: DOTA text per scene, and its tiles as a YOLO dataset.

Users re-train on their own imagery from a model's detections (pseudo-labels, to be reviewed):

    <labels>/dota/<scene>.txt            x1 y1 x2 y2 x3 y3 x4 y4 class difficult, in scene pixels
    <labels>/images/train/<scene>_<x>_<y>.png   the tiles the run cut (empty raster tiles left out)
    <labels>/labels/train/<scene>_<x>_<y>.txt   YOLO-OBB rows (YOLO boxes for an upright model)
    <labels>/data.yaml

The tiles are the run's own grid, and an object cut by a tile edge is labelled as `studio data
tile` labels it (kept when at least half of it is inside, as the rectangle of its visible part),
so `studio train --data <labels>/data.yaml` learns from exactly what the scene run found, and
`studio data import dota <labels>/dota --images <scenes>` reads the scene labels back.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from deploy.runtime.detections import Detections
from deploy.runtime.output import write_image
from deploy.runtime.rotated import corners
from deploy.runtime.sinks import Sink
from deploy.runtime.tiling import tile_grid
from studio.core.data.formats import write_data_yaml
from studio.core.data.oriented import box_row, label_text, obb_row, oriented_corners, upright_box

SPLIT = "train"


def object_corners(dets: Detections) -> np.ndarray:
    """(N, 4, 2) corners in scene pixels: the turned rectangles, or the upright boxes' corners clockwise."""
    if dets.rboxes is not None:
        return corners(dets.rboxes).astype(np.float64)
    b = dets.boxes.astype(np.float64)
    return np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]]], 1)


def dota_text(quads: np.ndarray, classes: np.ndarray, names: list[str]) -> str:
    """DOTA rows: four corners, the class name (spaces become dashes: DOTA splits on whitespace), difficult 0."""
    labels = [(names[k] if 0 <= k < len(names) else str(k)).replace(" ", "-") for k in classes.tolist()]
    return "".join(" ".join(f"{v:.1f}" for v in quad.reshape(-1)) + f" {label} 0\n"
                   for quad, label in zip(quads, labels))


def tile_labels(quads: np.ndarray, classes: np.ndarray, window: tuple[int, int, int, int],
                oriented: bool) -> list[list[float]]:
    """YOLO rows of the objects in a tile window (x0, y0, x1, y1): only those whose corners reach into it
    are clipped, so a scene of 100,000 objects costs each tile its neighbours, not the scene."""
    x0, y0, x1, y1 = window
    lo, hi = quads.min(1), quads.max(1)
    near = np.flatnonzero((hi[:, 0] > x0) & (lo[:, 0] < x1) & (hi[:, 1] > y0) & (lo[:, 1] < y1))
    rows = []
    for i in near.tolist():
        cls = int(classes[i])
        if oriented:
            kept = oriented_corners(quads[i], x0, y0, x1, y1)
            rows += [obb_row(cls, kept, x0, y0, x1 - x0, y1 - y0)] if kept is not None else []
        else:
            box = upright_box(quads[i], x0, y0, x1, y1)
            rows += [box_row(cls, box, x0, y0, x1 - x0, y1 - y0)] if box is not None else []
    return rows


class LabelSink(Sink):
    """Each scene's detections as DOTA labels and a tiled YOLO dataset in `folder` (an Output's staging).
    `read_scene(path)` opens the scene again for the tiles' pixels, indexed like an (H, W, 3) RGB array (a
    raster by windows, with the reading settings the run used)."""

    def __init__(self, folder: Path, names: list[str], tile: int, overlap: float,
                 read_scene: Callable[[str], object]):
        self.folder, self.names, self.tile, self.overlap, self.read_scene = folder, names, tile, overlap, read_scene
        for sub in ("dota", f"images/{SPLIT}", f"labels/{SPLIT}"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        write_data_yaml(folder, names, (SPLIT,), "studio predict --labels")
        self.written: list[dict] = []

    def write(self, dets: Detections) -> None:
        stem = Path(dets.source).stem
        quads, classes = object_corners(dets), dets.classes.astype(np.int64)
        (self.folder / "dota" / f"{stem}.txt").write_text(dota_text(quads, classes, self.names))
        scene = self.read_scene(dets.source)
        try:
            tiles = self._write_tiles(scene, stem, quads, classes, dets.rboxes is not None)
        finally:
            getattr(scene, "close", lambda: None)()
        self.written.append({"scene": dets.source, "objects": len(dets), "tiles": tiles})

    def _write_tiles(self, scene, stem: str, quads: np.ndarray, classes: np.ndarray, oriented: bool) -> int:
        import cv2

        h, w = scene.shape[:2]
        empty = getattr(scene, "empty", None)
        count = 0
        for x, y, size in tile_grid(h, w, self.tile, self.overlap):
            if empty is not None and empty(x, y, size):
                continue
            pixels = np.asarray(scene[y : y + size, x : x + size])
            window = (x, y, x + pixels.shape[1], y + pixels.shape[0])
            name = f"{stem}_{x}_{y}"
            write_image(self.folder / "images" / SPLIT / f"{name}.png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
            rows = tile_labels(quads, classes, window, oriented)
            (self.folder / "labels" / SPLIT / f"{name}.txt").write_text(label_text(rows))
            count += 1
        return count
