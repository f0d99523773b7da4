"""The source grammar: files, folders, globs, videos, cameras; a corrupt image is skipped, not fatal."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from deploy.errors import UserError
from deploy.runtime.sources import ImageSource, VideoSource, open_source
from tests.conftest import rng_image


@pytest.fixture
def image_folder(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), rng_image(40, 60, seed=i))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    return tmp_path


def test_folder_skips_a_corrupt_image_with_a_warning(image_folder):
    warnings = []
    source = open_source(str(image_folder), warn=warnings.append)
    frames = list(source)
    assert [f.source.rsplit("/", 1)[1] for f in frames] == ["img0.png", "img1.png", "img2.png"]
    assert [f.index for f in frames] == [0, 1, 2]
    assert len(warnings) == 1 and "broken.png" in warnings[0]
    assert frames[0].image.shape == (40, 60, 3)
    bgr = cv2.imread(str(image_folder / "img0.png"))
    np.testing.assert_array_equal(frames[0].image, bgr[..., ::-1])  # RGB, as the model expects


def test_glob_and_single_file(image_folder):
    assert len(list(open_source(str(image_folder / "img[01].png")))) == 2
    single = open_source(str(image_folder / "img2.png"))
    assert isinstance(single, ImageSource) and len(list(single)) == 1


def test_video_file_frames(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(7):
        writer.write(np.full((48, 64, 3), i * 30, np.uint8))
    writer.release()
    source = open_source(str(path))
    assert isinstance(source, VideoSource) and not source.live
    frames = list(source)
    assert len(frames) == 7 and frames[0].image.shape == (48, 64, 3)
    assert len(list(open_source(str(path), max_frames=3))) == 3


def test_camera_spec_is_live():
    source = open_source("camera:0")
    assert source.live and source.name == "camera:0"


@pytest.mark.parametrize("spec,message", [
    ("camera:front", "camera:N"),
    ("missing.jpg", "no such file"),
    ("*.nothing-matches", "matches no images"),
])
def test_bad_sources(spec, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=message):
        open_source(spec)


def test_empty_folder_and_unknown_suffix(tmp_path):
    with pytest.raises(UserError, match="holds no images"):
        open_source(str(tmp_path))
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(UserError, match="not an image"):
        open_source(str(tmp_path / "model.bin"))
