"""The thread a live session runs on: it draws each result there and hands the UI only the newest picture.

Shared by the Live page and the remote-sensing demo window (which the Live page opens), so
neither imports the other's module.
"""
from __future__ import annotations

import threading

import numpy as np
from PySide6.QtCore import QThread, Signal

from deploy.errors import UserError
from studio.core.jobs import Cancelled


def draw_tile_grid(bgr: np.ndarray, grid) -> None:
    import cv2

    for x, y, size in grid:
        cv2.rectangle(bgr, (x, y), (x + size - 1, y + size - 1), (200, 200, 200), 1, cv2.LINE_4)


class LiveRunner(QThread):
    """Runs a LiveSession; hands the newest drawn frame to the UI through `frame_ready`."""

    frame_ready = Signal()
    failed = Signal(str)

    def __init__(self, request, parent=None):
        super().__init__(parent)
        self.request = request
        self.session = None
        self._lock = threading.Lock()
        self._latest = None
        self._waiting = False  # a frame_ready the UI has not collected yet
        self._stopping = threading.Event()  # stop() may come before the thread has made its session

    def open_session(self):
        """The session to run, made on the thread (a subclass may wrap its source)."""
        from studio.core.board_live import BoardLiveRequest, BoardLiveSession
        from studio.core.live import LiveSession

        board = isinstance(self.request, BoardLiveRequest)
        return BoardLiveSession(self.request) if board else LiveSession(self.request)

    def run(self) -> None:
        try:
            self.session = self.open_session()
            if self._stopping.is_set():
                return
            self.session.run(self._on_frame)
        except UserError as exc:
            self.failed.emit(str(exc))
        except Cancelled:  # stopped while a board run was still starting
            pass
        except Exception as exc:  # noqa: BLE001 (shown as one line; the traceback stays in the log)
            import traceback

            traceback.print_exc()
            self.failed.emit(f"live run stopped: {type(exc).__name__}: {exc}")

    def _on_frame(self, dets, stats) -> None:
        from deploy.runtime.draw import draw_detections

        rgb = None  # a raster read by windows is not drawn whole: a lazy scene view outlines its detections
        if isinstance(dets.image, np.ndarray):
            bgr = draw_detections(dets.image, dets, self.session.meta.names)
            if self.session.tile_grid:
                draw_tile_grid(bgr, self.session.tile_grid)
            rgb = np.ascontiguousarray(bgr[..., ::-1])
        with self._lock:
            self._latest = (rgb, dets, stats)
            notify = not self._waiting
            self._waiting = True
        if notify:
            self.frame_ready.emit()

    def take(self):
        """The newest (rgb, detections, stats), collected by the UI thread."""
        with self._lock:
            latest, self._latest, self._waiting = self._latest, None, False
        return latest

    def stop(self) -> None:
        self._stopping.set()
        if self.session is not None:
            self.session.stop()
