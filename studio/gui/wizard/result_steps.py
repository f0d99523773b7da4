"""The wizard's middle: run the recipe (a bar per stage, cancel, resume), then compare what it made."""
from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from deploy.errors import UserError
from studio.core.bundle import suggested
from studio.core.compress.int8_report import variant_cells
from studio.core.compress.recipe import STAGES, planned, write_run_recipe
from studio.core.wizard import compress_command, front, recipe_text
from studio.gui.common import PathField
from studio.gui.wizard.pareto_plot import ParetoPlot
from studio.gui.wizard.step import Step


class RunStep(Step):
    title = "Run"

    def __init__(self, state, jobs, parent=None):
        super().__init__(state, parent)
        self.jobs = jobs
        self.thread = None
        self.folder = PathField("a folder for the recipe and the run", folder=True, key="wiz-folder")
        self.folder.setText(str(state.folder))
        self.folder.edit.textChanged.connect(self._folder_changed)
        self.start_button, self.cancel_button = QPushButton("Start"), QPushButton("Cancel")
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(lambda: self.thread and self.thread.cancel())
        self.cancel_button.setEnabled(False)
        self.bars: dict[str, tuple[QLabel, QProgressBar, QLabel]] = {}
        grid = QGridLayout()
        for i, stage in enumerate(STAGES):
            bar = QProgressBar()
            bar.setRange(0, 1)
            bar.setValue(0)
            self.bars[stage] = (QLabel(f"<b>{stage}</b>"), bar, QLabel("–"))
            for j, widget in enumerate(self.bars[stage]):
                grid.addWidget(widget, i, j)
        grid.setColumnStretch(1, 2)
        grid.setColumnStretch(2, 3)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setPlaceholderText("Stages and epochs appear here.")
        form = QFormLayout()
        form.addRow("Folder", self.folder)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro("Runs the recipe: each stage writes its results into the folder before the "
                                    "next starts, so a cancelled or crashed run resumes where it stopped."))
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addLayout(grid)
        layout.addWidget(self.log, 1)
        self._current = None
        self._plan = self._planned()

    def _folder_changed(self, text: str) -> None:
        self.state.folder = Path(text or "out/wizard")
        self.state.set_report(None)
        self.enter()

    def _resumable(self) -> bool:
        chain = self.state.chain
        return chain.is_dir() and any(chain.iterdir())

    def _planned(self) -> list[str]:
        return planned(self.state.recipe)

    def enter(self) -> None:
        if self.busy():
            return
        same = self._same_recipe()
        if self.state.report is not None and not same:  # an earlier step changed since the run
            self.state.set_report(None)
        report = self.state.chain / "compress_report.json"
        if self.state.report is None and same and report.is_file():
            self.state.set_report(json.loads(report.read_text()))
        self._show_plan(self._planned())
        done, resumable = self.state.report is not None, self._resumable()
        self.start_button.setText("Done" if done else "Resume" if resumable else "Start")
        self.start_button.setEnabled(not done)
        for stage in self._plan if done or not resumable else []:  # a stopped run keeps its bars
            self._mark(stage, "done" if done else "–")
        self.changed.emit()

    def busy(self) -> bool:
        return self.thread is not None and self.thread.outcome == "running"  # set before its last signal

    def _show_plan(self, plan: list[str]) -> None:
        self._plan = plan
        for stage, widgets in self.bars.items():
            for widget in widgets:
                widget.setVisible(stage in plan)

    def _same_recipe(self) -> bool:
        path = self.state.recipe_path
        return path.is_file() and path.read_text() == recipe_text(self.state.full_recipe())

    def start(self) -> None:
        from studio.core.compress.chain import run_recipe

        hint = ("choose another folder, or continue that run from a terminal: "
                + compress_command(self.state.recipe_path, self.state.chain, resume=True))
        try:
            recipe = write_run_recipe(recipe_text(self.state.full_recipe()), self.state.recipe_path,
                                      self.state.chain, hint)
        except UserError as exc:
            self.window().show_error(str(exc))
            return
        self._show_plan(recipe.stages())  # with the stages that fit the model and the teacher to the data
        resume = self._resumable()
        self.log.appendPlainText(("Resuming: " if resume else "Starting: ") + self.cli())
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.folder.setEnabled(False)
        chain = self.state.chain
        self.thread = self.jobs.start("Compress", lambda job: run_recipe(recipe, chain, resume=resume, job=job),
                                      on_success=self._finished, on_failure=self._failed,
                                      on_progress=self.on_progress, on_cancel=self._cancelled)
        self.changed.emit()

    def _mark(self, stage: str, status: str) -> None:
        _, bar, label = self.bars[stage]
        bar.setRange(0, 1)
        bar.setValue(1 if status == "done" else 0)
        label.setText(status)

    def on_progress(self, event) -> None:
        if event.part in self._plan and event.part != self._current:  # the chain moved on to a stage
            for earlier in self._plan[:self._plan.index(event.part)]:
                self._mark(earlier, "done")
            self._current = event.part
            self.bars[self._current][2].setText("running")
            self.log.appendPlainText(f"— {self._current}")
        if self._current is None or event.stage == event.part:  # the stage's announcement has no steps
            return
        _, bar, status = self.bars[self._current]
        bar.setRange(0, event.total or 0)
        bar.setValue(min(event.done, event.total or 0))
        status.setText(f"{event.stage} {event.message}".strip())
        if event.done == 0:
            self.log.appendPlainText(f"   {event.stage} {event.message}".rstrip())

    def _finished(self, report: dict) -> None:
        self.state.set_report(report)
        self.log.appendPlainText(f"Finished: {self.state.chain / 'compress_report.md'}")
        self._stopped()

    def _stopped(self, line: str = "") -> None:
        self.cancel_button.setEnabled(False)
        self.folder.setEnabled(True)
        if line:
            self.log.appendPlainText(line)
            if self._current:
                self.bars[self._current][2].setText("stopped")
        self.enter()

    def _cancelled(self) -> None:
        self._stopped("Cancelled; Resume continues from the last finished step.")

    def _failed(self, message: str) -> None:
        self._stopped(f"Failed: {message}")
        self.window().show_error(message)

    def blocked(self) -> str | None:
        if self.busy():
            return "the chain is still running"
        return None if self.state.report else "run the recipe first (Start)"

    def cli(self) -> str:
        return compress_command(self.state.recipe_path, self.state.chain, resume=self._resumable())


