"""Letterbox an image to the model's square input, and map boxes back to the original.

The same function prepares calibration images for RKNN quantization, ONNX Runtime
inputs on the host and NPU inputs on the board, so every stage sees identical pixels.
OpenCV resizes when it is installed; a numpy bilinear resize stands in otherwise.
"""
from dataclasses import dataclass

import numpy as np

try:  # OpenCV is optional on the board
    import cv2
except ImportError:  # pragma: no cover - exercised by the numpy-fallback test
    cv2 = None

PAD_VALUE = 114  # grey, as ultralytics pads during training


@dataclass(frozen=True)
class LetterboxInfo:
    """How an original image was placed into the model input: scale, then offset."""

    scale: float  # input pixels per original pixel
    pad_x: float  # left padding in input pixels
    pad_y: float  # top padding in input pixels
    original_hw: tuple[int, int]


def resize_bilinear(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an (H, W, C) uint8 image with bilinear interpolation (OpenCV when available)."""
    if cv2 is not None:
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    return _resize_bilinear_numpy(image, width, height)


def _resize_bilinear_numpy(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Half-pixel-centred bilinear resize in numpy; matches cv2.INTER_LINEAR within 1 grey level."""
    h, w = image.shape[:2]
    ys = np.clip((np.arange(height, dtype=np.float32) + 0.5) * (h / height) - 0.5, 0, h - 1)
    xs = np.clip((np.arange(width, dtype=np.float32) + 0.5) * (w / width) - 0.5, 0, w - 1)
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    wy = (ys - y0)[:, None, None]  # (height, 1, 1)
    wx = (xs - x0)[None, :, None]  # (1, width, 1)
    img = image.astype(np.float32).reshape(h, w, -1)
    top = img[y0][:, x0] * (1 - wx) + img[y0][:, x1] * wx
    bottom = img[y1][:, x0] * (1 - wx) + img[y1][:, x1] * wx
    out = top * (1 - wy) + bottom * wy
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape((height, width) + image.shape[2:])


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, LetterboxInfo]:
    """Fit an (H, W, 3) uint8 image into a (size, size, 3) canvas, keeping its aspect, centred."""
    h, w = image.shape[:2]
    scale = min(size / h, size / w)
    new_w, new_h = int(round(w * scale)), int(round(h * scale))
    pad_x, pad_y = (size - new_w) / 2, (size - new_h) / 2
    left, top = int(round(pad_x - 0.1)), int(round(pad_y - 0.1))
    canvas = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    resized = image if (new_w, new_h) == (w, h) else resize_bilinear(image, new_w, new_h)
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas, LetterboxInfo(scale, float(left), float(top), (h, w))


def boxes_to_original(boxes: np.ndarray, info: LetterboxInfo) -> np.ndarray:
    """Map (N, 4) xyxy boxes from model-input pixels back to original-image pixels, clipped."""
    out = boxes.astype(np.float32, copy=True)
    out[:, [0, 2]] = (out[:, [0, 2]] - info.pad_x) / info.scale
    out[:, [1, 3]] = (out[:, [1, 3]] - info.pad_y) / info.scale
    h, w = info.original_hw
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, w)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, h)
    return out


def to_nchw_float(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float32 in [0, 1], the ONNX Runtime input."""
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255.0)


def to_nhwc_uint8(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (1, H, W, 3) uint8, the RKNN input (mean 0, std 255 inside the model)."""
    return np.ascontiguousarray(rgb[None])
