"""Live page: run a model over a folder, video, camera or tiled scene, and watch boxes, speed and workers.

The session (studio.core.live) runs on a QThread; drawing the boxes happens there too, so
the UI thread only shows the newest finished picture. When the UI is busy, frames are
skipped for display (never for inference): only the latest result waits to be shown.
"""
from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.gui.board_wall import BoardWall
from studio.gui.common import PathField
from studio.gui.image_view import ImageView
from studio.gui.live_runner import LiveRunner
from studio.gui.live_widgets import SpeedChart, WorkerLanes


class LivePage(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.runner: LiveRunner | None = None
        self.remote_sensing = None  # the remote-sensing demo window, once opened
        self.frames_shown = 0
        self.names: list[str] = []

        self.model = PathField("an exported model: .onnx (ort) or .rknn (rknn-sim, rknnlite)",
                               name_filter="Models (*.onnx *.rknn)", key="live-model")
        self.source = PathField("image folder, video file, large image, or camera:0", key="live-source")
        self.backend = QComboBox()
        self.backend.addItems(["ort", "rknn-sim", "rknnlite"])
        self.workers = QSpinBox()
        self.workers.setRange(1, 6)
        self.workers.setValue(2)
        self.tile = QSpinBox()
        self.tile.setRange(0, 2048)
        self.tile.setSingleStep(64)
        self.tile.setSpecialValueText("off")
        self.record = QCheckBox("Record annotated video")
        self.record_path = PathField("annotated.avi", save=True, name_filter="Video (*.avi)", key="live-record")
        form = QFormLayout()
        for label, widget in (("Model", self.model), ("Source", self.source), ("Backend", self.backend),
                              ("Workers", self.workers), ("Tiles", self.tile), (self.record, self.record_path)):
            form.addRow(label, widget)

        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.pause_button = QPushButton("Pause")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.step_button = QPushButton("Step")
        self.step_button.clicked.connect(lambda: self.runner and self.runner.session and self.runner.session.step())
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        buttons = QHBoxLayout()
        for b, key in ((self.start_button, "Ctrl+R"), (self.pause_button, "Ctrl+P"), (self.step_button, "Ctrl+."),
                       (self.stop_button, "Ctrl+Shift+R")):
            b.setShortcut(key)
            b.setToolTip(f"{b.text()} ({key})")
            buttons.addWidget(b)
        self.demo_button = QPushButton("Remote-sensing demo")
        self.demo_button.setToolTip("A large scene tiled over several workers, and a simulated flight, in a new window")
        self.demo_button.clicked.connect(lambda: self.open_remote_sensing())
        self.conf = self._slider(25, "Confidence")
        self.iou = self._slider(45, "IoU")
        controls = QGroupBox("Run")
        c_layout = QVBoxLayout(controls)
        c_layout.addLayout(form)
        c_layout.addLayout(buttons)
        c_layout.addWidget(self.demo_button)
        c_layout.addLayout(self.conf[2])
        c_layout.addLayout(self.iou[2])

        self.view = ImageView("Choose a model and a source, then press Start.\n"
                              "Try: out/demo/chain/exports/float.onnx (after `make demo`) with "
                              "assets/samples/flight.avi, or assets/samples/scene_000.jpg with tiles 320.")
        self.numbers = QLabel("frames/s –   dropped 0")
        self.stage_labels = {k: QLabel("–") for k in ("read", "queue", "preprocess", "infer", "postprocess", "total")}
        grid = QGridLayout()
        for i, (k, label) in enumerate(self.stage_labels.items()):
            grid.addWidget(QLabel(k), 0, i)
            grid.addWidget(label, 1, i)
        self.chart = SpeedChart()
        self.lanes = WorkerLanes()
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["class", "score", "box (x1, y1, x2, y2 or cx, cy, w, h, angle)"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        side = QVBoxLayout()
        side.addWidget(controls)
        speed = QGroupBox("Speed (ms per frame)")
        s_layout = QVBoxLayout(speed)
        s_layout.addWidget(self.numbers)
        s_layout.addLayout(grid)
        s_layout.addWidget(self.chart)
        side.addWidget(speed)
        lanes = QGroupBox("Workers")
        QVBoxLayout(lanes).addWidget(self.lanes)
        side.addWidget(lanes)
        self.wall = BoardWall()  # several boards side by side (the Deploy page's Run with boards selected)
        self.wall.hide()
        right = QVBoxLayout()
        right.addWidget(self.view, 3)
        right.addWidget(self.wall, 3)
        detections = QGroupBox("Detections in this frame")
        QVBoxLayout(detections).addWidget(self.table)
        right.addWidget(detections, 1)
        layout = QHBoxLayout(self)
        layout.addLayout(side, 2)
        layout.addLayout(right, 3)
        self._set_running(False)

    def _slider(self, value: int, name: str):
        slider = QSlider(Qt.Orientation.Horizontal)
        slider.setRange(1, 95)
        slider.setValue(value)
        label = QLabel(f"{name} {value / 100:.2f}")
        slider.valueChanged.connect(lambda v: (label.setText(f"{name} {v / 100:.2f}"), self.thresholds_changed()))
        row = QHBoxLayout()
        label.setMinimumWidth(110)
        row.addWidget(label)
        row.addWidget(slider, 1)
        return slider, label, row

    def thresholds_changed(self) -> None:
        if self.runner and self.runner.session:
            self.runner.session.set_thresholds(self.conf[0].value() / 100, self.iou[0].value() / 100)

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        for b in (self.pause_button, self.step_button, self.stop_button):
            b.setEnabled(running)
        self.pause_button.setText("Pause")

    def start(self) -> None:
        from studio.core.live import LiveRequest

        if not self.model.text() or not self.source.text():
            self.window().show_error("choose a model and a source first")
            return
        if self.tile.value() and Path(self.source.text()).suffix.lower() in (".tif", ".tiff"):
            self.open_remote_sensing(Path(self.source.text()))  # a raster of any size: the lazy scene view
            return
        record = Path(self.record_path.text() or "annotated.avi") if self.record.isChecked() else None
        req = LiveRequest(model=Path(self.model.text()), source=self.source.text(), backend=self.backend.currentText(),
                          workers=self.workers.value(), tile=self.tile.value() or None,
                          conf=self.conf[0].value() / 100, iou=self.iou[0].value() / 100, record=record)
        self._launch(req)

    def start_board(self, req) -> None:
        """Run on a board (the Deploy page's Run): the same panel, fed by the board's stream."""
        self.model.setText(str(req.model))
        self.source.setText(req.source)
        self.workers.setValue(req.workers)
        self._launch(req)

    def start_boards(self, requests: list) -> None:
        """Several boards at once, side by side: a tile per board, each with its own stream."""
        self.stop()
        self.view.hide()
        self.wall.show()
        runners = []
        for req in requests:
            runner = LiveRunner(req, self)
            runner.failed.connect(lambda message, board=req.board: self.window().show_error(f"{board}: {message}"))
            runners.append(runner)
        self.wall.start(runners)
        self.stop_button.setEnabled(True)
        self.start_button.setEnabled(False)

    def _launch(self, req) -> None:
        self.wall.stop()
        self.wall.hide()
        self.view.show()
        self.frames_shown = 0
        self.chart.clear()
        self.lanes.set_workers(req.workers)
        self.runner = LiveRunner(req, self)
        self.runner.frame_ready.connect(self.show_latest)
        self.runner.failed.connect(self.window().show_error)
        self.runner.finished.connect(lambda: self._set_running(False))
        self._set_running(True)
        self.runner.start()

    def toggle_pause(self) -> None:
        session = self.runner.session if self.runner else None
        if session is None:
            return
        if session.paused:
            session.resume()
            self.pause_button.setText("Pause")
        else:
            session.pause()
            self.pause_button.setText("Resume")

    def stop(self) -> None:
        if self.runner:
            self.runner.stop()
            self.runner.wait(15000)
        if self.wall.tiles:
            self.wall.stop()
            self._set_running(False)

    def open_remote_sensing(self, scene: Path | None = None) -> None:
        """The remote-sensing demo in its own window, on this page's model when that is an .onnx; with a scene (a
        GeoTIFF of any size), that scene in the lazy scene view, tiled at this page's tile size."""
        from studio.gui.remote_sensing import RemoteSensingDemo

        if self.remote_sensing is not None:
            self.remote_sensing.close()
        model = Path(self.model.text()) if self.model.text().endswith(".onnx") else None
        self.remote_sensing = RemoteSensingDemo(model=model, **({"scene": scene, "tile": self.tile.value()}
                                                                 if scene else {}))
        self.remote_sensing.show()
        self.remote_sensing.start()

    def shutdown(self) -> None:
        """Called when the window closes."""
        self.stop()
        if self.remote_sensing is not None:
            self.remote_sensing.close()

    def show_latest(self) -> None:
        latest = self.runner.take() if self.runner else None
        if latest is None:
            return
        rgb, dets, stats = latest
        self.frames_shown += 1
        self.names = self.runner.session.meta.names
        if rgb is not None:  # None: a raster read by windows (the remote-sensing window views those)
            self.view.show_rgb(rgb)
        unit = "tiles" if getattr(self.runner.request, "tile", None) else "frames"
        latency = stats.latency_ms
        self.numbers.setText(f"{unit}/s {stats.fps:.1f}   {unit} {stats.frames}   dropped {stats.dropped}" + (
            f"   latency p50 {latency['p50']:.0f} / p95 {latency['p95']:.0f} ms" if latency else ""))
        for key, label in self.stage_labels.items():
            label.setText(f"{stats.stage_ms.get(key, 0.0):.1f}")
        self.chart.add(stats.fps, stats.stage_ms.get("infer", 0.0))
        self.lanes.set_recent(stats.recent_workers, stats.worker_busy)
        self.table.setRowCount(len(dets))
        for r, (score, cls) in enumerate(zip(dets.scores.tolist(), dets.classes.tolist())):
            name = self.names[cls] if cls < len(self.names) else str(cls)
            for c, value in enumerate((name, f"{score:.2f}", box_text(dets, r))):
                self.table.setItem(r, c, QTableWidgetItem(value))


def box_text(dets, row: int) -> str:
    """A detection's box for the table: x1, y1, x2, y2; an oriented one as cx, cy, w, h and its angle in degrees."""
    if dets.rboxes is None:
        return ", ".join(f"{v:.0f}" for v in dets.boxes[row])
    cx, cy, w, h, angle = dets.rboxes[row].tolist()
    return f"{cx:.0f}, {cy:.0f}, {w:.0f}, {h:.0f}, {math.degrees(angle):.0f}\N{DEGREE SIGN}"
