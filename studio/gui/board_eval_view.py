"""Accuracy on the board beside the host's float and simulator columns: the summary, per class, and what else the
report says (agreement, the raw-output comparison and any likely cause, the images sent)."""
from __future__ import annotations

from PySide6.QtWidgets import QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from studio.core.board_eval_report import HEADERS, class_rows, lines, summary_rows


def _filled(table: QTableWidget, headers: list[str], rows: list[tuple]) -> None:
    table.setColumnCount(len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.setItem(r, c, QTableWidgetItem(str(value)))
    table.resizeColumnsToContents()


class BoardEvalView(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.summary, self.classes = QTableWidget(), QTableWidget()
        for table in (self.summary, self.classes):
            table.verticalHeader().setVisible(False)
            table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.findings = QLabel("Choose a data.yaml and press Evaluate on the board.")
        self.findings.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary, 1)
        layout.addWidget(self.classes, 1)
        layout.addWidget(self.findings)

    def show_report(self, report: dict) -> None:
        _filled(self.summary, HEADERS, summary_rows(report))
        _filled(self.classes, *class_rows(report))
        self.findings.setText("\n".join(f"• {line}" for line in lines(report)))
