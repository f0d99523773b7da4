"""`studio data stats` finds each kind of problem; `studio data tile` clips and drops labels correctly."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np

from studio.core.data.oriented import upright_box
from studio.core.data.synth import SynthConfig, generate


def test_stats_reports_problems_counts_and_plots(cli, tmp_path):
    data = generate(SynthConfig(tmp_path / "ds", images=10, size=128))
    root = data.parent
    train_images = sorted((root / "images" / "train").glob("*.png"))
    shutil.copy(train_images[0], root / "images" / "train" / "dupe.png")  # duplicate bytes
    (root / "labels" / "train" / "dupe.txt").write_text("")  # empty label
    (root / "labels" / "train" / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # no image
    (root / "images" / "train" / "broken.png").write_bytes(b"nope")
    bad = root / "labels" / "train" / f"{train_images[1].stem}.txt"
    bad.write_text(bad.read_text() + "0 0.99 0.5 0.2 0.1\n7 0.5 0.5 0.1 0.1\nrubbish\n")
    result = cli("data", "stats", data, "--plots", tmp_path / "plots", "--json")
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["images"] == {"train": 9, "val": 2, "test": 1}
    assert [p.rsplit("/", 1)[1] for p in stats["missing_images"]] == ["orphan.txt"]
    assert [p.rsplit("/", 1)[1] for p in stats["unreadable_images"]] == ["broken.png"]
    assert "dupe.txt" in [p.rsplit("/", 1)[1] for p in stats["empty_labels"]]  # empty: not a problem
    assert len(stats["out_of_range"]) == 1 and len(stats["corrupt_labels"]) == 2
    assert any("class id 7" in c for c in stats["corrupt_labels"])
    assert len(stats["duplicates"]) == 1 and len(stats["duplicates"][0]) == 2
    assert stats["problems"] == 1 + 1 + 2 + 1 + 1
    assert sum(stats["sizes"].values()) == sum(stats["objects_per_class"].values()) > 0
    assert stats["small_fraction"] >= 0.5
    for plot in stats["plots"]:
        image = cv2.imread(plot)
        assert image is not None and image.shape[0] > 100


def _clip(box, min_area: float = 0.5):
    x0, y0, x1, y1 = box
    kept = upright_box(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float), 0, 0, 64, 64, min_area)
    return None if kept is None else tuple(round(v, 6) for v in kept)


def test_an_upright_box_cut_by_a_tile_edge_is_kept_or_dropped_by_area():
    assert _clip((10, 10, 30, 30)) == (10, 10, 30, 30)
    assert _clip((40, 10, 70, 30)) == (40, 10, 64, 30)  # 24/30 of it inside
    assert _clip((50, 10, 80, 30)) is None  # 14/30 inside
    assert _clip((58, 10, 80, 30)) is None  # only 6/22 inside
    assert _clip((100, 10, 120, 30)) is None  # outside


def test_tile_dataset_cuts_scenes(cli, tmp_path):
    data = generate(SynthConfig(tmp_path / "ds", images=3, size=128, scenes=1, scene_size=400))
    result = cli("data", "tile", data, "--out", tmp_path / "tiles", "--size", 160, "--overlap", 0.25, "--json")
    assert result.exit_code == 0, result.stderr
    tiles = sorted((tmp_path / "tiles" / "images" / "train").glob("*.png"))
    assert len(tiles) == 9  # 3 x 3 tiles of 160 over 400 px with >= 25% overlap
    assert all(cv2.imread(str(t)).shape == (160, 160, 3) for t in tiles)
    rows = np.array([list(map(float, line.split())) for t in tiles
                     for line in (tmp_path / "tiles" / "labels" / "train" / f"{t.stem}.txt").read_text().splitlines()])
    assert len(rows) > 0 and (rows[:, 1:] >= 0).all() and (rows[:, 1:] <= 1).all()
    assert "train: images/train" in (tmp_path / "tiles" / "data.yaml").read_text()
    assert (tmp_path / "tiles" / "data.yaml").read_text().startswith("# written by studio data tile\n")


def test_stats_of_oriented_labels_counts_angles_and_refuses_mixed_or_degenerate_rows(cli, tmp_path):
    data = generate(SynthConfig(tmp_path / "ds", images=6, size=192, generator="dense-1", task="obb"))
    result = cli("data", "stats", data, "--plots", tmp_path / "plots", "--json")
    stats = json.loads(result.stdout)
    objects = sum(stats["objects_per_class"].values())
    assert stats["task"] == "obb" and stats["problems"] == 0 and objects > 30
    assert sum(stats["angles"].values()) == sum(stats["aspect_ratios"].values()) == objects
    assert len([n for n in stats["angles"].values() if n]) >= 4  # angles spread over the half turn
    assert (tmp_path / "plots" / "angles.png").is_file() and (tmp_path / "plots" / "aspect_ratios.png").is_file()
    from studio.core.data.preview import labelled_image

    image = sorted((data.parent / "images" / "train").glob("*.png"))[0]
    drawn, count = labelled_image(image, stats["names"])
    assert count == len((data.parent / "labels" / "train" / f"{image.stem}.txt").read_text().splitlines()) > 0
    assert (drawn != cv2.imread(str(image))[..., ::-1]).any(axis=2).mean() > 0.01  # turned outlines drawn
    label = sorted((data.parent / "labels" / "train").glob("*.txt"))[0]
    label.write_text(label.read_text() + "0 0.5 0.5 0.1 0.1\n1 0.1 0.1 1.2 0.1 1.2 0.3 0.1 0.3\n"
                                         "2 0.4 0.4 0.4 0.4 0.4 0.4 0.4 0.4\n3 0.1 0.1 0.2 0.1 0.2 0.2\n")
    stats = json.loads(cli("data", "stats", data, "--json").stdout)
    assert [p.split(": ", 1)[1] for p in stats["corrupt_labels"]] == [
        "4 coordinates where the dataset's labels have 8 (upright and oriented boxes cannot be mixed)",
        "expected 'class cx cy w h' or 'class x1 y1 ... x4 y4'"]
    assert len(stats["out_of_range"]) == 2  # a corner outside the image; a rectangle of no area


def test_tiling_oriented_labels_clips_cut_objects_to_their_visible_rectangle(cli, tmp_path):
    """A dense OBB scene tiled: every tile label is an oriented box inside its tile, objects cut by a tile edge come
    back shorter (the turned rectangle of their visible part), and one whole in a tile keeps its corners."""
    from deploy.runtime.rotated import from_polygon

    data = generate(SynthConfig(tmp_path / "ds", images=3, size=128, scenes=1, scene_size=480, generator="dense-1",
                                task="obb"))
    result = cli("data", "tile", data, "--out", tmp_path / "tiles", "--size", 192, "--overlap", 0.25)
    assert result.exit_code == 0, result.stderr
    scene = (data.parent / "labels" / "scenes" / "scene_000.txt").read_text().splitlines()
    whole = {tuple(np.round(np.array(r.split()[1:], float) * 480, 3)) for r in scene}
    kept = cut = 0
    for path in sorted((tmp_path / "tiles" / "labels" / "train").glob("*.txt")):
        tx, ty = (int(v) for v in path.stem.split("_")[-2:])
        for row in path.read_text().splitlines():
            values = np.array(row.split()[1:], float)
            assert len(values) == 8 and (values >= 0).all() and (values <= 1).all()
            in_scene = tuple(np.round(values.reshape(4, 2) * 192 + [tx, ty], 3).reshape(-1))
            if any(np.allclose(in_scene, w, atol=2e-3) for w in whole):
                kept += 1
            else:
                cut += 1
                assert from_polygon(values.reshape(4, 2) * 192)[2] > 0
    assert kept > 20 and cut > 3
    stats = json.loads(cli("data", "stats", tmp_path / "tiles" / "data.yaml", "--json").stdout)
    assert stats["task"] == "obb" and stats["problems"] == 0
