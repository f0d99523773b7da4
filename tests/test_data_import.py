"""Dataset import from YOLO, COCO, VOC and DOTA; malformed files are named with their line."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import rng_image


def _images(folder: Path, names=("a.png", "b.png"), hw=(100, 200)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(names):
        cv2.imwrite(str(folder / n), rng_image(*hw, seed=i))
    return folder


def _labels(out: Path, split: str = "train") -> dict[str, list[list[float]]]:
    return {p.stem: [list(map(float, line.split())) for line in p.read_text().splitlines()]
            for p in sorted((out / "labels" / split).glob("*.txt"))}


def test_coco_import(cli, tmp_path):
    images = _images(tmp_path / "imgs")
    coco = {"images": [{"id": 7, "file_name": "a.png", "width": 200, "height": 100},
                       {"id": 8, "file_name": "b.png", "width": 200, "height": 100}],
            "categories": [{"id": 3, "name": "ship"}, {"id": 1, "name": "plane"}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [10, 20, 40, 30]},
                            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [100, 0, 100, 100]}]}
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    result = cli("data", "import", "coco", tmp_path / "ann.json", "--images", images, "--split", "val",
                 "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.stderr
    text = (tmp_path / "out" / "data.yaml").read_text()
    assert "0: plane" in text and "1: ship" in text  # categories in id order
    assert text.startswith("# written by studio data import coco\n")
    labels = _labels(tmp_path / "out", "val")
    assert labels["b"] == []
    np.testing.assert_allclose(labels["a"], [[1, 0.15, 0.35, 0.2, 0.3], [0, 0.75, 0.5, 0.5, 1.0]], atol=1e-6)


def test_voc_import_keeps_difficult(cli, tmp_path):
    images = _images(tmp_path / "JPEGImages", ("a.png",))
    ann = tmp_path / "Annotations"
    ann.mkdir()
    (ann / "a.xml").write_text("""<annotation><filename>a.png</filename>
      <object><name>car</name><difficult>0</difficult><bndbox><xmin>11</xmin><ymin>21</ymin><xmax>50</xmax>
      <ymax>50</ymax></bndbox></object>
      <object><name>tank</name><difficult>1</difficult><bndbox><xmin>101</xmin><ymin>1</ymin><xmax>200</xmax>
      <ymax>100</ymax></bndbox></object></annotation>""")
    result = cli("data", "import", "voc", ann, "--images", images, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(_labels(tmp_path / "out")["a"], [[0, 0.15, 0.35, 0.2, 0.3], [1, 0.75, 0.5, 0.5, 1.0]],
                               atol=1e-6)
    assert json.loads((tmp_path / "out" / "difficult.json").read_text()) == {"train/a": [1]}


def test_dota_import_polygons_to_boxes(cli, tmp_path):
    images = _images(tmp_path / "images", ("P0001.png",))
    lbl = tmp_path / "labelTxt"
    lbl.mkdir()
    (lbl / "P0001.txt").write_text("imagesource:GoogleEarth\ngsd:0.5\n"
                                   "30 20 50 40 30 60 10 40 small-vehicle 0\n"
                                   "100 0 200 0 200 100 100 100 plane 1\n")
    result = cli("data", "import", "dota", lbl, "--images", images, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    labels = _labels(tmp_path / "out")["P0001"]
    np.testing.assert_allclose(labels, [[1, 0.15, 0.4, 0.2, 0.4], [0, 0.75, 0.5, 0.5, 1.0]], atol=1e-6)
    assert json.loads((tmp_path / "out" / "difficult.json").read_text()) == {"train/P0001": [1]}


def test_yolo_import_round_trip(cli, tmp_path):
    from studio.core.data.synth import SynthConfig, generate

    src = generate(SynthConfig(tmp_path / "src", images=5, size=128))
    result = cli("data", "import", "yolo", src, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    for split in ("train", "val", "test"):
        original = _labels(tmp_path / "src", split)
        imported = _labels(tmp_path / "out", split)
        assert original.keys() == imported.keys()
        for k in original:
            np.testing.assert_allclose(imported[k], original[k], atol=2e-5)


def assert_error(result, *fragments):
    assert result.exit_code == 2, (result.stdout, result.stderr)
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    for f in fragments:
        assert f in line, line


def test_malformed_coco_names_file_and_line(cli, tmp_path):
    (tmp_path / "ann.json").write_text('{"images": [\n  {"id": 1,\n  oops}\n]}')
    _images(tmp_path / "imgs")
    assert_error(cli("data", "import", "coco", tmp_path / "ann.json", "--images", tmp_path / "imgs", "--out",
                     tmp_path / "o"), "ann.json:3", "not valid JSON")


def test_malformed_voc_names_file_and_line(cli, tmp_path):
    ann = tmp_path / "Annotations"
    ann.mkdir()
    (ann / "x.xml").write_text("<annotation>\n<object>\n<name>car</name>\n</annotation>")
    assert_error(cli("data", "import", "voc", ann, "--images", _images(tmp_path / "imgs"), "--out", tmp_path / "o"),
                 "x.xml:4", "not valid XML")


def test_malformed_dota_names_file_and_line(cli, tmp_path):
    lbl = tmp_path / "labelTxt"
    lbl.mkdir()
    (lbl / "P1.txt").write_text("1 2 3 4 5 6 7 8 plane 0\n1 2 3 four 5 6 7 8 ship 0\n")
    assert_error(cli("data", "import", "dota", lbl, "--images", _images(tmp_path / "imgs"), "--out", tmp_path / "o"),
                 "P1.txt:2")


def _yolo_dataset(tmp_path: Path, label_text: str) -> Path:
    _images(tmp_path / "ds" / "images" / "train", ("a.png",))
    (tmp_path / "ds" / "labels" / "train").mkdir(parents=True)
    (tmp_path / "ds" / "labels" / "train" / "a.txt").write_text(label_text)
    (tmp_path / "ds" / "data.yaml").write_text("train: images/train\nnames:\n  0: car\n  1: tank\n")
    return tmp_path / "ds" / "data.yaml"


def test_malformed_yolo_label_and_class_out_of_range(cli, tmp_path):
    data = _yolo_dataset(tmp_path, "0 0.5 0.5 0.1 0.1\n0 0.5 zero 0.1 0.1\n")
    assert_error(cli("data", "import", "yolo", data, "--out", tmp_path / "o"), "a.txt:2", "class cx cy w h")
    (tmp_path / "ds" / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n5 0.5 0.5 0.1 0.1\n")
    assert_error(cli("data", "import", "yolo", data, "--out", tmp_path / "o"), "a.txt:2", "class id 5 is out of range")


def test_data_yaml_pointing_at_missing_folder(cli, tmp_path):
    (tmp_path / "data.yaml").write_text("train: images/train\nval: images/nowhere\nnames: [car]\n")
    (tmp_path / "images" / "train").mkdir(parents=True)
    assert_error(cli("data", "import", "yolo", tmp_path / "data.yaml", "--out", tmp_path / "o"),
                 "val folder", "does not exist")
    assert_error(cli("data", "stats", tmp_path / "data.yaml"), "does not exist")


def test_empty_dataset(cli, tmp_path):
    (tmp_path / "data.yaml").write_text("train: images/train\nnames: [car]\n")
    (tmp_path / "images" / "train").mkdir(parents=True)
    assert_error(cli("data", "import", "yolo", tmp_path / "data.yaml", "--out", tmp_path / "o"), "empty")
    assert_error(cli("data", "stats", tmp_path / "data.yaml"), "empty")


def _coco(tmp_path: Path, name: str, categories: list[str], files: tuple[str, ...]) -> tuple[Path, Path]:
    """A COCO file with one box per image, and its images folder."""
    images = _images(tmp_path / name, files)
    coco = {"images": [{"id": i, "file_name": f, "width": 200, "height": 100} for i, f in enumerate(files)],
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(categories)],
            "annotations": [{"id": i, "image_id": i, "category_id": 1, "bbox": [10, 20, 40, 30]}
                            for i in range(len(files))]}
    (tmp_path / f"{name}.json").write_text(json.dumps(coco))
    return tmp_path / f"{name}.json", images


def test_splits_imported_one_by_one_make_one_dataset(cli, tmp_path):
    out = tmp_path / "mine"
    train, train_images = _coco(tmp_path, "train", ["plane", "ship"], ("t1.png", "t2.png"))
    val, val_images = _coco(tmp_path, "val", ["plane", "ship"], ("v1.png",))
    assert cli("data", "import", "coco", train, "--images", train_images, "--out", out).exit_code == 0
    assert cli("data", "import", "coco", val, "--images", val_images, "--split", "val", "--out", out).exit_code == 0
    text = (out / "data.yaml").read_text()
    assert text.startswith("# written by studio data import coco\n")
    assert "train: images/train" in text and "val: images/val" in text  # the second split joined the first
    assert sorted(_labels(out, "train")) == ["t1", "t2"] and sorted(_labels(out, "val")) == ["v1"]

    again = cli("data", "import", "coco", val, "--images", val_images, "--split", "val", "--out", out)
    assert again.exit_code == 2 and "already holds a val split; --force replaces that split only" in again.stderr
    other, other_images = _coco(tmp_path, "other", ["plane", "ship"], ("w1.png", "w2.png"))
    replaced = cli("data", "import", "coco", other, "--images", other_images, "--split", "val", "--out", out,
                   "--force")
    assert replaced.exit_code == 0, replaced.stderr
    assert sorted(_labels(out, "val")) == ["w1", "w2"] and sorted(_labels(out, "train")) == ["t1", "t2"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left beside it

    stranger, stranger_images = _coco(tmp_path, "stranger", ["tank"], ("s1.png",))
    refused = cli("data", "import", "coco", stranger, "--images", stranger_images, "--split", "test", "--out", out)
    assert refused.exit_code == 2 and "classes ['tank']" in refused.stderr
    assert "test" not in (out / "data.yaml").read_text()


def test_dota_import_keeps_angles_with_task_obb(cli, tmp_path):
    """Corners clockwise or counter-clockwise give the same oriented label; difficult is kept; a corner past the
    border is clipped to the visible part's rectangle; YOLO-OBB labels import unchanged."""
    from deploy.runtime.rotated import from_polygon

    images = _images(tmp_path / "images", ("P0002.png",))  # 200 x 100
    lbl = tmp_path / "labelTxt"
    lbl.mkdir()
    clockwise = "60 20 80 40 60 60 40 40"  # a square turned 45 degrees, centre (60, 40), side 28.3
    counter = "60 20 40 40 60 60 80 40"
    (lbl / "P0002.txt").write_text(f"imagesource:GoogleEarth\ngsd:0.5\n{clockwise} small-vehicle 0\n"
                                   f"{counter} small-vehicle 1\n"
                                   "150 90 190 50 199 59 159 99 ship 0\n"  # a thin ship at 45 degrees
                                   "180 80 230 80 230 90 180 90 ship 0\n")  # 20 of its 50 px lie outside
    out = tmp_path / "out"
    result = cli("data", "import", "dota", lbl, "--images", images, "--task", "obb", "--out", out)
    assert result.exit_code == 0, result.stderr
    rows = (out / "labels" / "train" / "P0002.txt").read_text().splitlines()
    assert len(rows) == 4 and rows[0] == rows[1]  # the same square, whichever way its corners run
    quads = [np.array(r.split()[1:], float).reshape(4, 2) * [200, 100] for r in rows]
    assert np.allclose(quads[0], quads[1])
    cx, cy, w, h, angle = from_polygon(quads[2])
    assert (cx, cy) == pytest.approx((174.5, 74.5), abs=0.01) and w / h == pytest.approx(56.6 / 12.7, rel=0.02)
    assert np.degrees(angle) % 90 == pytest.approx(45, abs=0.5)
    assert quads[3][:, 0].max() == pytest.approx(200) and from_polygon(quads[3])[2] == pytest.approx(20, abs=0.01)
    assert json.loads((out / "difficult.json").read_text()) == {"train/P0002": [1]}
    assert "--task obb" in (out / "data.yaml").read_text().splitlines()[0]
    upright = cli("data", "import", "dota", lbl, "--images", images, "--split", "val", "--out", out)
    assert upright.exit_code == 2 and "import this split with --task obb" in upright.stderr
    again = cli("data", "import", "yolo", out / "data.yaml", "--task", "obb", "--out", tmp_path / "copy")
    assert again.exit_code == 0, again.stderr
    copied = (tmp_path / "copy" / "labels" / "train" / "P0002.txt").read_text().splitlines()
    def corner_set(row: str) -> np.ndarray:
        return np.array(sorted(map(tuple, np.array(row.split()[1:], float).reshape(4, 2))))

    assert all(np.allclose(corner_set(a), corner_set(b), atol=2e-6) for a, b in zip(copied, rows))
