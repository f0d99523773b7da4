"""Play a video file at its own frame rate: a file source is read as fast as it decodes, a camera is not.

A simulated flight should look live, so its frames enter the pipeline no faster than the
video's fps; when inference falls behind, frames are not rushed to catch up.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from deploy.runtime.frame import Frame
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
    """Yields the frames of `source` at most `fps` per second (unpaced when fps is 0).

    `clock` (seconds, monotonic) and `sleep` are time.perf_counter and time.sleep; a test may pass
    a fake clock and a sleep that advances it, and check the waits asked for instead of timing them.
    """

    def __init__(self, source: Source, fps: float, *, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep):
        self.source, self.fps = source, fps
        self.live, self.name = source.live, source.name
        self.clock, self.sleep = clock, sleep

    def __iter__(self) -> Iterator[Frame]:
        period = 1.0 / self.fps if self.fps > 0 else 0.0
        due = self.clock()
        for frame in self.source:
            wait = due - self.clock()
            if wait > 0:
                self.sleep(wait)
            else:  # behind: the next frame is due one period from now, not at once
                due = self.clock()
            due += period
            yield frame
