"""Models page: open a .pt, .yaml, .onnx or .rknn and inspect it (layers, size, tensors, metadata)."""
from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.gui.common import settings

MODEL_FILTER = "Detectors (*.pt *.yaml *.onnx *.rknn);;All files (*)"


def inspect_job(path: str):
    """What the page shows, computed off the UI thread: info, layer rows, sidecar/provenance text."""
    from studio.core.models import inspect_model, layer_table, load_detector

    def work(job):
        job.stage("inspect", None, Path(path).name)
        info = inspect_model(path)
        layers = layer_table(load_detector(path)[0]) if Path(path).suffix in (".pt", ".yaml", ".yml") else []
        extra = ""
        for side in (Path(path + ".json"), Path(path).with_suffix(".json")):
            if side.is_file():
                extra = json.dumps(json.loads(side.read_text()), indent=2)
                break
        return info, layers, extra

    return work


class ModelsPage(QWidget):
    """Pick a model; the inspector fills in when the inspection job finishes."""

    model_chosen = Signal(str)  # other pages prefill their model field from it

    def __init__(self, jobs, parent=None):
        super().__init__(parent)
        self.jobs = jobs
        self.recent = QComboBox()
        self.recent.setEditable(True)
        self.recent.setMinimumWidth(420)
        self.recent.lineEdit().setPlaceholderText("Choose a model: a .pt checkpoint, a .yaml, an .onnx or an .rknn")
        self.recent.addItems(settings().value("models/recent", [], type=list))
        self.recent.setCurrentText("")
        open_button = QPushButton("Open…")
        open_button.clicked.connect(self.choose)
        inspect_button = QPushButton("Inspect")
        inspect_button.setDefault(True)
        inspect_button.clicked.connect(lambda: self.inspect(self.recent.currentText()))
        top = QHBoxLayout()
        top.addWidget(QLabel("Model"))
        top.addWidget(self.recent, 1)
        top.addWidget(open_button)
        top.addWidget(inspect_button)

        self.summary = QFormLayout()
        self.fields = {}
        for key in ("kind", "task", "classes", "parameters", "gflops", "inputs", "outputs", "layout"):
            label = QLabel("–")
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
            self.fields[key] = label
            self.summary.addRow(key.capitalize() if key != "gflops" else "GFLOPs", label)
        summary_box = QGroupBox("Summary")
        summary_box.setLayout(self.summary)
        self.layers = QTableWidget(0, 4)
        self.layers.setHorizontalHeaderLabels(["#", "from", "module", "parameters"])
        self.layers.horizontalHeader().setStretchLastSection(True)
        self.layers.verticalHeader().setVisible(False)
        layers_box = QGroupBox("Layers")
        QVBoxLayout(layers_box).addWidget(self.layers)
        self.metadata = QPlainTextEdit()
        self.metadata.setReadOnly(True)
        self.metadata.setPlaceholderText("Metadata and provenance of exported and bundled models appear here.")
        meta_box = QGroupBox("Metadata and provenance")
        QVBoxLayout(meta_box).addWidget(self.metadata)

        self.hint = QLabel("Open a model to inspect it. Bundled demo models live in assets/models/.")
        self.hint.setObjectName("empty-state")
        body = QHBoxLayout()
        left = QVBoxLayout()
        left.addWidget(summary_box)
        left.addWidget(meta_box, 1)
        body.addLayout(left, 1)
        body.addWidget(layers_box, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.hint)
        layout.addLayout(body, 1)

    def choose(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self, "Open a model", settings().value("folders/models", ""),
                                              MODEL_FILTER)
        if path:
            settings().setValue("folders/models", str(Path(path).parent))
            self.inspect(path)

    def inspect(self, path: str) -> None:
        path = path.strip()
        if not path:
            self.hint.setText("Type or choose a model path first.")
            return
        self.recent.setCurrentText(path)
        self.jobs.start(f"Inspect {Path(path).name}", inspect_job(path), on_success=lambda r: self.show_info(path, r),
                        on_failure=self.jobs_error)

    def jobs_error(self, message: str) -> None:
        self.window().show_error(message)

    def show_info(self, path: str, result) -> None:
        info, layers, extra = result
        self.hint.setText(f"{info.path}")
        values = {"kind": info.kind, "task": info.task, "classes": f"{len(info.names)}: {', '.join(info.names)}",
                  "parameters": f"{info.parameters:,}", "gflops": f"{info.gflops} at {info.imgsz}px",
                  "inputs": str(info.inputs), "outputs": ", ".join(f"{k} {v}" for k, v in info.outputs.items()),
                  "layout": info.layout or "ultralytics (torch)"}
        for key, value in values.items():
            self.fields[key].setText(value)
        self.layers.setRowCount(len(layers))
        for r, row in enumerate(layers):
            for c, key in enumerate(("index", "from", "type", "parameters")):
                self.layers.setItem(r, c, QTableWidgetItem(f"{row[key]:,}" if key == "parameters" else str(row[key])))
        self.layers.resizeColumnsToContents()
        self.metadata.setPlainText(extra)
        recent = [path] + [p for p in settings().value("models/recent", [], type=list) if p != path]
        settings().setValue("models/recent", recent[:10])
        self.model_chosen.emit(path)
