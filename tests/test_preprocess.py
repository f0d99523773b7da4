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


def test_boxes_in_the_top_and_left_padding_clip_to_the_image_edge():
    """A box reaching into the top padding of a wide image, or past its left edge, starts at 0 in the original."""
    _, info = letterbox(np.zeros((100, 200, 3), np.uint8), 128)  # scale 0.64, 64 rows of image, 32 rows of pad above
    assert (info.scale, info.pad_x, info.pad_y) == (0.64, 0.0, 32.0)
    boxes = np.array([[-10.0, 0.0, 64.0, 64.0], [64.0, 64.0, 140.0, 128.0]], np.float32)
    # y 0 -> (0 - 32) / 0.64 = -50 -> 0; y 64 -> 50; y 128 -> 150 -> clipped to 100; x 140 -> 218.75 -> 200
    np.testing.assert_allclose(boxes_to_original(boxes, info), [[0, 0, 100, 50], [100, 50, 200, 100]], rtol=1e-6)


def test_mapping_boxes_back_returns_new_float32_rows_and_leaves_the_input_alone():
    """The input array is not modified (even when it is already float32), and float64 input comes back float32."""
    _, info = letterbox(np.zeros((100, 200, 3), np.uint8), 128)
    for dtype in (np.float32, np.float64):
        boxes = np.array([[0.0, 40.0, 64.0, 80.0]], dtype)
        out = boxes_to_original(boxes, info)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(boxes, np.array([[0.0, 40.0, 64.0, 80.0]], dtype))
        np.testing.assert_allclose(out, [[0, 12.5, 100, 75]], rtol=1e-6)


def test_numpy_resize_fallback_upscales_like_opencv_at_the_borders(monkeypatch):
    """Enlarging (where sample points fall outside the image and must clamp to its edge rows) matches OpenCV."""
    image = np.zeros((3, 4, 3), np.uint8)
    image[0], image[-1] = 250, 10  # first and last rows far apart, so wrapping around an edge would show
    image[:, 0, 1], image[:, -1, 1] = 0, 200
    expected = preprocess.resize_bilinear(image, 11, 9)
    monkeypatch.setattr(preprocess, "cv2", None)
    got = preprocess.resize_bilinear(image, 11, 9)
    assert got.dtype == np.uint8 and got.shape == (9, 11, 3)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize("level", [0, 255])
def test_numpy_resize_fallback_keeps_a_flat_image_flat(monkeypatch, level):
    """A flat black or white image stays exactly that grey level, in either direction of resize."""
    monkeypatch.setattr(preprocess, "cv2", None)
    image = np.full((6, 10, 3), level, np.uint8)
    for width, height in ((4, 3), (15, 9)):
        np.testing.assert_array_equal(preprocess.resize_bilinear(image, width, height),
                                      np.full((height, width, 3), level, np.uint8))


def test_numpy_resize_fallback_keeps_a_single_channel_image_two_dimensional(monkeypatch):
    """An (H, W) grey image comes back (h, w), not (h, w, 1)."""
    monkeypatch.setattr(preprocess, "cv2", None)
    image = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    out = preprocess.resize_bilinear(image, 3, 2)
    assert out.shape == (2, 3)
    # halving: each output pixel is the mean of a 2x2 block, e.g. (0 + 10 + 60 + 70) / 4 = 35
    np.testing.assert_array_equal(out, [[35, 55, 75], [155, 175, 195]])


def test_model_inputs_have_the_layouts_and_scales_the_runtimes_expect():
    """ONNX input: (1, 3, H, W) float32 in [0, 1]; RKNN input: (1, H, W, 3) uint8, both contiguous."""
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 1] = (255, 51, 0)  # row 0, column 1
    nchw = preprocess.to_nchw_float(rgb)
    assert nchw.shape == (1, 3, 2, 3) and nchw.dtype == np.float32 and nchw.flags.c_contiguous
    assert nchw[0, :, 0, 1].tolist() == pytest.approx([1.0, 0.2, 0.0])
    assert nchw.sum() == pytest.approx(1.2)
    nhwc = preprocess.to_nhwc_uint8(rgb)
    assert nhwc.shape == (1, 2, 3, 3) and nhwc.dtype == np.uint8 and nhwc.flags.c_contiguous
    np.testing.assert_array_equal(nhwc[0], rgb)
