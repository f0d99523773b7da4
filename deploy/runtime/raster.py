"""A raster bigger than memory as a lazy image: `scene[y0:y1, x0:x1]` reads that window and nothing else.

Tiling cuts scenes with slices (tiling.py), so a RasterImage runs through the same tile grid,
workers and merge as a decoded image, and gives the same tiles. rasterio (GDAL: GeoTIFF,
BigTIFF, Cloud-Optimized GeoTIFF and whatever else GDAL reads) is imported only when a raster
is opened. What a window becomes:

- three bands (1, 2, 3 unless chosen; one band is shown as grey) as RGB uint8;
- rasters of more than 8 bits are stretched per band from the 2nd to the 98th percentile of
  the valid pixels of a decimated read of the whole scene (the raster's overviews when it has
  them), computed once; the stretch is recorded, and given back, scales a resumed run alike;
- nodata pixels become 0, and a tile with no valid pixel (by the raster's mask, read once in
  strips and kept at 1/MASK_STEP scale, "any valid pixel" per block) is not run at all.

GDAL keeps the blocks it has decoded in a cache that by default grows to 5% of the machine's
memory; a run reads each block about once (a tile row's overlap again), so the cache is held to
CACHE_MB unless GDAL_CACHEMAX is set in the environment.
"""
import os
from collections.abc import Sequence
from typing import Optional

import numpy as np

from deploy.errors import UserError

STRETCH_PERCENTILES = (2.0, 98.0)
SAMPLE_SIDE = 2048  # longest side of the decimated read the stretch is computed from
MASK_STEP = 16  # scale of the validity mask that decides which tiles are empty
CACHE_MB = 256  # GDAL's block cache: a 640-px tile row of a 50,000-px-wide scene, decoded, and room to spare
STRIP_BLOCKS = 64  # rows of mask blocks read at once


def georeference(path: str) -> dict:
    """Where a raster lies on the map, for map features made wherever its detections end up: its affine
    geotransform (a, b, c, d, e, f: x = a*col + b*row + c, y = d*col + e*row + f) and CRS as WKT, both None
    for a raster without a geotransform (pixel-only, or located only by GCPs or RPCs); and its modification
    time, which stamps the GeoPackage so a rerun writes the same bytes."""
    import rasterio

    with rasterio.open(path) as ds:
        located = ds.crs is not None and not ds.transform.is_identity
        t = ds.transform
        return {"transform": [t.a, t.b, t.c, t.d, t.e, t.f] if located else None,
                "crs": ds.crs.to_wkt() if located else None, "mtime": os.stat(path).st_mtime}


