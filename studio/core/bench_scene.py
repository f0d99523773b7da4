"""`studio bench scene`: a GeoTIFF bigger than memory, run end to end, against the same tiles read from memory.

The bench paints the raster itself (nothing is shipped): a tiled, compressed RGB GeoTIFF in
metres, written strip by strip from a few dense synthetic aerial scenes placed block by
block, so its memory stays that of one strip. Then `studio predict --tile --features` runs
over it in a child process, whose peak resident memory the kernel reports when it ends,
with the end-to-end tiles/s and the merge's share. The reference is a band of the scene
(its first tile rows): run from the decoded array in memory and by windows from a GeoTIFF of
that band, same model, tiles and workers, twice each, alternating; the ratio of their best
tiles/s is what windowed reading costs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deploy.errors import UserError
from studio.core.jobs import Job

BLOCK = 1024  # side of the painted scenes the raster is assembled from
STRIP = 1024  # rows written at once
PAINTED = 6  # distinct painted scenes
REPEAT = 2  # runs of the reference band each way; the best of each is compared


def write_scene(path: Path, size: int, seed: int = 0, job: Job | None = None, compress: str = "deflate") -> None:
    """A size x size RGB GeoTIFF (256-px internal tiles, `compress`ed, UTM 32N at 0.5 m), written strip by strip."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from studio.core.data.aerial_dense import render_dense_scene

    job = job or Job()
    rng = np.random.default_rng(seed)
    job.stage("paint", PAINTED)
    blocks = []
    for k in range(PAINTED):
        blocks.append(render_dense_scene(np.random.default_rng([seed, k]), BLOCK, BLOCK)[0][..., ::-1])
        job.step("paint", k + 1, PAINTED)
    profile = {"driver": "GTiff", "height": size, "width": size, "count": 3, "dtype": "uint8", "crs": "EPSG:32632",
               "transform": from_origin(500000, 5000000, 0.5, 0.5), "tiled": True, "blockxsize": 256,
               "blockysize": 256, "BIGTIFF": "IF_SAFER", **({"compress": compress} if compress != "none" else {})}
    strips = -(-size // STRIP)
    job.stage("write raster", strips)
    with rasterio.open(path, "w", **profile) as dst:
        for s in range(strips):
            rows = min(STRIP, size - s * STRIP)
            strip = np.empty((rows, size, 3), np.uint8)
            for x in range(0, size, BLOCK):
                block = np.rot90(blocks[int(rng.integers(PAINTED))], int(rng.integers(4)))
                strip[:, x : x + BLOCK] = block[:rows, : min(BLOCK, size - x)]
            dst.write(strip.transpose(2, 0, 1), window=Window(0, s * STRIP, size, rows))
            job.step("write raster", s + 1, strips)


def _predict_child(model: Path, scene: Path, out: Path, tile: int, workers: int, backend: str) -> dict:
    """`studio predict` over the scene in a child process: its summary, wall seconds and peak RSS in MB (the
    kernel's count for that child alone, from wait4)."""
    command = [sys.executable, "-m", "studio", "predict", str(model), str(scene), "--tile", str(tile),
               "--workers", str(workers), "--backend", backend, "--features", str(out), "--json"]
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0), stderr.seek(0)
        if child.returncode != 0:
            raise UserError(f"studio predict over the scene failed: {stderr.read().strip()[-2000:]}")
        summary = json.loads(stdout.read().strip().splitlines()[-1])["summary"]
    return {"summary": summary, "wall_s": wall, "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}  # KiB on Linux


def _band_rates(model: Path, scene: Path, folder: Path, rows: int, tile: int, overlap: float, workers: int,
                backend: str) -> dict:
    """tiles/s over the scene's first `rows` tile rows: decoded in memory, and read by windows from a GeoTIFF."""
    import rasterio
    from rasterio.windows import Window

    from deploy.runtime.frame import Frame
    from deploy.runtime.metadata import read_model_meta
    from deploy.runtime.raster import RasterImage
    from deploy.runtime.run_loop import RunLoop
    from studio.core.backend_factory import BackendPool

    step = max(1, int(tile * (1 - overlap)))
    with rasterio.open(scene) as src:
        height = min(src.height, tile + (rows - 1) * step)
        band = src.read(window=Window(0, 0, src.width, height))
        profile = {**src.profile, "height": height}
    band_tif = folder / "band.tif"
    with rasterio.open(band_tif, "w", **profile) as dst:
        dst.write(band)
    meta = read_model_meta(model)
    in_memory = np.ascontiguousarray(band.transpose(1, 2, 0))
    rates: dict = {"memory": [], "windows": []}
    for _ in range(REPEAT):  # alternating, so a slow spell of the machine hits both
        for name in ("memory", "windows"):
            raster = RasterImage(str(band_tif)) if name == "windows" else None
            pool = BackendPool(backend, model, workers)
            loop = RunLoop(pool.factory(), meta, workers=workers, tile=tile, overlap=overlap, close=pool.close)
            list(loop.results([Frame(in_memory if raster is None else raster, 0, str(band_tif))]))
            rates[name].append(loop.stats.fps)
            tiles = loop.stats.frames
            if raster is not None:
                raster.close()
    best = {name: {"tiles": tiles, "tiles_per_s": round(max(runs), 2), "runs": [round(r, 2) for r in runs]}
            for name, runs in rates.items()}
    best["windows_vs_memory"] = round(best["windows"]["tiles_per_s"] / best["memory"]["tiles_per_s"], 3)
    return best


def bench_scene(model: Path, size: int = 30000, tile: int = 640, workers: int = 2, backend: str = "ort",
                band_rows: int = 4, keep: Path | None = None, job: Job | None = None,
                compress: str = "deflate") -> dict:
    """Paint a size x size GeoTIFF, run it end to end, and compare windowed with in-memory reading on a band."""
    from deploy.runtime.tiling import tile_grid

    job = job or Job()
    with tempfile.TemporaryDirectory(prefix="studio-scene-", dir=keep) as tmp:
        folder = Path(tmp)
        scene = folder / f"scene{size}.tif"
        started = time.perf_counter()
        write_scene(scene, size, job=job, compress=compress)
        written_s = time.perf_counter() - started
        tiles = len(tile_grid(size, size, tile, 0.2))
        job.stage("predict the scene", None, f"{tiles} tiles of {tile} px, {workers} worker(s)")
        run = _predict_child(model, scene, folder / "features", tile, workers, backend)
        summary = run["summary"]
        features = sorted((folder / "features").glob("*.geojson"))
        objects = len(json.loads(features[0].read_text())["features"]) if features else 0
        job.stage("reference band", None, f"the first {band_rows} tile rows, in memory and by windows")
        band = _band_rates(model, scene, folder, band_rows, tile, 0.2, workers, backend)
        return {"model": str(model), "backend": backend, "workers": workers, "size": size, "tile": tile,
                "compress": compress,
                "raster_mb": round(scene.stat().st_size / 1e6, 1), "raster_rgb_mb": round(size * size * 3 / 1e6, 1),
                "write_s": round(written_s, 1), "tiles": tiles, "tiles_run": summary["tiles"],
                "seconds": summary["seconds"], "wall_s": round(run["wall_s"], 1),
                "tiles_per_s": round(summary["tiles"] / summary["seconds"], 2) if summary["seconds"] else 0.0,
                "objects": objects, "merge_ms": summary["merge_ms"], "peak_rss_mb": run["peak_rss_mb"],
                "band": band}
