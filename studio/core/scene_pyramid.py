"""A raster bigger than memory, viewed at any zoom without reading it whole: the view asks for a window at a
scale and gets about as many pixels as the screen shows.

Reduced levels come from the raster's own overviews when it has them (GDAL reads them), or else from
a pyramid built once into a cache folder (never beside, or into, the user's file): the scene is read
once in strips of rows, each strip averaged down by 4, and every further level from the one before,
until the coarsest fits in LEVEL_SIDE pixels. Levels are .npy arrays read by memory mapping, keyed by
the raster's path, size, modification time and reading settings, so a changed file builds anew.

    pyramid = ScenePyramid("scene.tif", cache=default_cache())
    rgb, factor = pyramid.view(0, 0, 30000, 30000, scale=0.03)  # about 900 x 900 pixels
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from deploy.runtime.atomic import staged
from deploy.runtime.raster import RasterImage

STEP = 4  # each cached level is this many times smaller than the one below it
LEVEL_SIDE = 1024  # the coarsest level fits in this many pixels a side
STRIP_ROWS = 128  # rows of a level written at a time (STEP times as many read from the level below)


def default_cache() -> Path:
    """The studio's overview cache: $XDG_CACHE_HOME/edge-deploy-studio/overviews (~/.cache when unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "edge-deploy-studio" / "overviews"


class ScenePyramid:
    """A raster read by windows, with reduced levels for views that show more of it than the screen holds."""

    def __init__(self, path: str, cache: Path, bands=None, stretch=None,
                 progress: Callable[[int, int], None] | None = None):
        self.raster = RasterImage(path, bands, stretch)
        self.shape = self.raster.shape
        own = self.raster.dataset.overviews(self.raster.bands[0])
        self.origin = "raster" if own else "cache"  # where the reduced levels come from
        self.levels: dict[int, np.ndarray | None] = {1: None}
        if own:
            self.levels.update({int(f): None for f in own})
        else:
            self.folder = cache / self._key()
            self._build(progress)

    def _key(self) -> str:
        stat = Path(self.raster.path).stat()
        who = [str(Path(self.raster.path).resolve()), stat.st_size, stat.st_mtime_ns, self.raster.settings]
        return hashlib.sha256(json.dumps(who, sort_keys=True).encode()).hexdigest()[:24]

    def _build(self, progress: Callable[[int, int], None] | None) -> None:
        """The cached levels, built where missing (each written whole under a temporary name, then renamed)."""
        h, w = self.shape[:2]
        factors = [STEP]
        while max(h, w) / factors[-1] > LEVEL_SIDE:
            factors.append(factors[-1] * STEP)
        self.folder.mkdir(parents=True, exist_ok=True)
        below: object = self.raster
        for n, factor in enumerate(factors):
            path = self.folder / f"level-{factor}.npy"
            if not path.is_file():
                with staged(path, ".npy") as tmp:
                    _reduce(below, tmp, STEP)
            self.levels[factor] = np.load(path, mmap_mode="r")
            below = self.levels[factor]
            if progress:
                progress(n + 1, len(factors))

    def factor_for(self, scale: float) -> int:
        """The coarsest level that still gives at least one of its pixels per screen pixel."""
        fits = [f for f in self.levels if f <= max(1.0, 1.0 / max(scale, 1e-9))]
        return max(fits)

    def view(self, x0: int, y0: int, x1: int, y1: int, scale: float) -> tuple[np.ndarray, int]:
        """The window [x0, x1) x [y0, y1) of the scene at `scale` screen pixels per scene pixel: (RGB of the
        level chosen, that level's factor); its pixel (0, 0) is the scene's (x0 // f * f, y0 // f * f)."""
        h, w = self.shape[:2]
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        factor = self.factor_for(scale)
        if factor == 1:
            return self.raster[y0:y1, x0:x1], 1
        level = self.levels[factor]
        r0, c0, r1, c1 = y0 // factor, x0 // factor, -(-y1 // factor), -(-x1 // factor)
        if level is None:  # the raster's own overview, read by GDAL at that size
            return self.raster.reduced(r0 * factor, c0 * factor, min(h, r1 * factor), min(w, c1 * factor),
                                       (r1 - r0, c1 - c0)), factor
        return np.ascontiguousarray(level[r0:r1, c0:c1]), factor

    def close(self) -> None:
        self.raster.close()


def _reduce(below, path: Path, step: int) -> None:
    """A level `step` times smaller than `below` (an (H, W, 3) array or lazy raster), averaged block by block
    and written strip by strip, so memory holds one strip of `below`."""
    import cv2

    h, w = below.shape[:2]
    lh, lw = -(-h // step), -(-w // step)
    level = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(lh, lw, 3))
    for r in range(0, lh, STRIP_ROWS):
        rows = min(STRIP_ROWS, lh - r)
        strip = np.asarray(below[r * step : min(h, (r + rows) * step), 0:w])
        level[r : r + rows] = cv2.resize(strip, (lw, rows), interpolation=cv2.INTER_AREA)
    level.flush()
    del level
