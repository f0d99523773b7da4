"""Live page: the results panel (source, backend, workers, frames with boxes, speed)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget


class LivePage(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        label = QLabel("The live results panel lands in the next slice of the GUI issue.\n"
                       "Meanwhile: studio predict MODEL SOURCE --workers 2 --save out/pred")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        QVBoxLayout(self).addWidget(label)
