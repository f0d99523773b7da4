"""A raster bigger than memory in the scene view: only the visible window is read, at the level of detail the
zoom needs, and detections are drawn over it as outlines (tile by tile as they arrive, then the merged scene)."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QTimer
from PySide6.QtGui import QColor, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItemGroup, QGraphicsPathItem

from deploy.runtime.detections import Detections
from deploy.runtime.draw import class_color
from studio.core.scene_labels import object_corners
from studio.gui.image_view import to_pixmap
from studio.gui.scene_view import SceneView

MARGIN = 0.25  # read this much of the visible size beyond each edge, so a small pan needs no read


class LazySceneView(SceneView):
    """SceneView over a ScenePyramid: panning and zooming read the visible window (debounced), never the scene."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.pyramid = None
        self.shown: tuple | None = None  # (x0, y0, x1, y1, factor) of the window on screen
        self.outlines = QGraphicsItemGroup()
        self.scene().addItem(self.outlines)
        self._refresh = QTimer(self)
        self._refresh.setSingleShot(True)
        self._refresh.setInterval(30)
        self._refresh.timeout.connect(self.refresh)

    def set_pyramid(self, pyramid) -> None:
        """Show a ScenePyramid (None: nothing); the whole scene fits the view until the user zooms."""
        self.pyramid, self.shown = pyramid, None
        self.clear_detections()
        if pyramid is None:
            self.image.setPixmap(to_pixmap(np.zeros((1, 1, 3), np.uint8)))
            return
        h, w = pyramid.shape[:2]
        self.scene().setSceneRect(QRectF(0, 0, w, h))
        self.fit()
        self.refresh()

    def refresh(self) -> None:
        """Read the visible window (with a margin) at the zoom's level, unless what is shown already covers it."""
        if self.pyramid is None:
            return
        visible = self.mapToScene(self.viewport().rect()).boundingRect()
        scale = self.transform().m11()
        factor = self.pyramid.factor_for(scale)
        if self.shown and self.shown[4] == factor and QRectF(*self._rect(self.shown)).contains(visible):
            return
        mx, my = visible.width() * MARGIN, visible.height() * MARGIN
        x0, y0 = int(visible.left() - mx), int(visible.top() - my)
        x1, y1 = int(visible.right() + mx) + 1, int(visible.bottom() + my) + 1
        rgb, factor = self.pyramid.view(x0, y0, x1, y1, scale)
        h, w = self.pyramid.shape[:2]
        ox, oy = max(0, x0) // factor * factor, max(0, y0) // factor * factor
        self.image.setPixmap(to_pixmap(rgb))
        self.image.setScale(factor)
        self.image.setPos(ox, oy)
        self.shown = (ox, oy, min(w, ox + rgb.shape[1] * factor), min(h, oy + rgb.shape[0] * factor), factor)

    @staticmethod
    def _rect(shown: tuple) -> tuple:
        x0, y0, x1, y1, _ = shown
        return x0, y0, x1 - x0, y1 - y0

    def show_rgb(self, rgb: np.ndarray) -> None:
        """A decoded image instead of a raster (the view then behaves as the plain scene view)."""
        self.pyramid, self.shown = None, None
        self.image.setScale(1)
        self.image.setPos(0, 0)
        super().show_rgb(rgb)

    def add_detections(self, dets: Detections, offset: tuple[int, int] = (0, 0)) -> None:
        """Outline these detections (in pixels of a tile at `offset`, or of the scene) over the picture."""
        if not len(dets):
            return
        quads = object_corners(dets) + np.asarray(offset, np.float64)
        for cls in np.unique(dets.classes).tolist():
            path = QPainterPath()
            for quad in quads[dets.classes == cls]:
                path.addPolygon(QPolygonF([QPointF(float(x), float(y)) for x, y in quad]))
                path.closeSubpath()
            item = QGraphicsPathItem(path)
            item.setPen(QPen(QColor(*class_color(int(cls))), 0))  # one screen pixel at any zoom
            self.outlines.addToGroup(item)

    def clear_detections(self) -> None:
        for item in self.outlines.childItems():
            self.outlines.removeFromGroup(item)
            self.scene().removeItem(item)

    def zoom(self, factor: float) -> None:
        super().zoom(factor)
        self._refresh.start()

    def fit(self) -> None:
        super().fit()
        self._refresh.start()

    def scrollContentsBy(self, dx: int, dy: int) -> None:  # noqa: N802 (Qt naming)
        super().scrollContentsBy(dx, dy)
        self._refresh.start()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        self._refresh.start()
