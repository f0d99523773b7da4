"""Latency against throughput of a board bench: the table per worker count and its chart, side by side."""
from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtWidgets import QHBoxLayout, QTableWidget, QTableWidgetItem, QWidget

from studio.core.throughput_report import HEADERS, draw, rows


class ThroughputView(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.figure = Figure(figsize=(4, 3), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        layout = QHBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.canvas, 1)

    def show_bench(self, board: str, result: dict) -> None:
        table = rows(result["runs"])
        self.table.setRowCount(len(table))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(str(value)))
        self.table.resizeColumnsToContents()
        self.figure.clear()
        draw(self.figure.add_subplot(), {board: result["runs"]})
        self.canvas.draw_idle()