class CompareStep(Step):
    title = "Compare"
    COLUMNS = ("variant", "mAP50-95", "Δ points", "MB", "int8 convs", "Mcycles (est.)", "host ORT ms", "Pareto")

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.itemSelectionChanged.connect(self._picked)
        self.plot = ParetoPlot()
        self.note = QLabel()
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro("The float model, post-training int8 and QAT int8 side by side, scored on the "
                                    "val split (RKNN variants in rknn-toolkit2's simulator). Pick the one to "
                                    "deploy: Pareto marks those no other variant beats on both accuracy and cost."))
        layout.addWidget(self.table, 2)
        layout.addWidget(self.plot, 3)
        layout.addWidget(self.note)

    def enter(self) -> None:
        rows = self.state.report["rows"] if self.state.report else []
        fronts = front(rows) if rows else {"compute": [], "size": []}
        self.table.setRowCount(len(rows))
        base = rows[0]["map50_95"] if rows else 0.0
        for i, r in enumerate(rows):
            cells = variant_cells(r, base)
            marks = [k for k in ("compute", "size") if r["variant"] in fronts[k]]
            values = (*(cells[k] for k in ("variant", "map50_95", "delta", "mb", "int8_convs", "mcycles",
                                           "host_ort_ms")), " + ".join(marks) or "–")
            for j, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter if j else Qt.AlignmentFlag.AlignLeft)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        if rows:
            if self.state.chosen not in [r["variant"] for r in rows]:
                self.state.chosen = suggested(rows)
            self.choose(self.state.chosen)
            self.note.setText(f"{self.state.report['val_images']} val images at {self.state.report['imgsz']} px. "
                              "Mcycles is the toolkit's static estimate for one NPU core; host ORT ms is ONNX "
                              "Runtime on this CPU. Neither was measured on a board.")
        self.plot.show_rows(rows, fronts, self.state.chosen)
        self.changed.emit()

    def choose(self, variant: str) -> None:
        for i in range(self.table.rowCount()):
            if self.table.item(i, 0).text() == variant:
                self.table.selectRow(i)

    def _picked(self) -> None:
        selected = self.table.selectedItems()
        if selected:
            self.state.chosen = self.table.item(selected[0].row(), 0).text()
            self.state.exported = None
            self.plot.show_rows(self.state.report["rows"], front(self.state.report["rows"]), self.state.chosen)
            self.changed.emit()

    def blocked(self) -> str | None:
        return None if self.state.chosen_row() else "pick the variant to deploy"

    def cli(self) -> str:
        report = self.state.chain / "compress_report.md"
        return f"{compress_command(self.state.recipe_path, self.state.chain, resume=True)} && cat {report}"
