"""Labels to re-train on from a scene run: DOTA rows per scene that read back as the merged detections, and the
scene's tiles as a YOLO-OBB dataset that `studio data tile` would cut from those labels, empty raster tiles left out."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from deploy.errors import UserError
from deploy.runtime.raster import RasterImage
from deploy.runtime.rotated import corners
from deploy.runtime.tiling import tile_grid
from studio.core.data.checks import check_dataset
from studio.core.data.formats import read_dota, read_label_rows, write_data_yaml
from studio.core.data.oriented import label_text
from studio.core.data.tile import TileRequest, tile_dataset
from studio.core.predict import PredictRequest, predict
from tests.test_raster import write_tif

TILE, OVERLAP, H, W = 320, 0.2, 600, 900
SAMPLE = Path(__file__).parent.parent / "assets" / "samples" / "dense_scene.jpg"


@pytest.fixture(scope="module")
def run(obb_student_onnx, tmp_path_factory):
    """Part of the bundled dense scene as a GeoTIFF whose left 350 columns are nodata, run tiled by the bundled
    OBB student with --labels."""
    folder = tmp_path_factory.mktemp("labels")
    rgb = np.ascontiguousarray(cv2.imread(str(SAMPLE))[:H, :W, ::-1])
    rgb[:, :350] = 0
    write_tif(folder / "scene.tif", rgb.transpose(2, 0, 1).copy(), nodata=0)
    scenes = []
    summary = predict(PredictRequest(model=obb_student_onnx, source=str(folder / "scene.tif"), tile=TILE,
                                     overlap=OVERLAP, conf=0.3, labels=folder / "labels"), on_result=scenes.append)
    return folder, summary, scenes[-1], rgb


def test_dota_rows_read_back_as_the_merged_detections(run):
    folder, summary, dets, _ = run
    assert summary.labels[0]["objects"] == len(dets) > 50
    names, samples = read_dota(folder / "labels" / "dota", folder)
    assert len(samples) == 1 and samples[0].image.name == "scene.tif"
    quads = np.array([o[6] for o in samples[0].objects]).reshape(-1, 4, 2)
    assert np.allclose(quads, corners(dets.rboxes), atol=0.051)  # one decimal, as DOTA files are written
    assert set(names) <= {"vehicle", "storage-tank", "plane", "ship"}


def test_the_tiles_are_the_runs_grid_without_empty_ones_and_their_labels_are_data_tiles(run, tmp_path):
    folder, summary, dets, rgb = run
    out = folder / "labels"
    assert check_dataset(out / "data.yaml", ("train",)) == "obb"
    images = {p.stem: p for p in (out / "images" / "train").glob("*.png")}
    raster = RasterImage(str(folder / "scene.tif"))
    grid = tile_grid(H, W, TILE, OVERLAP)
    kept = {f"scene_{x}_{y}" for x, y, s in grid if not raster.empty(x, y, s)}
    assert set(images) == kept and len(kept) < len(grid) and summary.labels[0]["tiles"] == len(kept)
    x, y = next((x, y) for x, y, _ in grid if f"scene_{x}_{y}" in kept)
    assert np.array_equal(cv2.imread(str(images[f"scene_{x}_{y}"]))[..., ::-1], rgb[y : y + TILE, x : x + TILE])

    # `studio data tile` on the same scene labelled with the merged detections cuts the same labels
    scenes = tmp_path / "scenes"
    (scenes / "images" / "scenes").mkdir(parents=True)
    (scenes / "labels" / "scenes").mkdir(parents=True)
    cv2.imwrite(str(scenes / "images" / "scenes" / "scene.png"), rgb[..., ::-1])
    quads = corners(dets.rboxes).astype(np.float64) / [W, H]
    rows = [[int(c), *q.reshape(-1).tolist()] for c, q in zip(dets.classes, quads)]
    (scenes / "labels" / "scenes" / "scene.txt").write_text(label_text(rows))
    write_data_yaml(scenes, ["vehicle", "storage-tank", "plane", "ship"], ("scenes",), "test")
    tile_dataset(TileRequest(scenes / "data.yaml", tmp_path / "tiled", size=TILE, overlap=OVERLAP))
    labelled = 0
    for stem in kept:
        ours = read_label_rows(out / "labels" / "train" / f"{stem}.txt", 4)
        theirs = read_label_rows(tmp_path / "tiled" / "labels" / "train" / f"{stem}.txt", 4)
        assert [c for c, _ in ours] == [c for c, _ in theirs], stem
        assert np.allclose([v for _, v in ours], [v for _, v in theirs], atol=2e-6), stem
        labelled += bool(ours)
    assert labelled == len(kept)


def test_labels_without_tiles_is_refused_before_anything_is_written(obb_onnx, tmp_path):
    with pytest.raises(UserError, match="--labels writes the tiles of a tiled run"):
        predict(PredictRequest(model=obb_onnx, source=str(tmp_path), labels=tmp_path / "labels"))
    assert not (tmp_path / "labels").exists()
