"""Play a video file at its own frame rate: a file source is read as fast as it decodes, a camera is not.

A simulated flight should look live, so its frames enter the pipeline no faster than the
video's fps; when inference falls behind, frames are not rushed to catch up.
"""
from __future__ import annotations

import time
from collections.abc import Iterator

from deploy.runtime.pipeline import Frame
from deploy.runtime.sources import Source


def video_fps(path: str) -> float:
    """The frame rate a video file declares (0.0 when it declares none or cannot be opened)."""
    import cv2

    capture = cv2.VideoCapture(path)
    try:
        return float(capture.get(cv2.CAP_PROP_FPS) or 0.0) if capture.isOpened() else 0.0
    finally:
        capture.release()


class PacedSource(Source):
    """Yields the frames of `source` at most `fps` per second (unpaced when fps is 0)."""

    def __init__(self, source: Source, fps: float):
        self.source, self.fps = source, fps
        self.live, self.name = source.live, source.name

    def __iter__(self) -> Iterator[Frame]:
        period = 1.0 / self.fps if self.fps > 0 else 0.0
        due = time.perf_counter()
        for frame in self.source:
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            else:  # behind: the next frame is due one period from now, not at once
                due = time.perf_counter()
            due += period
            yield frame
