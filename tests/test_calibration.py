"""Calibration inputs are exactly the runtime's letterboxed pixels, in the layout rknn-toolkit2 reads."""
from __future__ import annotations

import numpy as np
import pytest

from deploy.convert.calibration import list_images, prepare_calibration, read_rgb
from deploy.errors import UserError
from deploy.runtime.preprocess import letterbox


def test_calibration_npy_is_the_letterboxed_rgb_image(calib_dir, tmp_path):
    images = list_images(calib_dir, 2)
    dataset, npys = prepare_calibration(images, 128, tmp_path)
    assert dataset.read_text().splitlines() == [str(p.resolve()) for p in npys]
    for image, npy in zip(images, npys):
        expected, _ = letterbox(read_rgb(image), 128)
        got = np.load(npy)
        assert got.shape == (1, 3, 128, 128) and got.dtype == np.uint8
        np.testing.assert_array_equal(got[0].transpose(1, 2, 0), expected)


def test_read_rgb_swaps_opencv_bgr(tmp_path):
    import cv2

    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    rgb = read_rgb(tmp_path / "red.png")
    assert (rgb[..., 0] == 200).all() and (rgb[..., 2] == 0).all()


def test_calib_count_takes_the_first_sorted_images(calib_dir):
    assert [p.name for p in list_images(calib_dir, 2)] == ["img0.png", "img1.png"]
    assert len(list_images(calib_dir, 0)) == 4


def test_missing_calibration_folder(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        list_images(tmp_path / "nowhere", 10)
