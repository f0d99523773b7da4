"""Letterbox: the board, the calibration and the host all see the same pixels, and boxes map back."""
from __future__ import annotations

import numpy as np
import pytest

from deploy.runtime import preprocess
from deploy.runtime.preprocess import boxes_to_original, letterbox
from tests.conftest import rng_image

# (h, w) -> scale, left and top padding and the placed size, worked out by hand for a 128-px input:
# 300x200 scales by 128/300 to 85.33 -> 85 px wide, leaving 43 columns: 21 left, 22 right (ultralytics' rounding)
PLACEMENTS = {(96, 128): (1.0, 0, 16, 96, 128), (128, 96): (1.0, 16, 0, 128, 96),
              (300, 200): (128 / 300, 21, 0, 128, 85), (64, 64): (2.0, 0, 0, 128, 128)}


@pytest.mark.parametrize("hw", list(PLACEMENTS))
def test_letterbox_places_image_centred_with_grey_padding(hw):
    image = rng_image(*hw)
    canvas, info = letterbox(image, 128)
    scale, left, top, new_h, new_w = PLACEMENTS[hw]
    assert canvas.shape == (128, 128, 3) and canvas.dtype == np.uint8
    assert info.scale == pytest.approx(scale) and (info.pad_x, info.pad_y) == (left, top)
    inside = np.zeros((128, 128), bool)
    inside[top : top + new_h, left : left + new_w] = True
    assert (canvas[~inside] == 114).all()  # every pixel outside the placed image is padding grey
    if scale == 1.0:  # placed as is, pixel for pixel
        assert np.array_equal(canvas[top : top + new_h, left : left + new_w], image)


@pytest.mark.parametrize("hw", [(96, 128), (300, 200), (64, 64), (97, 131), (131, 97)])
def test_letterbox_gives_the_pixels_ultralytics_trains_on(hw):
    """The runtime feeds the model what it saw in training: ultralytics' own LetterBox, pixel for pixel."""
    from ultralytics.data.augment import LetterBox

    image = rng_image(*hw, seed=1)
    assert np.array_equal(letterbox(image, 128)[0], LetterBox((128, 128))(image=image.copy()))


def test_box_round_trip_to_original_pixels():
    """A white rectangle painted in a 300x200 image is found in the letterboxed canvas; its canvas box maps
    back onto where it was painted (to within a canvas pixel, 300/128 original pixels)."""
    image = np.zeros((300, 200, 3), np.uint8)
    image[60:240, 40:120] = 255  # x 40..120, y 60..240
    canvas, info = letterbox(image, 128)
    ys, xs = np.nonzero(canvas[..., 0] > 127)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)  # pixel edges
    np.testing.assert_allclose(boxes_to_original(found, info), [[40, 60, 120, 240]], atol=300 / 128)
    # a box reaching into the padding is clipped to the image
    np.testing.assert_allclose(boxes_to_original(np.array([[0, 0, 128, 128]], np.float32), info),
                               [[0, 0, 200, 300]])


def test_numpy_resize_fallback_matches_opencv(monkeypatch):
    image = rng_image(97, 131, seed=3)
    with_cv2, _ = letterbox(image, 128)
    monkeypatch.setattr(preprocess, "cv2", None)
    without, _ = letterbox(image, 128)
    assert np.abs(with_cv2.astype(int) - without.astype(int)).max() <= 1
