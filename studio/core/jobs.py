"""Long work as jobs: progress events out, a cancel token in.

Core functions that take a while accept `progress` (a callable receiving ProgressEvent)
and `cancel` (a CancelToken). The CLI renders the events as rich progress bars, the GUI
as a job panel; neither needs to know what the work is.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


class Cancelled(Exception):
    """Raised inside a job when its cancel token was set; the job leaves earlier results intact."""


class CancelToken:
    """Set from any thread; checked by the job between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled")


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a stage: `done` of `total` (total None: unknown length, show a spinner).

    `part` names the part of a larger run the stage belongs to (a compress chain's stage, one
    of several boards), so a view can group by it without parsing stage names.
    """

    stage: str
    done: int = 0
    total: int | None = None
    message: str = ""
    part: str = ""

    @property
    def label(self) -> str:
        """What a view shows: 'part: stage', or the stage alone (also when it announces its part)."""
        return f"{self.part}: {self.stage}" if self.part and self.part != self.stage else self.stage


ProgressFn = Callable[[ProgressEvent], None]


def _ignore(_: ProgressEvent) -> None:
    pass


class Job:
    """What a core function holds while it works: where to report, and whether to stop."""

    def __init__(self, progress: ProgressFn | None = None, cancel: CancelToken | None = None, part: str = ""):
        self.progress = progress or _ignore
        self.cancel = cancel or CancelToken()
        self.part = part

    def within(self, part: str) -> Job:
        """The same job, its events tagged with `part` (sharing progress and cancel)."""
        return Job(self.progress, self.cancel, part)

    def stage(self, name: str, total: int | None = None, message: str = "") -> None:
        """Announce a stage (checks for cancel first)."""
        self.cancel.check()
        self.progress(ProgressEvent(name, 0, total, message, self.part))

    def step(self, name: str, done: int, total: int | None, message: str = "") -> None:
        """Report progress within a stage (checks for cancel first); `message` says how it goes."""
        self.cancel.check()
        self.progress(ProgressEvent(name, done, total, message, self.part))

    def stepper(self, name: str) -> Callable[[int, int], None]:
        """A (done, total) callback bound to a stage, for lower layers that know nothing of jobs."""
        return lambda done, total: self.step(name, done, total)
