"""A large image at full resolution with pan and zoom, and its tile grid drawn on top (thin at any zoom)."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsItemGroup, QGraphicsRectItem, QGraphicsScene, QGraphicsView

from studio.gui.image_view import to_pixmap

ZOOM_STEP = 1.25
ZOOM_RANGE = (0.05, 16.0)  # view pixels per scene pixel


class SceneView(QGraphicsView):
    """The scene at full resolution: the wheel zooms around the cursor, dragging pans; the tile grid on top."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.image = self.scene().addPixmap(QPixmap())
        self.image.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.grid = QGraphicsItemGroup()
        self.scene().addItem(self.grid)
        self.fitting = True  # keep the whole scene in view until the user zooms
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setBackgroundBrush(QColor(40, 40, 40))
        self.setMinimumSize(360, 300)

    def show_rgb(self, rgb: np.ndarray) -> None:
        self.image.setPixmap(to_pixmap(rgb))
        self.scene().setSceneRect(self.image.boundingRect())
        if self.fitting:
            self.fit()

    def set_grid(self, grid: list[tuple[int, int, int]], scene_hw: tuple[int, int]) -> None:
        """Thin lines around each (x, y, size) tile, clipped to the scene."""
        for item in self.grid.childItems():
            self.grid.removeFromGroup(item)
            self.scene().removeItem(item)
        pen = QPen(QColor(255, 255, 255, 150), 0)  # width 0: one screen pixel at any zoom
        h, w = scene_hw
        for x, y, size in grid:
            rect = QGraphicsRectItem(QRectF(x, y, min(size, w - x), min(size, h - y)))
            rect.setPen(pen)
            self.grid.addToGroup(rect)

    def fit(self) -> None:
        self.fitting = True
        self.fitInView(self.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def zoom(self, factor: float) -> None:
        """Scale by `factor` around the cursor (or the centre), within ZOOM_RANGE."""
        lo, hi = ZOOM_RANGE
        factor = min(max(factor, lo / self.transform().m11()), hi / self.transform().m11())
        self.fitting = False
        self.scale(factor, factor)

    def wheelEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        steps = event.angleDelta().y() / 120  # one notch of a mouse wheel is 120
        if steps:
            self.zoom(ZOOM_STEP ** steps)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        if self.fitting:
            self.fit()
