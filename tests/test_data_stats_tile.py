"""`studio data stats` finds each kind of problem; `studio data tile` clips and drops labels correctly."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np

from studio.core.data.synth import SynthConfig, generate
from studio.core.data.tile import clip_to_tile


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


def test_clip_to_tile_keeps_or_drops_by_area():
    assert clip_to_tile((10, 10, 30, 30), 0, 0, 64, 0.5) == (10, 10, 30, 30)
    assert clip_to_tile((40, 10, 70, 30), 0, 0, 64, 0.5) == (40, 10, 64, 30)  # 24/30 of it inside
    assert clip_to_tile((50, 10, 80, 30), 0, 0, 64, 0.5) is None  # 14/30 inside
    assert clip_to_tile((58, 10, 80, 30), 0, 0, 64, 0.5) is None  # only 6/22 inside
    assert clip_to_tile((100, 10, 120, 30), 0, 0, 64, 0.5) is None  # outside


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
    label = sorted((data.parent / "labels" / "train").glob("*.txt"))[0]
    label.write_text(label.read_text() + "0 0.5 0.5 0.1 0.1\n1 0.1 0.1 1.2 0.1 1.2 0.3 0.1 0.3\n"
                                         "2 0.4 0.4 0.4 0.4 0.4 0.4 0.4 0.4\n3 0.1 0.1 0.2 0.1 0.2 0.2\n")
    stats = json.loads(cli("data", "stats", data, "--json").stdout)
    assert [p.split(": ", 1)[1] for p in stats["corrupt_labels"]] == [
        "4 coordinates where the dataset's labels have 8 (upright and oriented boxes cannot be mixed)",
        "expected 'class cx cy w h' or 'class x1 y1 ... x4 y4'"]
    assert len(stats["out_of_range"]) == 2  # a corner outside the image; a rectangle of no area
