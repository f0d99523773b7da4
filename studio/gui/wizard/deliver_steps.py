"""The wizard's end: export the chosen variant to a folder, then run it here or hand it to a board."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QLabel,
    QPushButton,
    QRadioButton,
    QSpinBox,
)

from deploy.errors import UserError
from studio.core.bundle import write_bundle
from studio.core.demo import SAMPLE_FLIGHT
from studio.core.wizard import board_backend, export_command, live_backend, q
from studio.gui.common import PathField
from studio.gui.wizard.step import Step, form


class ExportStep(Step):
    title = "Export"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.what = QLabel()
        self.what.setWordWrap(True)
        self.dest = PathField("a folder for the model and its sidecar", folder=True, key="wiz-export")
        self.dest.edit.textChanged.connect(lambda _: self.changed.emit())
        self.export_button = QPushButton("Export")
        self.export_button.clicked.connect(self.export)
        self.written = QLabel()
        self.written.setWordWrap(True)
        self.lay_out("Writes a deploy bundle: the chosen variant's model, the sidecar that says how to run it "
                     "(input size, layout, classes, output scales), the ONNX it was built from, its verification "
                     "report, bundle.json and a README of how to run it.",
                     form(("Chosen", self.what), ("To", self.dest), ("", self.export_button)), self.written)

    def enter(self) -> None:
        row = self.state.chosen_row()
        if not self.dest.text():
            self.dest.setText(str(self.state.folder / "deploy"))
        if row:
            self.what.setText(f"{row['variant']}: {row['path']} ({row['bytes'] / 1e6:.2f} MB, "
                              f"val mAP50-95 {row['map50_95']:.4f})")
        self.changed.emit()

    def export(self) -> None:
        row = self.state.chosen_row()
        try:
            self.state.exported = write_bundle(self.state.report, row, Path(self.dest.text()))
        except (UserError, OSError) as exc:
            self.window().show_error(str(exc))
            return
        files = sorted(p.name for p in self.state.exported.parent.iterdir() if not p.name.endswith(".part"))
        self.written.setText(f"Wrote {self.state.exported} (folder now holds: {', '.join(files)})")
        self.changed.emit()

    def blocked(self) -> str | None:
        return None if self.state.exported and self.state.exported.is_file() else "export the chosen variant first"

    def cli(self) -> str:
        row = self.state.chosen_row()
        dest = Path(self.dest.text() or self.state.folder / "deploy")
        calib_count = self.state.recipe.get("export", {}).get("calib_count", 100)
        try:
            return export_command(row, self.state.report, dest, calib_count) if row else ""
        except UserError as exc:  # the data moved since the run: no command to show
            return f"# {exc}"


class DeployStep(Step):
    title = "Deploy"

    def __init__(self, state, jobs, parent=None):
        super().__init__(state, parent)
        self.jobs = jobs
        self.here = QRadioButton("Here: the live panel (ONNX Runtime for .onnx, rknn-toolkit2's simulator for .rknn)")
        self.board = QRadioButton("On a board: the Deploy page (push, then run on its NPU cores)")
        self.service = QRadioButton("On a board, as a service: keeps running after the studio closes, restarts on "
                                    "failure and at boot (the source is on the board)")
        self.here.setChecked(True)
        group = QButtonGroup(self)
        for button in (self.here, self.board, self.service):
            group.addButton(button)
            button.toggled.connect(lambda _: self.changed.emit())
        self.boards = QComboBox()
        self.source = PathField("video, image folder, large image or camera:0", key="wiz-source")
        self.source.setText(str(SAMPLE_FLIGHT) if SAMPLE_FLIGHT.is_file() else "")
        self.source.edit.textChanged.connect(lambda _: self.changed.emit())
        self.workers = QSpinBox()
        self.workers.setRange(1, 6)
        self.workers.setValue(2)
        self.workers.valueChanged.connect(lambda _: self.changed.emit())
        self.backend = QComboBox()
        self.backend.addItems(["rknnlite", "ort"])  # the NPU, or ONNX Runtime on the board's CPU
        self.backend.currentTextChanged.connect(lambda _: self.changed.emit())
        self.go_button = QPushButton("Open the live panel")
        self.go_button.clicked.connect(self.deploy)
        self.installed = QLabel()
        self.installed.setWordWrap(True)
        self.lay_out("Watch the exported model work: here on this machine, or on a board over SSH (one worker per "
                     "NPU core on an RK3588), or leave it running there as a service.",
                     form(("", self.here), ("", self.board), ("", self.service), ("Board", self.boards),
                          ("Source", self.source), ("Workers", self.workers), ("Board backend", self.backend),
                          ("", self.go_button)), self.installed)
        self.changed.connect(self._label_button)

    def _label_button(self) -> None:
        self.go_button.setText("Install the service" if self.service.isChecked() else "Open the live panel")

    def enter(self) -> None:
        from deploy.board.profiles import BoardStore

        self.boards.clear()
        self.boards.addItems(list(BoardStore().load()))
        for widget in (self.board, self.service, self.boards):
            widget.setEnabled(self.boards.count() > 0)
        if not self.boards.count():
            self.here.setChecked(True)
            self.board.setText("On a board: add one on the Deploy page first")
        self.changed.emit()

    def install(self) -> None:
        """Push the bundle and start it as a service on the chosen board (a job: progress, cancel)."""
        from deploy.board.remote_run import RunOptions
        from studio.core.board import Access, install_service
        from studio.core.bundle import bundle_model

        source, backend = self.source.text() or "camera:0", self.backend.currentText()
        try:
            model = bundle_model(self.state.exported.parent, backend)
        except UserError as exc:
            self.window().show_error(str(exc))
            return
        opts = RunOptions(source=source, backend=backend, workers=self.workers.value(),
                          loop=not source.startswith("camera:"))  # a file source starts again at its end
        access = Access(self.boards.currentText())
        self.installed.setText(f"installing on {access.board} ...")

        def done(status: dict) -> None:
            self.installed.setText(f"The service runs on {access.board} ({status['manager']}); results go to "
                                   f"{status['results']} on the board. Watch it: studio board stream "
                                   f"{access.board} --service")

        def failed(message: str) -> None:
            self.installed.setText("")
            self.window().show_error(message)

        self.jobs.start(f"Install on {access.board}", lambda job: install_service(access, model, opts, "studio", job),
                        on_success=done, on_failure=failed)

    def deploy(self) -> None:
        window = self.window()
        model = self.state.exported
        if self.service.isChecked():
            self.install()
            return
        if self.board.isChecked():
            deploy = window.page("Deploy")
            deploy.model.setText(str(model))
            deploy.source.setText("camera:0")
            deploy.backend.setCurrentText(board_backend(model))
            deploy.select(self.boards.currentText())
            window.show_page("Deploy")
            return
        if not self.source.text():
            window.show_error("choose a source to run on: a video, an image folder, a large image or camera:0")
            return
        live = window.page("Live")
        live.model.setText(str(model))
        live.source.setText(self.source.text())
        live.backend.setCurrentText(live_backend(model))
        live.workers.setValue(self.workers.value())
        window.show_page("Live")
        live.start()

    def cli(self) -> str:
        model = self.state.exported
        if model is None:
            return ""
        if self.service.isChecked() and self.boards.currentText():
            source = self.source.text() or "camera:0"
            return (f"studio board install {q(self.boards.currentText())} {q(model.parent)} --source {q(source)} "
                    f"--workers {self.workers.value()} --backend {self.backend.currentText()}"
                    + ("" if source.startswith("camera:") else " --loop"))
        if self.board.isChecked() and self.boards.currentText():
            name = self.boards.currentText()
            return (f"studio board push {q(name)} {q(model)} && studio board run {q(name)} {q(model)} "
                    f"--source camera:0 --workers 3 --backend {board_backend(model)}")
        return (f"studio predict {q(model)} {q(self.source.text())} --backend {live_backend(model)} "
                f"--workers {self.workers.value()}")
