"""Detections to and from protocol messages (the frame itself travels as JPEG bytes after the header)."""

import json
import time
from typing import Optional

import numpy as np

from deploy.runtime.detections import Detections


def result_header(dets: Detections) -> dict:
    """A result message's header: boxes (and an oriented model's turned boxes, cx, cy, w, h, angle), scores and
    classes as lists, timings, where the frame came from.

    Boxes and scores keep their float32 values exactly: an evaluation on the board ranks thousands of
    low scores, and rounding them makes ties that change its mAP."""
    header = {"type": "result", "frame": dets.frame, "source": dets.source, "worker": dets.worker,
              "boxes": dets.boxes.astype(np.float32).tolist(), "scores": dets.scores.astype(np.float32).tolist(),
              "classes": dets.classes.tolist(), "timings_ms": {k: round(v, 3) for k, v in dets.timings.items()},
              "tile": dets.tile}
    if dets.rboxes is not None:
        header["rboxes"] = dets.rboxes.astype(np.float32).tolist()
    if dets.georef is not None:
        header["georef"] = dets.georef
    return header


def result_line(dets: Detections, names: list) -> str:
    """One result as a JSON line for a results file: when, which frame, and each box with its class name."""
    header = result_header(dets)
    del header["type"]
    header["names"] = [names[c] if 0 <= c < len(names) else str(c) for c in header["classes"]]
    return json.dumps({"time": round(time.time(), 3), **header}) + "\n"


def detections_from(header: dict, image: Optional[np.ndarray] = None) -> Detections:
    """The Detections a result message describes, with its decoded frame when one came along."""
    boxes = np.asarray(header["boxes"], np.float32).reshape(-1, 4)
    rboxes = np.asarray(header["rboxes"], np.float32).reshape(-1, 5) if "rboxes" in header else None
    return Detections(boxes, np.asarray(header["scores"], np.float32), np.asarray(header["classes"], np.int32),
                      dict(header.get("timings_ms", {})), int(header.get("frame", 0)), header.get("source", ""),
                      header.get("tile"), image, int(header.get("worker", -1)), rboxes=rboxes,
                      georef=header.get("georef"))


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """An RGB frame as JPEG bytes (OpenCV writes BGR)."""
    import cv2

    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("OpenCV could not encode the frame as JPEG")
    return data.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes back to an RGB frame."""
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("a frame that is not a readable JPEG")
    return image[..., ::-1].copy()
