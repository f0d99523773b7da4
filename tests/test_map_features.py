"""Detections as map features: read back with pyogrio and checked against the raster's geotransform."""
from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from pyogrio.raw import read
from rasterio.transform import from_origin

from deploy.runtime.detections import Detections
from deploy.runtime.raster import georeference
from studio.core.map_features import write_features

NAMES = ["vehicle", "storage-tank", "plane", "ship"]


def raster(path, crs, transform, h=400, w=600) -> str:
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=3, dtype="uint8", crs=crs,
                       transform=transform) as dst:
        dst.write(np.zeros((3, h, w), np.uint8))
    return str(path)


def planted() -> Detections:
    """A ship turned by 30 degrees around (300, 200) and a car's upright box, in pixels."""
    rboxes = np.array([[300, 200, 80, 20, np.pi / 6], [50, 60, 20, 10, 0.0]], np.float32)
    from deploy.runtime.rotated import enclosing

    return Detections(enclosing(rboxes).astype(np.float32), np.array([0.9, 0.8], np.float32),
                      np.array([3, 0], np.int32), {}, 0, "scene.tif", rboxes=rboxes)


def centroid(wkb: bytes) -> np.ndarray:
    ring = np.frombuffer(wkb[13:], "<f8").reshape(-1, 2)
    return ring[:-1].mean(0)


@pytest.mark.parametrize("crs, transform", [
    ("EPSG:32632", from_origin(500000.0, 5000000.0, 0.5, 0.5)),  # metres: UTM 32N, 0.5 m pixels
    ("EPSG:4326", from_origin(9.0, 45.2, 1e-5, 1e-5)),  # degrees
])
def test_features_sit_where_the_geotransform_puts_the_planted_objects(tmp_path, crs, transform):
    path = raster(tmp_path / "scene.tif", crs, transform)
    written = write_features(planted(), georeference(path), NAMES, tmp_path, "scene")
    assert written["objects"] == 2 and written["coordinates"].startswith("map")
    meta, _, geometry, fields = read(written["gpkg"])
    assert meta["crs"] == crs and list(fields[0]) == ["ship", "vehicle"] and list(fields[1]) == [3, 0]
    expected = np.array([transform * (300, 200), transform * (50, 60)])
    got = np.array([centroid(g) for g in geometry])
    assert np.allclose(got, expected, rtol=0, atol=1e-9 * max(1.0, abs(expected).max()))
    gj_meta, _, gj_geometry, _ = read(written["geojson"])
    assert gj_meta["crs"] == "EPSG:4326"
    lonlat = np.array([centroid(g) for g in gj_geometry])
    if crs == "EPSG:4326":
        assert np.allclose(lonlat, expected, atol=1e-7)
    else:
        from rasterio.warp import transform as warp

        lon, lat = warp(crs, "EPSG:4326", expected[:, 0].tolist(), expected[:, 1].tolist())
        assert np.allclose(lonlat, np.c_[lon, lat], atol=1e-7)
    doc = json.loads(open(written["geojson"]).read())  # RFC 7946: no crs member, [lon, lat] pairs
    assert "crs" not in doc and 8 < doc["features"][0]["geometry"]["coordinates"][0][0][0] < 10


def test_a_raster_without_a_geotransform_gets_pixel_coordinates(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "plain.png"), np.zeros((400, 600, 3), np.uint8))
    written = write_features(planted(), georeference(str(tmp_path / "plain.png")), NAMES, tmp_path, "plain")
    assert written["coordinates"].startswith("pixels")
    meta, _, geometry, _ = read(written["gpkg"])
    assert meta["crs"] is None and np.allclose(centroid(geometry[0]), [300, 200], atol=1e-6)


def test_predict_writes_features_of_a_tiled_geotiff(tmp_path, tiny_onnx, cli):
    path = raster(tmp_path / "s.tif", "EPSG:32632", from_origin(500000.0, 5000000.0, 1.0, 1.0), 250, 330)
    with rasterio.open(path, "r+") as ds:
        ds.write(np.random.default_rng(0).integers(0, 256, (3, 250, 330), dtype=np.uint8))
    result = cli("predict", tiny_onnx, path, "--tile", 96, "--conf", 0.01, "--features", tmp_path / "map", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])["summary"]
    written = summary["features"][0]
    assert written["geojson"] == str(tmp_path / "map" / "s.geojson") and summary["rasters"][0]["path"] == path
    meta, _, geometry, _ = read(written["gpkg"])
    assert len(geometry) == written["objects"] == summary["detections"] > 0
    again = cli("predict", tiny_onnx, path, "--tile", 96, "--features", tmp_path / "map")
    assert again.exit_code == 2 and "--force" in again.stderr  # earlier features are kept


def test_a_board_without_rasterio_sends_why_its_features_are_in_pixels(tmp_path):
    from deploy.board.agent.server import located

    path = raster(tmp_path / "scene.tif", "EPSG:32632", from_origin(500000.0, 5000000.0, 0.5, 0.5))
    assert located(str(tmp_path / "frame.png"), by_rasterio=False) is None  # no raster: nothing to place
    georef = located(path, by_rasterio=False)
    written = write_features(planted(), georef, NAMES, tmp_path, "scene")
    assert written["coordinates"].startswith("pixels: the board has no rasterio")
    meta, _, geometry, _ = read(written["gpkg"])
    assert meta["crs"] is None and np.allclose(centroid(geometry[0]), [300, 200], atol=1e-6)