class RasterImage:
    """An open raster indexed like an (H, W, 3) uint8 RGB array; windows are read on demand."""

    def __init__(self, path: str, bands: Optional[Sequence[int]] = None, stretch: Optional[list] = None):
        try:
            import rasterio
        except ImportError:
            raise UserError(f"{path}: reading large rasters by windows needs rasterio (pip install rasterio)") from None
        if "GDAL_CACHEMAX" not in os.environ:  # read by GDAL when its cache is first used: set before any read
            rasterio.env.set_gdal_config("GDAL_CACHEMAX", CACHE_MB)
        try:
            self.dataset = rasterio.open(path)
        except Exception as exc:  # rasterio's errors name the file and what GDAL could not do
            raise UserError(f"{path}: cannot be read as a raster ({exc})") from None
        ds = self.dataset
        self.path = path
        self.bands = tuple(bands) if bands else ((1, 2, 3) if ds.count >= 3 else (1, 1, 1))
        if len(self.bands) != 3 or not all(1 <= b <= ds.count for b in self.bands):
            raise UserError(f"{path}: --bands takes three band numbers of 1..{ds.count}, not {list(self.bands)}")
        self.shape = (ds.height, ds.width, 3)
        self.dtype = np.dtype(np.uint8)
        self.reads = 0  # windows read at full resolution so far (a test counts them)
        self.pixels = 0  # pixels those windows held
        self.reduced_reads = 0  # windows read at a smaller size (a viewer's, from overviews)
        self.source_dtype = np.dtype(ds.dtypes[self.bands[0] - 1])
        self.stretch = stretch if stretch is not None else (None if self.source_dtype == np.uint8 else
                                                            self._stretch())
        self._valid = self._valid_mask()

    @property
    def settings(self) -> dict:
        """What reproduces this reading exactly: bands and stretch (record it beside the results)."""
        return {"bands": list(self.bands), "stretch": self.stretch, "source_dtype": str(self.source_dtype)}

    def _read(self, window, out_shape=None, masked: bool = False):
        from rasterio.enums import Resampling

        return self.dataset.read(list(self.bands), window=window, out_shape=out_shape, masked=masked,
                                 resampling=Resampling.nearest)

    def _stretch(self) -> list:
        """Per band (low, high): the STRETCH_PERCENTILES of valid pixels over a decimated read of the scene."""
        h, w = self.shape[:2]
        scale = max(1, int(np.ceil(max(h, w) / SAMPLE_SIDE)))
        sample = self._read(None, out_shape=(3, max(1, h // scale), max(1, w // scale)), masked=True)
        found = []
        for band in sample:
            valid = band.compressed() if np.ma.isMaskedArray(band) else band.ravel()
            if valid.size == 0:
                found.append([0.0, 1.0])
                continue
            lo, hi = np.percentile(valid.astype(np.float64), STRETCH_PERCENTILES)
            found.append([float(lo), float(max(hi, lo + 1e-6))])
        return found

    def _valid_mask(self) -> Optional[np.ndarray]:
        """Where the raster has valid pixels, at 1/MASK_STEP scale (True: any valid pixel in that block); None
        when every pixel is valid. Read in strips, so memory stays that of one strip."""
        ds = self.dataset
        if all(flag.name == "all_valid" for flags in ds.mask_flag_enums for flag in flags):
            return None
        from rasterio.windows import Window

        h, w = self.shape[:2]
        s = MASK_STEP
        rows = []
        for y in range(0, h, STRIP_BLOCKS * s):
            strip = ds.read_masks(self.bands[0], window=Window(0, y, w, min(STRIP_BLOCKS * s, h - y))) > 0
            sh, sw = -(-strip.shape[0] // s) * s, -(-w // s) * s
            padded = np.zeros((sh, sw), bool)
            padded[: strip.shape[0], :w] = strip
            rows.append(padded.reshape(sh // s, s, sw // s, s).any(axis=(1, 3)))
        return np.concatenate(rows)

    def empty(self, x: int, y: int, size: int) -> bool:
        """Whether the window (x, y, size) holds no valid pixel."""
        if self._valid is None:
            return False
        s = MASK_STEP
        return not self._valid[y // s : -(-(y + size) // s), x // s : -(-(x + size) // s)].any()

    def __getitem__(self, key) -> np.ndarray:
        """scene[y0:y1, x0:x1] (steps of 1) -> that window as (h, w, 3) uint8 RGB."""
        from rasterio.windows import Window

        rows, cols = key[0], key[1]
        h, w = self.shape[:2]
        y0, y1, _ = rows.indices(h)
        x0, x1, _ = cols.indices(w)
        data = self._read(Window(x0, y0, max(0, x1 - x0), max(0, y1 - y0)), masked=self._valid is not None)
        self.reads += 1
        self.pixels += data.shape[1] * data.shape[2]
        return self._to_rgb(data)  # a raster without nodata or mask is read plain: no mask to build

    def reduced(self, y0: int, x0: int, y1: int, x1: int, out_hw: tuple[int, int]) -> np.ndarray:
        """The window read at a smaller size (GDAL takes it from the raster's overviews when it has them), as
        RGB; counted in `reduced_reads`, not in `reads`."""
        from rasterio.windows import Window

        data = self._read(Window(x0, y0, x1 - x0, y1 - y0), out_shape=(3, *out_hw), masked=self._valid is not None)
        self.reduced_reads += 1
        return self._to_rgb(data)

    def _to_rgb(self, data) -> np.ndarray:
        values = np.ma.getdata(data)
        invalid = np.ma.getmaskarray(data).any(axis=0)
        if self.stretch is None:
            rgb = values.astype(np.uint8, copy=False)
        else:
            lo = np.array([s[0] for s in self.stretch], np.float64)[:, None, None]
            hi = np.array([s[1] for s in self.stretch], np.float64)[:, None, None]
            rgb = np.clip((values - lo) / (hi - lo) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        rgb = np.ascontiguousarray(rgb.transpose(1, 2, 0))
        rgb[invalid] = 0
        return rgb

    def close(self) -> None:
        self.dataset.close()
