"""Letterbox: the board, the calibration and the host all see the same pixels, and boxes map back."""
from __future__ import annotations

import numpy as np
import pytest

from deploy.runtime import preprocess
from deploy.runtime.preprocess import boxes_to_original, letterbox
from tests.conftest import rng_image


@pytest.mark.parametrize("hw", [(96, 128), (128, 96), (300, 200), (64, 64)])
def test_letterbox_places_image_centred_with_grey_padding(hw):
    image = rng_image(*hw)
    canvas, info = letterbox(image, 128)
    assert canvas.shape == (128, 128, 3) and canvas.dtype == np.uint8
    scale = min(128 / hw[0], 128 / hw[1])
    assert info.scale == pytest.approx(scale)
    new_h, new_w = round(hw[0] * scale), round(hw[1] * scale)
    top, left = int(info.pad_y), int(info.pad_x)
    assert abs((128 - new_h) - 2 * top) <= 1 and abs((128 - new_w) - 2 * left) <= 1
    if top:
        assert (canvas[:top] == 114).all()
    if left:
        assert (canvas[:, :left] == 114).all()


def test_box_round_trip_to_original_pixels():
    image = rng_image(300, 200)
    _, info = letterbox(image, 128)
    original = np.array([[10, 20, 150, 280], [0, 0, 200, 300]], np.float32)
    in_model = original * info.scale + np.array([info.pad_x, info.pad_y] * 2, np.float32)
    np.testing.assert_allclose(boxes_to_original(in_model, info), original, atol=1e-3)


def test_numpy_resize_fallback_matches_opencv(monkeypatch):
    image = rng_image(97, 131, seed=3)
    with_cv2, _ = letterbox(image, 128)
    monkeypatch.setattr(preprocess, "cv2", None)
    without, _ = letterbox(image, 128)
    assert np.abs(with_cv2.astype(int) - without.astype(int)).max() <= 1
