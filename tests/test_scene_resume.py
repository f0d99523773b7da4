"""Scene runs that resume: a tiled run stopped by Ctrl-C or killed continues from the tiles it finished, reads none
of them again, reuses the 16-bit stretch it began with, and ends with the very bytes an uninterrupted run writes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deploy.runtime.raster import RasterImage
from deploy.runtime.tiling import tile_grid
from studio.core.jobs import Cancelled, Job
from studio.core.predict import PredictRequest, predict
from tests.test_raster import scene_rgb, write_tif

TILE = 96


def _features(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _request(model: Path, scene: Path, out: Path, **kw) -> PredictRequest:
    return PredictRequest(model=model, source=str(scene), tile=TILE, overlap=0.2, conf=0.3, features=out, **kw)


def _cancelling_at(tiles: int) -> Job:
    """A Job that stops the run (as Ctrl-C does) once `tiles` tiles are done."""
    job = Job()

    def progress(event):
        if event.stage == "tiles" and event.done >= tiles:
            job.cancel.cancel()

    job.progress = progress
    return job


def _journal(out: Path) -> Path:
    return out.parent / f".{out.name}.tiles"


@pytest.fixture(scope="module")
def scene16(tmp_path_factory) -> Path:
    """A 16-bit GeoTIFF (values up to 4000 of 65535, so the stretch matters) of about 40 tiles."""
    path = tmp_path_factory.mktemp("scene") / "scene16.tif"
    rgb = scene_rgb(400, 520, seed=3).astype(np.uint16) * 15 + 100
    write_tif(path, rgb.transpose(2, 0, 1).copy())
    return path


def test_a_stopped_run_resumes_without_reading_its_finished_tiles_and_writes_the_same_bytes(obb_onnx, scene16,
                                                                                          tmp_path, monkeypatch):
    whole = predict(_request(obb_onnx, scene16, tmp_path / "whole"))
    expected = _features(tmp_path / "whole")
    assert whole.features[0]["objects"] > 0 and set(expected) == {"scene16.geojson", "scene16.gpkg"}
    tiles = len(tile_grid(400, 520, TILE, 0.2))

    out = tmp_path / "resumed"
    with pytest.raises(Cancelled):
        predict(_request(obb_onnx, scene16, out), job=_cancelling_at(tiles // 2))
    assert not out.exists()  # nothing half-written where the results go
    kept = sorted(_journal(out).glob("[!.]*.npz"))
    assert tiles // 2 <= len(kept) < tiles
    manifest = json.loads((_journal(out) / "manifest.json").read_text())
    stretch = manifest["rasters"][str(scene16)]["stretch"]
    assert stretch == whole.rasters[0]["stretch"] and stretch[0][1] > 255  # recorded: a 16-bit stretch

    from deploy.errors import UserError

    with pytest.raises(UserError, match="--resume continues it, --force starts over"):
        predict(_request(obb_onnx, scene16, out))  # without --resume the progress is kept, not dropped
    with pytest.raises(UserError, match="had conf 0.3, this one 0.5"):
        predict(PredictRequest(model=obb_onnx, source=str(scene16), tile=TILE, overlap=0.2, conf=0.5, features=out,
                               resume=True))

    reads = []
    read = RasterImage.__getitem__
    monkeypatch.setattr(RasterImage, "__getitem__", lambda self, key: reads.append(key) or read(self, key))
    monkeypatch.setattr(RasterImage, "_stretch", lambda self: pytest.fail("the stretch was computed again"))
    resumed = predict(_request(obb_onnx, scene16, out, resume=True))
    assert len(reads) == tiles - len(kept)  # the finished tiles were not read again
    assert resumed.rasters[0]["stretch"] == stretch
    assert _features(out) == expected  # byte for byte, GeoPackage included
    assert not _journal(out).exists()  # published: the progress is gone


def test_resume_needs_an_interrupted_run_and_a_tiled_run_with_an_output(cli, obb_onnx, scene16, tmp_path):
    nothing = cli("predict", obb_onnx, scene16, "--tile", TILE, "--features", tmp_path / "f", "--resume")
    assert nothing.exit_code == 2 and "nothing to resume" in nothing.stderr
    untiled = cli("predict", obb_onnx, scene16, "--resume")
    assert untiled.exit_code == 2 and "--resume continues a tiled run" in untiled.stderr


@pytest.mark.slow  # a real process, killed
def test_a_killed_run_resumes_to_the_same_bytes(cli, obb_onnx, scene16, tmp_path):
    command = [sys.executable, "-m", "studio", "predict", str(obb_onnx), str(scene16), "--tile", str(TILE),
               "--conf", "0.3"]
    whole = subprocess.run(command + ["--features", str(tmp_path / "whole")], capture_output=True, text=True,
                           timeout=300)
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "killed"
    run = subprocess.Popen(command + ["--features", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tiles = len(tile_grid(400, 520, TILE, 0.2))
    deadline = time.monotonic() + 120
    def kept() -> int:
        return len(list(_journal(out).glob("[!.]*.npz")))

    while kept() < tiles // 2 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    done = kept()
    assert tiles // 2 <= done < tiles and not out.exists()
    resumed = cli("predict", obb_onnx, scene16, "--tile", TILE, "--conf", 0.3, "--features", out, "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert _features(out) == _features(tmp_path / "whole")
