"""Long work off the UI thread: core functions run in a QThread and report through Qt signals.

A JobThread wraps `work(job)` (any studio.core function that takes a Job). Its progress
events, result and failure arrive in the UI thread as queued signals; cancel() sets the
job's CancelToken, and the core function stops at its next check.
"""
from __future__ import annotations

import time
import traceback
from collections.abc import Callable

from PySide6.QtCore import QThread, Signal

from deploy.errors import UserError
from studio.core.jobs import Cancelled, CancelToken, Job


class JobThread(QThread):
    """One job: `progress(ProgressEvent)`, then exactly one of succeeded / failed / cancelled."""

    progress = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str)  # the same one-line message the CLI prints
    cancelled = Signal()

    def __init__(self, title: str, work: Callable[[Job], object], parent=None):
        super().__init__(parent)
        self.title, self.work = title, work
        self.token = CancelToken()
        self.started_at = time.monotonic()
        self.outcome = "running"

    def run(self) -> None:
        self.started_at = time.monotonic()
        job = Job(progress=self._throttled, cancel=self.token)
        try:
            result = self.work(job)
        except Cancelled:
            self.outcome = "cancelled"
            self.cancelled.emit()
        except UserError as exc:
            self.outcome = "failed"
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug: keep the traceback in the log, show one line
            self.outcome = "failed"
            traceback.print_exc()
            self.failed.emit(f"unexpected error ({type(exc).__name__}: {exc}); details in the terminal log")
        else:
            self.outcome = "done"
            self.succeeded.emit(result)

    def cancel(self) -> None:
        self.token.cancel()

    def _throttled(self, event) -> None:
        """Forward a new stage, the last step and at most ~20 steps a second: the UI needs no more.

        (A job may report tens of thousands of steps; repainting a bar for each would only
        slow the UI.)
        """
        now = time.monotonic()
        last = getattr(self, "_last", None)
        if last is None or event.label != last[0] or event.done == event.total or now - last[1] >= 0.05:
            self._last = (event.label, now)
            self.progress.emit(event)
