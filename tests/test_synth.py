"""The synthetic remote-sensing generators: deterministic and frozen, mostly small objects, clutter, valid labels;
the dense one with rows of touching rotated objects, labelled oriented or upright from the same poses."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from deploy.runtime.rotated import from_polygon
from studio.core.data.aerial import CLASSES, render_scene
from studio.core.data.oriented import label_text
from studio.core.data.synth import SynthConfig, generate, render_image, split_of


def _digest(folder) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.txt")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    a = generate(SynthConfig(tmp_path / "a", images=6, size=128, seed=3))
    b = generate(SynthConfig(tmp_path / "b", images=6, size=128, seed=3))
    c = generate(SynthConfig(tmp_path / "c", images=6, size=128, seed=4))
    assert _digest(a.parent / "labels") == _digest(b.parent / "labels") != _digest(c.parent / "labels")
    for split_file in ("train/000000.png", "val/000004.png"):
        assert (a.parent / "images" / split_file).read_bytes() == (b.parent / "images" / split_file).read_bytes()


def test_splits_scenes_and_data_yaml(tmp_path):
    data = generate(SynthConfig(tmp_path, images=20, size=128, scenes=1, scene_size=512))
    counts = {s: len(list((tmp_path / "labels" / s).glob("*.txt"))) for s in ("train", "val", "test", "scenes")}
    assert counts == {"train": 14, "val": 4, "test": 2, "scenes": 1}
    assert [split_of(i, SynthConfig(tmp_path, images=20)) for i in (13, 14, 17, 18)] == ["train", "val", "val", "test"]
    text = data.read_text()
    assert "train: images/train" in text and "test: images/test" in text and "3: ship" in text
    rows = np.array([list(map(float, line.split())) for f in sorted((tmp_path / "labels").rglob("*.txt"))
                     for line in f.read_text().splitlines()])
    assert set(rows[:, 0].astype(int)) <= set(range(len(CLASSES)))
    assert (rows[:, 1:] > 0).all() and (rows[:, 1:] <= 1).all()
    assert (rows[:, 1] - rows[:, 3] / 2 >= -1e-6).all() and (rows[:, 1] + rows[:, 3] / 2 <= 1 + 1e-6).all()


def test_most_objects_small_clutter_in_most_images_every_class_present():
    sizes, classes, cluttered = [], [], 0
    for i in range(120):
        _, labels, clutter = render_scene(np.random.default_rng([0, i]), 320, 320)
        sizes += [(x1 - x0) * (y1 - y0) for _, x0, y0, x1, y1 in labels]
        classes += [c for c, *_ in labels]
        cluttered += clutter > 0
    assert np.mean(np.array(sizes) < 32 * 32) >= 0.5
    assert cluttered / 120 >= 0.6
    assert set(classes) == set(range(len(CLASSES)))
    assert len(sizes) / 120 >= 3  # several objects per image on average


def test_an_image_does_not_depend_on_how_many_are_asked_for(tmp_path):
    img, labels = render_image(SynthConfig(tmp_path, images=5, size=128, seed=1), 2)
    img2, labels2 = render_image(SynthConfig(tmp_path, images=500, size=128, seed=1), 2)
    assert np.array_equal(img, img2) and labels == labels2


def test_one_split_alone_has_the_same_bytes(tmp_path):
    full = generate(SynthConfig(tmp_path / "full", images=10, size=96)).parent
    val = generate(SynthConfig(tmp_path / "val", images=10, size=96), splits=("val",)).parent
    assert not (val / "images" / "train").exists()
    assert "train:" not in (val / "data.yaml").read_text()
    for image in (full / "images" / "val").iterdir():
        assert (val / "images" / "val" / image.name).read_bytes() == image.read_bytes()


def _fingerprint(generator: str, task: str) -> str:
    h = hashlib.sha256()
    for i in range(3):
        img, rows = render_image(SynthConfig(Path("unused"), size=192, generator=generator, task=task, seed=5), i)
        h.update(img.tobytes() + label_text(rows).encode())
    return h.hexdigest()[:16]


def test_generators_are_frozen():
    """Recorded figures (bundled models, the dense benchmark's training runs) depend on these bytes: a change to
    either generator must be a new generator name, not an edit."""
    assert _fingerprint("sparse-1", "detect") == "c7a91261c0722400"
    assert _fingerprint("dense-1", "obb") == "38a879c38ab9b6ec"
    assert _fingerprint("dense-1", "detect") == "2393263ba91c8330"


def _rows(generator: str, task: str, images: int = 30) -> list[np.ndarray]:
    cfg = SynthConfig(Path("unused"), size=320, generator=generator, task=task)
    return [np.array(render_image(cfg, i)[1], np.float64).reshape(-1, 9 if task == "obb" else 5) for i in range(images)]


def test_dense_scenes_have_rows_of_touching_rotated_objects_cut_by_the_border():
    rows = _rows("dense-1", "obb")
    assert np.mean([len(r) for r in rows]) >= 25  # dense: the sparse generator has about 6
    quads = [r[:, 1:].reshape(-1, 4, 2) * 320 for r in rows]
    rboxes = np.concatenate([[from_polygon(q) for q in image] for image in quads])
    assert (rboxes[:, 2] >= rboxes[:, 3]).all()
    upright = np.minimum(rboxes[:, 4] % (np.pi / 2), np.pi / 2 - rboxes[:, 4] % (np.pi / 2))
    assert np.mean(upright > np.radians(20)) >= 0.3  # many objects far from axis-aligned
    assert np.mean([(np.isclose(q, 0) | np.isclose(q, 320)).any() for image in quads for q in image]) >= 0.03  # cut
    touching = 0
    for image in quads:  # a neighbour's corner within 2.5 px of an object's centre line ends = rows of touching cars
        for k, q in enumerate(image):
            others = np.delete(image, k, 0).reshape(-1, 2)
            touching += len(others) and np.min(np.linalg.norm(others[:, None] - q[None], axis=2)) < 2.5
    assert touching / sum(len(q) for q in quads) >= 0.3
    assert rboxes[:, 2].max() / np.median(rboxes[:, 2]) > 5  # a wide spread of sizes


def test_the_detect_task_labels_the_same_objects_upright():
    for obb, det in zip(_rows("dense-1", "obb", 8), _rows("dense-1", "detect", 8)):
        assert len(obb) == len(det) and (obb[:, 0] == det[:, 0]).all()
        whole = ~((np.isclose(obb[:, 1:], 0) | np.isclose(obb[:, 1:], 1)).any(1))
        quads = obb[whole, 1:].reshape(-1, 4, 2)
        lo, hi = quads.min(1), quads.max(1)
        assert np.allclose(np.concatenate([(lo + hi) / 2, hi - lo], 1), det[whole, 1:], atol=2e-6)
