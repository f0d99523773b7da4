"""The live remote-sensing demo: a large scene tiled over several workers, beside a simulated flight.

Left, the whole 2048 px scene goes through the runtime pipeline in overlapping tiles; the
detections merged across tiles are drawn on it in a pan-and-zoom view with the tile grid.
Right, a video flown over that scene plays at its own frame rate through a second session.
Both are LiveSessions on LiveRunner threads (the Live page's), so what is shown is what the
board runtime does. Standalone (`studio demo --remote-sensing`) or opened from the Live page.

"Open scene…" takes a GeoTIFF of any size: it is viewed through overviews (its own, or ones built
once into the studio's cache folder) and read by windows, and each tile's detections are outlined
as the tile finishes, then replaced by the merged scene's.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

from PySide6.QtCore import QEventLoop, QSignalBlocker, Qt, QThread, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
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

from deploy.errors import UserError
from studio.core.demo import DENSE_SCENE, obb_student_onnx
from studio.core.demo import SAMPLE_FLIGHT as FLIGHT
from studio.core.demo import SAMPLE_SCENE as SCENE
from studio.core.demo import SCENE_OVERLAP as OVERLAP
from studio.gui.common import PathField, show_error
from studio.gui.image_view import ImageView
from studio.gui.lazy_scene_view import LazySceneView
from studio.gui.live_runner import LiveRunner
from studio.gui.scene_view import ZOOM_STEP

ORIENTED, UPRIGHT = "Oriented boxes, dense scene", "Upright boxes, scene"
OPENED = "Opened scene"  # the kind combo's item for a scene the user opened (added once there is one)


def default_model(out: Path) -> Path | None:
    """The demo's float model: the chain's export, else the plain demo's student (None before `studio demo`)."""
    for candidate in (out / "chain" / "exports" / "float.onnx", out / "exports" / "student.onnx"):
        if candidate.is_file():
            return candidate
    return None


def labelled_counts(labels: Path) -> Counter:
    """Objects per class id in a YOLO label file (empty when there is none)."""
    if not labels.is_file():
        return Counter()
    return Counter(int(line.split()[0]) for line in labels.read_text().splitlines() if line.strip())


class FlightRunner(LiveRunner):
    """A LiveRunner whose video file plays no faster than its own frame rate."""

    def open_session(self):
        from studio.core.pacing import PacedSource, video_fps

        session = super().open_session()
        session.source = PacedSource(session.source, video_fps(self.request.source))
        return session


class SceneRunner(LiveRunner):
    """A LiveRunner that also hands over each tile's detections as the tile finishes (`tiles_ready`)."""

    tiles_ready = Signal()

    def __init__(self, request, parent=None):
        super().__init__(request, parent)
        self._tiles: list = []
        self._tiles_lock = threading.Lock()

    def open_session(self):
        session = super().open_session()
        session.on_tile = self._on_tile
        return session

    def _on_tile(self, dets) -> None:
        with self._tiles_lock:
            notify = not self._tiles
            self._tiles.append(dets)
        if notify:
            self.tiles_ready.emit()

    def take_tiles(self) -> list:
        with self._tiles_lock:
            tiles, self._tiles = self._tiles, []
        return tiles


class PyramidLoader(QThread):
    """Opens a raster's ScenePyramid off the UI thread (building cached overviews can take a while)."""

    ready = Signal(object)
    failed = Signal(str)
    step = Signal(int, int)

    def __init__(self, path: Path, parent=None):
        super().__init__(parent)
        self.path = path

    def run(self) -> None:
        from studio.core.scene_pyramid import ScenePyramid, default_cache

        try:
            self.ready.emit(ScenePyramid(str(self.path), default_cache(), progress=self.step.emit))
        except UserError as exc:
            self.failed.emit(str(exc))


def halt(runner: LiveRunner | None) -> None:
    """Stop a runner and wait for its thread to end."""
    if runner is not None:
        runner.stop()
        runner.wait(15000)


