"""Widgets of the live panel: per-worker lanes and the rolling speed chart."""
from __future__ import annotations

from collections import deque

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from deploy.runtime.draw import class_color

HISTORY = 48  # frames shown in the lanes


class WorkerLanes(QWidget):
    """One lane per worker (NPU core on a board): which recent frames it handled, and how busy it is."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.frames: deque = deque(maxlen=HISTORY)  # worker of each recent frame, oldest first
        self.busy: dict[int, float] = {}
        self.workers = 1
        self.setMinimumHeight(70)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_workers(self, count: int) -> None:
        self.workers = count
        self.frames.clear()
        self.busy = {}
        self.setFixedHeight(22 * count + 8)
        self.update()

    def set_recent(self, recent_workers: list[int], busy: dict[int, float]) -> None:
        self.frames = deque(recent_workers, maxlen=HISTORY)
        self.busy = busy
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        painter = QPainter(self)
        label_w, busy_w = 78, 84
        lane_w = max(10, self.width() - label_w - busy_w - 8)
        cell = lane_w / HISTORY
        for w in range(self.workers):
            y = 4 + 22 * w
            painter.setPen(self.palette().text().color())
            painter.drawText(QRectF(0, y, label_w, 18), Qt.AlignmentFlag.AlignVCenter, f"worker {w}")
            painter.fillRect(QRectF(label_w, y, lane_w, 18), self.palette().alternateBase())
            r, g, b = class_color(w)
            for k, who in enumerate(self.frames):
                if who == w:
                    painter.fillRect(QRectF(label_w + k * cell, y + 2, max(1.0, cell - 1), 14), QColor(r, g, b))
            painter.drawText(QRectF(label_w + lane_w + 6, y, busy_w, 18), Qt.AlignmentFlag.AlignVCenter,
                             f"{self.busy.get(w, 0.0):.0%} busy")
        painter.end()


class SpeedChart(QWidget):
    """Frames per second and inference ms over the last few hundred frames (pyqtgraph)."""

    def __init__(self, parent=None, points: int = 300):
        super().__init__(parent)
        import pyqtgraph as pg
        from PySide6.QtWidgets import QVBoxLayout

        self.plot = pg.PlotWidget(background=None)
        self.plot.setMinimumHeight(150)
        self.plot.addLegend(offset=(6, 4))
        self.plot.showGrid(y=True, alpha=0.25)
        self.plot.setLabel("bottom", "frames shown")
        self.fps_curve = self.plot.plot(name="per second", pen=pg.mkPen("#3a7ca5", width=2))
        self.infer_curve = self.plot.plot(name="infer ms", pen=pg.mkPen("#d9a441", width=2))
        self.fps, self.infer = deque(maxlen=points), deque(maxlen=points)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

    def add(self, fps: float, infer_ms: float) -> None:
        self.fps.append(fps)
        self.infer.append(infer_ms)
        self.fps_curve.setData(list(self.fps))
        self.infer_curve.setData(list(self.infer))

    def clear(self) -> None:
        self.fps.clear()
        self.infer.clear()
        self.fps_curve.setData([])
        self.infer_curve.setData([])
