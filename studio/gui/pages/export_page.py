"""Export page: the `studio export` form, run as a job, and the verification report when it is done."""
from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.gui.common import PathField


def _combo(items: tuple[str, ...], current: str) -> QComboBox:
    box = QComboBox()
    box.addItems(list(items))
    box.setCurrentText(current)
    return box


class ExportPage(QWidget):
    """Every option of `studio export`; Export runs it on the jobs dock."""

    def __init__(self, jobs, parent=None):
        super().__init__(parent)
        from deploy.convert.rknn_convert import ALGORITHMS, PLATFORMS, QUANTS

        self.jobs = jobs
        self.model = PathField("a .pt or .yaml (or an rknn-split .onnx for RKNN)",
                               name_filter="Detectors (*.pt *.yaml *.onnx)", key="models")
        self.format = _combo(("rknn", "onnx"), "rknn")
        self.layout_box = _combo(("rknn-split", "standard"), "rknn-split")
        self.scores = _combo(("logits", "sigmoid"), "logits")
        self.platform = _combo(PLATFORMS, "rk3588")
        self.quant = _combo(QUANTS, "int8")
        self.algorithm = _combo(ALGORITHMS, "normal")
        self.imgsz = QSpinBox()
        self.imgsz.setRange(64, 2048)
        self.imgsz.setSingleStep(32)
        self.imgsz.setValue(320)
        self.calib = PathField("folder of calibration images (int8 and the report)", folder=True, key="calib")
        self.calib_count = QSpinBox()
        self.calib_count.setRange(0, 10000)
        self.calib_count.setValue(100)
        self.report = QCheckBox("Compare ONNX Runtime and the RKNN simulator")
        self.report.setChecked(True)
        self.out = PathField("where to write (default: exports/<model>.<format>)", save=True, key="exports")
        self.force = QCheckBox("Replace existing files")
        form = QFormLayout()
        for label, widget in (("Model", self.model), ("Format", self.format), ("Layout", self.layout_box),
                              ("Class scores", self.scores), ("Platform", self.platform), ("Quantization", self.quant),
                              ("Algorithm", self.algorithm), ("Input size", self.imgsz), ("Calibration", self.calib),
                              ("Calibration images", self.calib_count), ("Report", self.report),
                              ("Output", self.out), ("", self.force)):
            form.addRow(label, widget)
        self.run_button = QPushButton("Export")
        self.run_button.setDefault(True)
        self.run_button.setShortcut("Ctrl+Return")
        self.run_button.setToolTip("Export (Ctrl+Enter)")
        self.run_button.clicked.connect(self.run)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.run_button)
        form_box = QGroupBox("Options (the same as studio export)")
        inner = QVBoxLayout(form_box)
        inner.addLayout(form)
        inner.addLayout(buttons)

        self.status = QLabel("Fill in a model and press Export. RKNN int8 needs a calibration folder.")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["output", "min cosine", "mean cosine"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.summary = QLabel("No report yet: export to RKNN with the report option.")
        self.summary.setWordWrap(True)
        report_box = QGroupBox("Verification report")
        report_layout = QVBoxLayout(report_box)
        report_layout.addWidget(self.summary)
        report_layout.addWidget(self.table, 1)
        layout = QHBoxLayout(self)
        left = QVBoxLayout()
        left.addWidget(form_box)
        left.addWidget(self.status)
        left.addStretch(1)
        layout.addLayout(left, 1)
        layout.addWidget(report_box, 1)

    def request(self):
        from deploy.convert.rknn_convert import RknnOptions
        from studio.core.export import ExportRequest

        return ExportRequest(
            model=self.model.text(), format=self.format.currentText(), layout=self.layout_box.currentText(),
            class_scores=self.scores.currentText(), imgsz=self.imgsz.value(),
            out=Path(self.out.text()) if self.out.text() else None,
            rknn=RknnOptions(self.platform.currentText(), self.quant.currentText(), self.algorithm.currentText()),
            calib=Path(self.calib.text()) if self.calib.text() else None, calib_count=self.calib_count.value(),
            report=self.report.isChecked() and self.format.currentText() == "rknn", force=self.force.isChecked())

    def run(self) -> None:
        from studio.core.export import export_model

        if not self.model.text():
            self.window().show_error("choose a model to export first")
            return
        req = self.request()
        self.run_button.setEnabled(False)
        self.status.setText("Exporting… (see the jobs dock)")
        self.jobs.start(f"Export {Path(req.model).name}", lambda job: export_model(req, job),
                        on_success=self.show_result, on_failure=self.failed)

    def failed(self, message: str) -> None:
        self.run_button.setEnabled(True)
        self.status.setText(f"Export failed: {message}")
        self.window().show_error(message)

    def show_result(self, result) -> None:
        self.run_button.setEnabled(True)
        lines = [f"{k}: {v}" for k, v in result.to_dict().items()
                 if v is not None and k in ("onnx", "rknn", "metadata")]
        self.status.setText("Done in {:.1f} s.\n{}".format(result.seconds, "\n".join(lines)))
        if not result.report:
            self.summary.setText("No report for this export (ONNX, or the report option was off).")
            self.table.setRowCount(0)
            return
        report = json.loads(Path(result.report).read_text())
        det = report.get("detections", {})
        self.summary.setText(
            f"Minimum cosine {report['min_cosine']:.4f} over {len(report['outputs'])} outputs and "
            f"{len(report['images'])} images; detection agreement {det.get('agreement', 0):.3f} "
            f"({det.get('matched', 0)} of {det.get('reference', 0)} float detections matched).")
        self.table.setRowCount(len(report["outputs"]))
        for r, out in enumerate(report["outputs"]):
            for c, value in enumerate((out["name"], f"{out['min_cosine']:.4f}", f"{out['mean_cosine']:.4f}")):
                self.table.setItem(r, c, QTableWidgetItem(value))