class RemoteSensingDemo(QWidget):
    """The demo window; with a parent it embeds like a page (call shutdown() before its host goes away)."""

    closed = Signal()

    def __init__(self, out: Path = Path("out/demo"), model: Path | None = None, parent=None, *, tile: int = 320,
                 conf: float = 0.25, scene: Path = SCENE, flight: Path = FLIGHT):
        super().__init__(parent)
        oriented = model is None and scene == SCENE and obb_student_onnx(out).is_file() and DENSE_SCENE.is_file()
        if oriented:  # the oriented-box student on the dense scene, when the demo has exported it
            scene, model = DENSE_SCENE, obb_student_onnx(out)
        self.out = out
        self.tile, self.conf, self.scene_path, self.flight_path = tile, conf, scene, flight
        self.scene_runner: SceneRunner | None = None
        self.pyramid = None  # a raster scene's ScenePyramid (None: the scene is an image, decoded whole)
        self.loader: PyramidLoader | None = None
        self.start_when_open = False  # start() came while the raster was still opening: run once it is open
        self.flight_runner: FlightRunner | None = None
        self.scene_dets = None  # the merged detections of the whole scene, in scene pixels
        self.flight_frames = 0  # flight frames shown
        self.last_error = None
        self.names: list[str] = []
        self.grid: list[tuple[int, int, int]] = []  # (x, y, size) of the scene's tiles
        self.labelled = labelled_counts(scene.with_suffix(".txt"))
        self._scene_started = 0.0
        if parent is None:
            self.setWindowTitle("Remote-sensing demo - Edge Deploy Studio")
            self.resize(1400, 860)

        self.model = PathField("an exported .onnx with its .onnx.json sidecar", name_filter="Models (*.onnx)",
                               key="remote-sensing-model")
        chosen = model or default_model(out)
        self.model.setText(str(chosen) if chosen else "")
        self.workers = QSpinBox()
        self.workers.setRange(1, 6)
        self.workers.setValue(2)
        self.workers.setPrefix("workers ")
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.kind = QComboBox()
        self.kind.addItems([UPRIGHT, ORIENTED])
        self.opened: Path | None = None  # the last scene the user opened, one choice away in the kind combo
        self._show_kind()
        self.kind.setToolTip("Oriented boxes: the bundled oriented-box student on a dense scene; upright boxes: the "
                             "demo's detector on the sparse scene; opened scene: the last one you opened, with the "
                             "model as it is")
        self.kind.currentTextChanged.connect(self._choose)
        controls = QHBoxLayout()
        controls.addWidget(self.kind)
        controls.addWidget(QLabel("Model"))
        controls.addWidget(self.model, 1)
        for widget in (self.workers, self.start_button, self.stop_button):
            controls.addWidget(widget)

        self.view = LazySceneView()
        self.grid_box = QCheckBox("Tile grid")
        self.grid_box.setChecked(True)
        self.grid_box.toggled.connect(self.view.grid.setVisible)
        view_bar = QHBoxLayout()
        for text, action in (("Fit", self.view.fit), ("Zoom in", lambda: self.view.zoom(ZOOM_STEP)),
                             ("Zoom out", lambda: self.view.zoom(1 / ZOOM_STEP))):
            button = QPushButton(text)
            button.clicked.connect(action)
            view_bar.addWidget(button)
        view_bar.addWidget(self.grid_box)
        open_button = QPushButton("Open scene…")
        open_button.setToolTip("A GeoTIFF of any size (viewed through overviews, read by windows) or an image")
        open_button.clicked.connect(self._open_scene)
        view_bar.addWidget(open_button)
        view_bar.addStretch(1)
        self.scene_status = QLabel("Press Start to run the scene.")
        self.counts = QTableWidget(0, 3)
        self.counts.setHorizontalHeaderLabels(["class", "detected", "labelled"])
        self.counts.horizontalHeader().setStretchLastSection(True)
        self.counts.verticalHeader().setVisible(False)
        self.counts.setMaximumHeight(150)
        scene_box = self.scene_box = QGroupBox(f"Whole scene, tiled: {scene.name}")
        s_layout = QVBoxLayout(scene_box)
        s_layout.addLayout(view_bar)
        s_layout.addWidget(self.view, 1)
        s_layout.addWidget(self.scene_status)
        s_layout.addWidget(self.counts)

        self.flight_view = ImageView("The simulated flight plays here.")
        self.flight_status = QLabel("frames/s -")
        flight_box = QGroupBox(f"Simulated flight: {flight.name}")
        f_layout = QVBoxLayout(flight_box)
        f_layout.addWidget(self.flight_view, 1)
        f_layout.addWidget(self.flight_status)

        panels = QHBoxLayout()
        panels.addWidget(scene_box, 3)
        panels.addWidget(flight_box, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addLayout(panels, 1)

        self.progress = QTimer(self)
        self.progress.setInterval(250)
        self.progress.timeout.connect(self._show_progress)
        self._load_scene()
        self._set_running(False)

    def _choose(self, kind: str) -> None:
        """Switch between the oriented-box student on the dense scene and the upright detector on the scene,
        or back to the scene the user opened (with the model as it is)."""
        if kind == OPENED:
            self.open_scene(self.opened)
            return
        self.stop()
        oriented = kind == ORIENTED
        self.scene_path = DENSE_SCENE if oriented else SCENE
        model = obb_student_onnx(self.out) if oriented else default_model(self.out)
        self.model.setText(str(model) if model and model.is_file() else "")
        self.labelled = labelled_counts(self.scene_path.with_suffix(".txt"))
        self.scene_box.setTitle(f"Whole scene, tiled: {self.scene_path.name}")
        self.scene_dets = None
        self.counts.setRowCount(0)
        self.scene_status.setText("Press Start to run the scene.")
        self._load_scene()

    def _open_scene(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a scene", str(self.scene_path.parent),
                                              "Scenes (*.tif *.tiff *.png *.jpg *.jpeg)")
        if path:
            self.open_scene(Path(path))

    def open_scene(self, path: Path) -> None:
        """Show another scene (the next Start runs it); a raster opens through its overviews."""
        self.stop()
        self.scene_path = path
        self.labelled = labelled_counts(path.with_suffix(".txt"))
        self.scene_box.setTitle(f"Whole scene, tiled: {path.name}")
        self.scene_dets = None
        self.counts.setRowCount(0)
        self._show_kind()
        self._load_scene()

    def _show_kind(self) -> None:
        """The kind combo names what is shown: one of the bundled demos, or the scene the user opened."""
        kind = {DENSE_SCENE: ORIENTED, SCENE: UPRIGHT}.get(self.scene_path)
        if kind is None:
            self.opened, kind = self.scene_path, OPENED
            if self.kind.findText(OPENED) < 0:
                self.kind.addItem(OPENED)
            self.kind.setItemData(self.kind.findText(OPENED), str(self.opened), Qt.ItemDataRole.ToolTipRole)
        with QSignalBlocker(self.kind):
            self.kind.setCurrentText(kind)

    def _load_scene(self) -> None:
        """The scene and the tile grid the session will use, before anything runs."""
        import cv2

        from deploy.runtime.sources import RASTER_SUFFIXES
        from deploy.runtime.tiling import tile_grid

        if self.pyramid is not None:
            self.pyramid.close()
        self.pyramid = None
        if self.scene_path.suffix.lower() in RASTER_SUFFIXES:
            self.scene_status.setText(f"opening {self.scene_path.name} through its overviews…")
            self.start_button.setEnabled(False)
            self.loader = PyramidLoader(self.scene_path, self)
            self.loader.ready.connect(self._show_pyramid)
            self.loader.failed.connect(self.error)
            self.loader.step.connect(self._show_building)
            self.loader.start()
            return
        bgr = cv2.imread(str(self.scene_path), cv2.IMREAD_COLOR)
        if bgr is None:
            self.scene_status.setText(f"{self.scene_path}: not a readable image")
            return
        h, w = bgr.shape[:2]
        self.grid = tile_grid(h, w, self.tile, OVERLAP)
        self.view.show_rgb(bgr[..., ::-1])
        self.view.set_grid(self.grid, (h, w))

    def _show_building(self, done: int, total: int) -> None:
        self.scene_status.setText(f"building overviews in the cache folder: level {done} of {total}…")

    def _show_pyramid(self, pyramid) -> None:
        from deploy.runtime.tiling import tile_grid

        self.pyramid = pyramid
        h, w = pyramid.shape[:2]
        empty = pyramid.raster.empty
        self.grid = [(x, y, s) for x, y, s in tile_grid(h, w, self.tile, OVERLAP) if not empty(x, y, s)]
        self.view.set_pyramid(pyramid)
        self.view.set_grid(self.grid if len(self.grid) <= 5000 else [], (h, w))
        where = "its own overviews" if pyramid.origin == "raster" else "overviews in the cache folder"
        self.scene_status.setText(f"{w} x {h} px through {where}; {len(self.grid)} tiles to run. Press Start.")
        self._set_running(self.running())
        if self.start_when_open:
            self.start_when_open = False
            self.start()

    def running(self) -> bool:
        return any(r is not None and r.isRunning() for r in (self.scene_runner, self.flight_runner))

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.workers.setEnabled(not running)

    def error(self, message: str) -> None:
        """One dialog per message: both sessions fail alike on a broken model."""
        showing = self.last_error is not None and self.last_error.isVisible()
        if not (showing and self.last_error.text() == message):
            self.last_error = show_error(self, message)

    def start(self) -> None:
        """Run the scene (once, tiled) and the flight (looping, paced) on the chosen model."""
        from deploy.runtime.metadata import read_model_meta
        from studio.core.live import LiveRequest

        if self.running():
            return
        if self.loader is not None and self.loader.isRunning():
            self.start_when_open = True
            return
        if not self.model.text():
            self.error("no demo model yet: run `studio demo` (or `make demo`) first, or choose an .onnx")
            return
        model = Path(self.model.text())
        try:
            self.names = read_model_meta(model).names
        except UserError as exc:
            self.error(str(exc))
            return
        workers = self.workers.value()
        self.scene_dets, self.flight_frames = None, 0
        self.scene_runner = self._runner(SceneRunner, LiveRequest(
            model=model, source=str(self.scene_path), backend="ort", workers=workers, tile=self.tile,
            overlap=OVERLAP, conf=self.conf, loop=False), self._show_scene)
        self.flight_runner = self._runner(FlightRunner, LiveRequest(
            model=model, source=str(self.flight_path), backend="ort", workers=workers, conf=self.conf, loop=True),
            self._show_flight)
        self._set_running(True)
        self._scene_started = time.perf_counter()
        self.scene_status.setText(f"running {len(self.grid)} tiles of {self.tile} px on {workers} workers…")
        self.progress.start()
        self.scene_runner.tiles_ready.connect(self._show_tiles)
        self.view.clear_detections()
        self.scene_runner.start()
        self.flight_runner.start()

    def _runner(self, kind: type[LiveRunner], request, show) -> LiveRunner:
        runner = kind(request, self)
        runner.frame_ready.connect(show)
        runner.failed.connect(self.error)
        runner.finished.connect(self._runner_finished)
        return runner

    def _runner_finished(self) -> None:
        if not (self.scene_runner and self.scene_runner.isRunning()):
            self.progress.stop()
        self._set_running(self.running())

    def stop(self) -> None:
        """Stop both sessions and wait for their threads."""
        self.progress.stop()
        halt(self.scene_runner)
        halt(self.flight_runner)
        self._set_running(False)

    def shutdown(self) -> None:
        """What a host calls before it closes (a standalone window does it on close)."""
        self.stop()
        if self.loader is not None:
            self.loader.wait()
        if self.pyramid is not None:
            self.pyramid.close()
            self.pyramid = None

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.shutdown()
        self.closed.emit()
        super().closeEvent(event)

    def _show_progress(self) -> None:
        session = self.scene_runner.session if self.scene_runner else None
        if session is not None and session.pipeline is not None and self.scene_dets is None:
            self.scene_status.setText(f"tiles {session.pipeline.stats.frames} / {len(self.grid)} "
                                      f"on {self.workers.value()} workers…")

    def _show_scene(self) -> None:
        from deploy.runtime.draw import draw_detections

        latest = self.scene_runner.take() if self.scene_runner else None
        if latest is None:
            return
        self.progress.stop()
        _, dets, stats = latest
        self.scene_dets = dets
        if self.pyramid is not None:  # outlined over the lazy view: the merged scene replaces the tiles'
            self.view.clear_detections()
            self.view.add_detections(dets)
        else:
            self.view.show_rgb(draw_detections(dets.image, dets, self.names)[..., ::-1])
        seconds = time.perf_counter() - self._scene_started
        self.scene_status.setText(f"{len(dets)} objects merged from {stats.frames} tiles of {self.tile} px "
                                  f"on {self.workers.value()} workers in {seconds:.1f} s")
        self._show_counts(Counter(dets.classes.tolist()))

    def _show_tiles(self) -> None:
        """Each finished tile's detections outlined where the tile lies (a raster scene only)."""
        if self.pyramid is None or self.scene_runner is None or self.scene_dets is not None:
            return
        for dets in self.scene_runner.take_tiles():
            self.view.add_detections(dets, dets.tile["offset"])

    def _show_counts(self, detected: Counter) -> None:
        classes = sorted(set(detected) | set(self.labelled))
        self.counts.setRowCount(len(classes))
        for row, cls in enumerate(classes):
            name = self.names[cls] if cls < len(self.names) else str(cls)
            for col, value in enumerate((name, detected[cls], self.labelled[cls] if self.labelled else "-")):
                self.counts.setItem(row, col, QTableWidgetItem(str(value)))

    def _show_flight(self) -> None:
        latest = self.flight_runner.take() if self.flight_runner else None
        if latest is None:
            return
        rgb, dets, stats = latest
        self.flight_frames += 1
        self.flight_view.show_rgb(rgb)
        self.flight_status.setText(f"frames/s {stats.fps:.1f}   frames {stats.frames}   objects {len(dets)}")


def open_remote_sensing_demo(out: Path) -> None:
    """`studio demo --remote-sensing`: show the demo on out's model and run Qt until its window closes."""
    from studio.gui.qt_app import application

    application()
    demo = RemoteSensingDemo(out)
    loop = QEventLoop()
    demo.closed.connect(loop.quit)
    demo.show()
    demo.start()
    loop.exec()
