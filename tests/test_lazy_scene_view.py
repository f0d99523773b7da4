"""The lazy scene viewer: a large raster is shown through overviews (its own, or ones built into the cache folder,
never beside the user's file) and read by windows, so opening, fitting and zooming read a small part of it."""
from __future__ import annotations

import os

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling

from studio.core.scene_pyramid import ScenePyramid
from tests.test_raster import scene_rgb, write_tif

SIDE = 4096


def large_raster(folder, overviews: bool):
    """A 4096 x 4096 RGB GeoTIFF, internally tiled; with its own overviews (2, 4, 8, 16) or none."""
    path = folder / "large.tif"
    rgb = scene_rgb(SIDE, SIDE, seed=11)
    write_tif(path, rgb.transpose(2, 0, 1).copy())
    if overviews:
        with rasterio.open(path, "r+") as ds:
            ds.build_overviews([2, 4, 8, 16], Resampling.average)
    return path, rgb


def test_without_overviews_the_levels_go_to_the_cache_folder_once(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    path, rgb = large_raster(user, overviews=False)
    before = sorted(os.listdir(user))
    pyramid = ScenePyramid(str(path), tmp_path / "cache")
    assert pyramid.origin == "cache" and sorted(pyramid.levels) == [1, 4]  # 1024 px at 1/4: coarse enough
    assert sorted(os.listdir(user)) == before  # nothing written beside (or into) the user's raster
    assert pyramid.raster.pixels == SIDE * SIDE  # built by reading the scene once, in strips
    block = rgb[400:404, 800:804].reshape(-1, 3).mean(0)
    assert np.abs(pyramid.levels[4][100, 200].astype(float) - block).max() <= 0.5  # a 4 x 4 block's mean
    pyramid.close()

    again = ScenePyramid(str(path), tmp_path / "cache")
    assert again.raster.reads == 0  # the cached levels are reused: nothing read to open it
    whole, factor = again.view(0, 0, SIDE, SIDE, scale=0.2)
    assert factor == 4 and whole.shape == (SIDE // 4, SIDE // 4, 3) and again.raster.reads == 0
    again.close()
    os.utime(path, ns=(1, 1))  # a changed file is a new key: its levels are built anew
    third = ScenePyramid(str(path), tmp_path / "cache")
    assert third.raster.pixels == SIDE * SIDE and len(os.listdir(tmp_path / "cache")) == 2
    third.close()


@pytest.fixture
def lazy_demo(qtbot, tiny_onnx, tmp_path, monkeypatch):
    from studio.gui.remote_sensing import RemoteSensingDemo

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    window = RemoteSensingDemo(tmp_path, model=tiny_onnx, tile=192)
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    yield window
    window.close()


def test_the_demo_opens_a_large_raster_through_its_overviews_reading_windows_only(lazy_demo, qtbot, tmp_path):
    path, rgb = large_raster(tmp_path, overviews=True)
    window = lazy_demo
    window.open_scene(path)
    qtbot.waitUntil(lambda: window.pyramid is not None, timeout=30000)
    pyramid = window.pyramid
    assert pyramid.origin == "raster" and not (tmp_path / "cache").exists()
    qtbot.wait(100)
    assert pyramid.raster.reads == 0 and pyramid.raster.reduced_reads >= 1  # fitted: from the overviews
    shown = window.view.image.pixmap()
    viewport = window.view.viewport().size()
    assert shown.width() * shown.height() <= 4 * viewport.width() * viewport.height()

    window.view.zoom(1.0 / window.view.transform().m11())  # one scene pixel per screen pixel
    window.view.centerOn(1000, 1500)
    qtbot.waitUntil(lambda: pyramid.raster.reads >= 1, timeout=5000)
    assert pyramid.raster.pixels < SIDE * SIDE / 4  # the window on screen (and a margin), not the scene
    x0, y0, x1, y1, factor = window.view.shown
    assert factor == 1 and x0 <= 1000 < x1 and y0 <= 1500 < y1
    image = window.view.image.pixmap().toImage()
    assert image.pixelColor(1000 - x0, 1500 - y0).getRgb()[:3] == tuple(rgb[1500, 1000])


def test_a_raster_started_on_the_live_page_opens_lazily_and_outlines_tiles_as_they_finish(qtbot, tiny_onnx,
                                                                                         tmp_path, monkeypatch):
    from studio.gui.pages.live_page import LivePage

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "small.tif"
    write_tif(path, scene_rgb(768, 960, seed=2).transpose(2, 0, 1).copy())
    page = LivePage()
    qtbot.addWidget(page)
    page.model.setText(str(tiny_onnx))
    page.source.setText(str(path))
    page.tile.setValue(192)
    page.start()
    window = page.remote_sensing
    assert window is not None and window.scene_path == path and window.tile == 192
    drawn_tiles = []
    original = window.view.add_detections
    window.view.add_detections = lambda dets, offset=(0, 0): (drawn_tiles.append(offset), original(dets, offset))
    qtbot.waitUntil(lambda: window.scene_dets is not None or window.last_error is not None, timeout=60000)
    window.stop()
    assert window.last_error is None and window.pyramid.origin == "cache" and (tmp_path / "cache").is_dir()
    tiles = {offset for offset in drawn_tiles if offset != (0, 0)}
    assert len(tiles) >= 2  # outlined where each tile lies, before the scene was merged
    dets = window.scene_dets
    outlines = window.view.outlines.childItems()
    assert len(outlines) == len(set(dets.classes.tolist()))  # the tiles' outlines replaced by the merged scene's
    box = dets.boxes[0]
    assert any(item.path().boundingRect().adjusted(-1, -1, 1, 1).contains(float(box[0]), float(box[1]))
               for item in outlines)
    page.shutdown()
