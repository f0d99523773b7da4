"""The jobs dock: every long job with its progress, elapsed and remaining time, a log and Cancel."""
from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from studio.core.jobs import Job, ProgressEvent
from studio.gui.jobs import JobThread


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


class JobRow(QWidget):
    """One line of the dock: title, stage, bar, times, Cancel."""

    def __init__(self, thread: JobThread, parent=None):
        super().__init__(parent)
        self.thread = thread
        self.stage = QLabel("starting")
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)  # busy until a total is known
        self.bar.setMaximumHeight(16)
        self.times = QLabel("0:00")
        self.times.setMinimumWidth(120)
        self.cancel = QPushButton("Cancel")
        self.cancel.clicked.connect(thread.cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        title = QLabel(f"<b>{thread.title}</b>")
        title.setMinimumWidth(160)
        for widget, stretch in ((title, 0), (self.stage, 1), (self.bar, 2), (self.times, 0), (self.cancel, 0)):
            layout.addWidget(widget, stretch)
        self._done_fraction = 0.0

    def on_progress(self, event: ProgressEvent) -> None:
        self.stage.setText(f"{event.label} {event.message}".strip())
        if event.total:
            self.bar.setRange(0, event.total)
            self.bar.setValue(min(event.done, event.total))
            self._done_fraction = event.done / event.total
        else:
            self.bar.setRange(0, 0)
            self._done_fraction = 0.0

    def tick(self) -> None:
        elapsed = time.monotonic() - self.thread.started_at
        text = _clock(elapsed)
        if 0 < self._done_fraction < 1:
            text += f"  ~{_clock(elapsed * (1 - self._done_fraction) / self._done_fraction)} left"
        self.times.setText(text)

    def finish(self, outcome: str) -> None:
        self.stage.setText(outcome)
        self.times.setText(_clock(time.monotonic() - self.thread.started_at))
        self.bar.setRange(0, 1)
        self.bar.setValue(1 if outcome == "done" else 0)
        self.cancel.setEnabled(False)


class JobsDock(QDockWidget):
    """Starts jobs and shows them; the window asks it whether anything is still running."""

    def __init__(self, parent=None):
        super().__init__("Jobs", parent)
        self.setObjectName("jobs-dock")
        self.rows: list[JobRow] = []
        self.threads: list[JobThread] = []
        body = QWidget()
        self.list_layout = QVBoxLayout(body)
        self.list_layout.setContentsMargins(0, 0, 0, 0)
        self.empty = QLabel("No jobs yet. Exports, imports and inspections run here, and can be cancelled.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.list_layout.addWidget(self.empty)
        self.list_layout.addStretch(1)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setPlaceholderText("Job log")
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(body)
        split.addWidget(self.log)
        split.setSizes([700, 300])
        self.setWidget(split)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        self.timer.start(500)

    def start(self, title: str, work: Callable[[Job], object], on_success: Callable[[object], None] | None = None,
              on_failure: Callable[[str], None] | None = None,
              on_progress: Callable[[ProgressEvent], None] | None = None,
              on_cancel: Callable[[], None] | None = None) -> JobThread:
        """Run work(job) on a worker thread; callbacks run on the UI thread (connected before it starts)."""
        thread = JobThread(title, work, self)
        row = JobRow(thread)
        self.empty.hide()
        self.list_layout.insertWidget(0, row)
        self.rows.append(row)
        self.threads.append(thread)
        thread.progress.connect(row.on_progress)
        stages: list[str] = []

        def log_stage(event: ProgressEvent) -> None:  # one log line per stage, not per step
            if not stages or stages[-1] != event.label:
                stages.append(event.label)
                self._log(f"{title}: {event.label} {event.message}".strip())

        thread.progress.connect(log_stage)
        thread.succeeded.connect(lambda _: (row.finish("done"), self._log(f"{title}: done")))
        thread.cancelled.connect(lambda: (row.finish("cancelled"), self._log(f"{title}: cancelled")))
        thread.failed.connect(lambda m: (row.finish("failed"), self._log(f"{title}: {m}")))
        if on_success:
            thread.succeeded.connect(on_success)
        if on_failure:
            thread.failed.connect(on_failure)
        if on_progress:
            thread.progress.connect(on_progress)
        if on_cancel:
            thread.cancelled.connect(on_cancel)
        thread.start()
        return thread

    def running(self) -> list[JobThread]:
        return [t for t in self.threads if t.isRunning()]

    def cancel_all(self, wait_ms: int = 30000) -> None:
        for thread in self.running():
            thread.cancel()
        for thread in self.threads:
            thread.wait(wait_ms)

    def _log(self, line: str) -> None:
        self.log.appendPlainText(line)

    def _tick(self) -> None:
        for row in self.rows:
            if row.thread.isRunning():
                row.tick()
