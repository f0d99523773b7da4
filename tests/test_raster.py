"""Rasters read by windows: the same tiles and detections as the decoded image, empty tiles not run, 16-bit
stretch computed once and reusable."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import rasterio  # noqa: E402  (installed by make venv: a missing one fails here, loudly)

from deploy.runtime.frame import Frame
from deploy.runtime.raster import RasterImage
from deploy.runtime.tiling import tile_frames, tile_grid


def write_tif(path, bands: np.ndarray, nodata=None, tiled: bool = True) -> None:
    """(C, H, W) array as a GeoTIFF in metres (UTM 32N), 1 m pixels, internally tiled."""
    from rasterio.transform import from_origin

    c, h, w = bands.shape
    profile = {"driver": "GTiff", "height": h, "width": w, "count": c, "dtype": bands.dtype.name,
               "crs": "EPSG:32632", "transform": from_origin(500000, 5000000, 1.0, 1.0)}
    if tiled:
        profile.update(tiled=True, blockxsize=64, blockysize=64)
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)


def scene_rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = cv2.resize(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8), (w, h))
    for _ in range(40):  # a few bright rectangles, so a detector has something to find
        x, y = rng.integers(0, w - 20), rng.integers(0, h - 20)
        image[y : y + 12, x : x + 18] = rng.integers(150, 256, 3)
    return image


def test_windowed_tiles_are_the_decoded_images_tiles(tmp_path):
    rgb = scene_rgb(300, 410)
    write_tif(tmp_path / "s.tif", rgb.transpose(2, 0, 1).copy())
    raster = RasterImage(str(tmp_path / "s.tif"))
    assert raster.shape == (300, 410, 3) and raster.stretch is None
    lazy = list(tile_frames([Frame(raster, 0, "s.tif")], 96, 0.2))
    whole = list(tile_frames([Frame(rgb, 0, "s.png")], 96, 0.2))
    assert len(lazy) == len(whole) == len(tile_grid(300, 410, 96, 0.2)) == raster.reads
    for a, b in zip(lazy, whole):
        assert np.array_equal(a.image, b.image) and a.extra["offset"] == b.extra["offset"]


def test_predict_on_a_geotiff_by_windows_matches_the_decoded_image(tmp_path, tiny_onnx):
    from studio.core.predict import PredictRequest, predict

    rgb = scene_rgb(260, 330, seed=1)
    write_tif(tmp_path / "s.tif", rgb.transpose(2, 0, 1).copy())
    cv2.imwrite(str(tmp_path / "s.png"), rgb[..., ::-1])
    found = {}
    for name in ("s.tif", "s.png"):
        got = []
        summary = predict(PredictRequest(tiny_onnx, str(tmp_path / name), tile=96, conf=0.01), got.append)
        found[name] = (got[0], summary)
    (tif, tif_summary), (png, _) = found["s.tif"], found["s.png"]
    assert len(tif) == len(png) > 0
    assert np.array_equal(tif.boxes, png.boxes) and np.array_equal(tif.scores, png.scores)
    assert tif_summary.rasters == [{"path": str(tmp_path / "s.tif"), "bands": [1, 2, 3], "stretch": None,
                                    "source_dtype": "uint8"}]


def test_tiles_without_valid_pixels_are_not_read_or_run(tmp_path):
    rgb = scene_rgb(256, 512)
    rgb[:, :256] = 0  # the left half is outside the scene: nodata
    write_tif(tmp_path / "n.tif", rgb.transpose(2, 0, 1).copy(), nodata=0)
    raster = RasterImage(str(tmp_path / "n.tif"))
    tiles = list(tile_frames([Frame(raster, 0, "n.tif")], 128, 0.0))
    assert [t.extra["offset"][0] for t in tiles] == [256, 384, 256, 384]
    assert raster.reads == 4 and all(t.extra["tiles"] == 4 for t in tiles)


def test_16_bit_rasters_are_stretched_once_and_the_stretch_is_reused(tmp_path):
    rng = np.random.default_rng(2)
    bands = rng.normal(1200, 300, (3, 200, 200)).clip(0, 4095).astype(np.uint16)
    write_tif(tmp_path / "w.tif", bands)
    first = RasterImage(str(tmp_path / "w.tif"))
    lo, hi = first.stretch[0]
    assert 500 < lo < 800 and 1600 < hi < 1900  # about the 2nd and 98th percentiles of N(1200, 300)
    window = first[0:100, 0:100]
    expected = np.clip((bands[0, :100, :100] - lo) / (hi - lo) * 255 + 0.5, 0, 255).astype(np.uint8)
    assert window.dtype == np.uint8 and np.array_equal(window[..., 0], expected)
    again = RasterImage(str(tmp_path / "w.tif"), stretch=first.settings["stretch"])
    assert np.array_equal(again[50:150, 20:120], first[50:150, 20:120])  # a resumed run scales alike


def test_bands_are_checked(tmp_path):
    write_tif(tmp_path / "g.tif", np.zeros((1, 32, 32), np.uint8))
    assert RasterImage(str(tmp_path / "g.tif")).bands == (1, 1, 1)  # one band: grey
    from deploy.errors import UserError

    with pytest.raises(UserError, match="three band numbers of 1..1"):
        RasterImage(str(tmp_path / "g.tif"), bands=(1, 2, 3))


def test_predict_reads_the_bands_it_is_given(tmp_path, tiny_onnx, cli):
    four = np.stack([scene_rgb(200, 200, seed=3)[..., k] for k in (0, 1, 2, 0)])  # a 4-band raster
    write_tif(tmp_path / "m.tif", four)
    shown = cli("predict", tiny_onnx, tmp_path / "m.tif", "--tile", 96, "--bands", "4,2,3", "--json")
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout.strip().splitlines()[-1])["summary"]["rasters"][0]["bands"] == [4, 2, 3]
    for wrong in ("4,2", "a,b,c", "5,2,3"):
        result = cli("predict", tiny_onnx, tmp_path / "m.tif", "--tile", 96, "--bands", wrong)
        assert result.exit_code == 2 and "band" in result.stderr, wrong
