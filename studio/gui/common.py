"""Small shared pieces of the views: error dialogs, file pickers bound to a line edit, settings."""
from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLineEdit, QMessageBox, QPushButton, QWidget

ORG, APP = "EdgeDeployStudio", "studio"


def settings() -> QSettings:
    return QSettings(ORG, APP)


def show_error(parent: QWidget, message: str) -> QMessageBox:
    """The same one-line message the CLI prints, in a window-modal dialog (never blocks a test)."""
    box = QMessageBox(QMessageBox.Icon.Critical, "Edge Deploy Studio", message, QMessageBox.StandardButton.Ok, parent)
    box.setObjectName("error-dialog")
    box.open()
    return box


class PathField(QWidget):
    """A line edit with a Browse button: a file (with a filter) or a folder."""

    def __init__(self, placeholder: str, folder: bool = False, name_filter: str = "", save: bool = False,
                 key: str = "", parent=None):
        super().__init__(parent)
        self.folder, self.filter, self.save, self.key = folder, name_filter, save, key
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self.browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)

    def text(self) -> str:
        return self.edit.text().strip()

    def setText(self, value: str) -> None:  # noqa: N802 (Qt naming)
        self.edit.setText(value)

    def browse(self) -> None:
        start = settings().value(f"folders/{self.key}", "") if self.key else ""
        if self.folder:
            chosen = QFileDialog.getExistingDirectory(self, "Choose a folder", start)
        elif self.save:
            chosen, _ = QFileDialog.getSaveFileName(self, "Save as", start, self.filter)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, "Open", start, self.filter)
        if chosen:
            self.edit.setText(chosen)
            if self.key:
                settings().setValue(f"folders/{self.key}", chosen)
