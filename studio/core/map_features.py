"""A raster's detections as map features: a GeoPackage in the raster's own CRS and GeoJSON in WGS84.

Each object is one polygon (its turned rectangle, or its box) with its class and score. Pixel
positions go through the raster's geotransform (pixel edges, as GDAL counts them) into its
CRS; GDAL then writes the GeoJSON as RFC 7946 asks (longitude, latitude in WGS84, rings
wound counter-clockwise). A raster without a geotransform (pixel-only, or located only by
GCPs or RPCs) gets pixel coordinates in both files, no CRS, and the summary says so. Both
files go through pyogrio, imported only here.
"""
from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from deploy.runtime.detections import Detections
from deploy.runtime.raster import georeference
from deploy.runtime.sinks import Sink
from studio.core.scene_labels import object_corners

FIELDS = ["class", "class_id", "score"]


def pixel_rings(dets: Detections) -> np.ndarray:
    """(N, 5, 2) closed rings in pixel coordinates: turned rectangles, or the boxes' corners."""
    quads = object_corners(dets)
    return np.concatenate([quads, quads[:, :1]], 1)


def wkb_polygons(rings: np.ndarray) -> np.ndarray:
    """Each (5, 2) ring as a little-endian WKB Polygon."""
    return np.array([struct.pack("<BII", 1, 3, 1) + struct.pack("<I", len(r)) + r.astype("<f8").tobytes()
                     for r in rings], dtype=object)


def write_features(dets: Detections, georef: dict, names: list[str], folder: Path, stem: str) -> dict:
    """<stem>.gpkg and <stem>.geojson in `folder`, placed by `georef` (raster.georeference() of the scene, read
    here or on the board that ran it); returns what was written and in which coordinates."""
    from pyogrio.raw import write

    transform, crs = georef["transform"], georef["crs"]
    rings = pixel_rings(dets)
    if transform is not None:
        a, b, c, d, e, f = transform
        cols, rows = rings[..., 0], rings[..., 1]
        rings = np.stack([a * cols + b * rows + c, d * cols + e * rows + f], -1)
    classes = dets.classes.astype(np.int64)
    data = [np.array([names[k] if 0 <= k < len(names) else str(k) for k in classes], dtype=object), classes,
            dets.scores.astype(np.float64)]
    geometry = wkb_polygons(rings)
    paths = {"gpkg": folder / f"{stem}.gpkg", "geojson": folder / f"{stem}.geojson"}
    with gpkg_date(georef["mtime"]):
        write(str(paths["gpkg"]), geometry, data, FIELDS, layer="detections", driver="GPKG",
              geometry_type="Polygon", crs=crs)
    options = {"RFC7946": "YES"} if crs else {}
    write(str(paths["geojson"]), geometry, data, FIELDS, driver="GeoJSON", geometry_type="Polygon", crs=crs,
          layer_options=options)
    why = georef.get("why", "the raster has no geotransform")
    return {"raster": dets.source, "objects": len(dets), **{k: str(v) for k, v in paths.items()},
            "coordinates": "map: GeoPackage in the raster's CRS, GeoJSON in WGS84 (RFC 7946)" if crs else
            f"pixels: {why} (GeoJSON and GeoPackage hold pixel coordinates, no CRS)"}


@contextlib.contextmanager
def gpkg_date(mtime: float) -> Iterator[None]:
    """GeoPackage stamps its contents with the time of writing; stamp them with the raster's modification time
    instead, so the same detections of the same scene make the same file (a resumed run, a rerun)."""
    import pyogrio

    stamp = datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    before = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": stamp})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": before})


class FeatureSink(Sink):
    """Each scene's detections as <image stem>.gpkg and .geojson in a folder (an Output transaction's staging);
    a scene run on a board brings its georeference along (dets.georef), a local one is read from its file."""

    def __init__(self, folder: Path, names: list[str]):
        self.folder, self.names = folder, names
        self.written: list[dict] = []

    def write(self, dets: Detections) -> None:
        georef = dets.georef if dets.georef is not None else georeference(dets.source)
        self.written.append(write_features(dets, georef, self.names, self.folder, Path(dets.source).stem))
