"""The first synthetic generator: deterministic, valid YOLO labels, a data.yaml ultralytics reads."""
from __future__ import annotations

import hashlib

import numpy as np

from studio.core.data.synth import CLASSES, SynthConfig, generate, render_image


def _digest(folder) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.txt")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_label_bytes_and_other_seed_differs(tmp_path):
    a = generate(SynthConfig(tmp_path / "a", images=6, size=128, seed=3))
    b = generate(SynthConfig(tmp_path / "b", images=6, size=128, seed=3))
    c = generate(SynthConfig(tmp_path / "c", images=6, size=128, seed=4))
    assert _digest(a.parent / "labels") == _digest(b.parent / "labels") != _digest(c.parent / "labels")
    img_a = (a.parent / "images" / "train" / "000000.png").read_bytes()
    assert img_a == (b.parent / "images" / "train" / "000000.png").read_bytes()


def test_labels_are_valid_yolo_boxes(tmp_path):
    data = generate(SynthConfig(tmp_path, images=10, size=128))
    files = sorted((tmp_path / "labels").rglob("*.txt"))
    assert len(files) == 10 and len(list((tmp_path / "labels" / "val").glob("*.txt"))) == 2
    rows = np.array([list(map(float, line.split())) for f in files for line in f.read_text().splitlines()])
    assert len(rows) >= 10
    assert set(rows[:, 0].astype(int)) <= set(range(len(CLASSES)))
    assert (rows[:, 1:] > 0).all() and (rows[:, 1:] <= 1).all()
    assert (rows[:, 1] - rows[:, 3] / 2 >= -1e-6).all() and (rows[:, 1] + rows[:, 3] / 2 <= 1 + 1e-6).all()
    text = data.read_text()
    assert "train: images/train" in text and "3: ship" in text


def test_an_image_does_not_depend_on_how_many_are_asked_for(tmp_path):
    img, labels = render_image(SynthConfig(tmp_path, images=5, size=128, seed=1), 2)
    img2, labels2 = render_image(SynthConfig(tmp_path, images=500, size=128, seed=1), 2)
    assert np.array_equal(img, img2) and labels == labels2
