"""What every wizard step offers the page: a title, entry, whether Next is allowed, and its CLI twin."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFormLayout, QLabel, QLayout, QVBoxLayout, QWidget

from studio.core.wizard import WizardState


class Step(QWidget):
    changed = Signal()  # the step's choices changed: the page updates the CLI line and Next
    title = ""

    def __init__(self, state: WizardState, parent=None):
        super().__init__(parent)
        self.state = state

    def enter(self) -> None:
        """Called each time the step is shown: pick up what earlier steps decided."""

    def blocked(self) -> str | None:
        """Why the wizard cannot move past this step yet (one line), or None."""
        return None

    def cli(self) -> str:
        return ""

    def busy(self) -> bool:
        """Work of this step is running: the steps before it must not change under it."""
        return False

    @staticmethod
    def intro(text: str) -> QLabel:
        label = QLabel(text)
        label.setWordWrap(True)
        label.setStyleSheet("font-size: 13px; margin-bottom: 6px")
        return label

    def lay_out(self, intro: str, *parts) -> None:
        """The usual step: what it is for, then its layouts and widgets top to bottom, then space."""
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro(intro))
        for part in parts:
            (layout.addLayout if isinstance(part, QLayout) else layout.addWidget)(part)
        layout.addStretch(1)


def form(*rows) -> QFormLayout:
    """A form of (label, widget or layout) rows."""
    layout = QFormLayout()
    for label, field in rows:
        layout.addRow(label, field)
    return layout
