"""What every `studio` command shares: one-line errors with exit codes, progress display, JSON output.

Commands stay thin: parse options, call a core function inside `run_job`, print the result.
"""
from __future__ import annotations

import contextlib
import functools
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from typer.core import TyperGroup

from deploy.errors import UnreachableError, UserError
from studio.core.jobs import Cancelled, Job, ProgressEvent

UsageError = typer.BadParameter.__mro__[1]  # typer vendors click; this is its UsageError (BadParameter's parent)
stderr = Console(stderr=True, emoji=False)  # camera:abc stays camera:abc, not an emoji
stdout = Console(emoji=False)
EXIT_USER, EXIT_UNREACHABLE, EXIT_CANCELLED = 2, 3, 130
PLAIN_EVERY_S = 30  # off a terminal, a running stage's message is printed at most this often


def fail(message: str, code: int = EXIT_USER) -> typer.Exit:
    """Print one clear line on stderr and return the Exit to raise."""
    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextlib.contextmanager
def usage_in_one_line() -> Iterator[None]:
    """click's usage mistakes (a value of the wrong type, a missing or unknown option) as one line, exit code 2."""
    try:
        yield
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help is the answer
            raise
        where = exc.ctx.command_path if exc.ctx else "studio"
        raise fail(f"{exc.format_message()} (see: {where} --help)") from None


class OneLineErrors(TyperGroup):
    """The top-level command group: every user error, usage mistakes included, is one line on stderr."""

    def make_context(self, *args, **kwargs):
        with usage_in_one_line():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with usage_in_one_line():
            return super().invoke(ctx)


def handles_errors(command: Callable) -> Callable:
    """Turn the user's mistakes into one line and exit code 2 (3 for an unreachable board), no traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            raise fail(str(exc), EXIT_USER) from None
        except UnreachableError as exc:
            raise fail(str(exc), EXIT_UNREACHABLE) from None
        except (Cancelled, KeyboardInterrupt):
            raise fail("cancelled; earlier results are untouched", EXIT_CANCELLED) from None

    return wrapper


class ProgressView:
    """Renders ProgressEvents: on a terminal, a bar when the total is known and a spinner otherwise.

    Off a terminal (CI, pipes, a board's log) it prints one plain line per stage on stdout
    (none with --json), so stderr carries only errors.
    """

    def __init__(self, plain_lines: bool = True, parallel: bool = False) -> None:
        self.parallel = parallel  # stages run side by side (one per board): a new one does not end the last
        self.lock = threading.Lock()
        self.live = stderr.is_terminal
        self.plain_lines = plain_lines and not self.live
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=stderr, transient=False, disable=not self.live,
        )
        self.tasks: dict[str, int] = {}
        self.current: str | None = None
        self.last_line = time.monotonic()

    def __call__(self, event: ProgressEvent) -> None:
        with self.lock:  # parallel stages report from several threads
            self._show(event)

    def _show(self, event: ProgressEvent) -> None:
        key = event.label
        starts = key != self.current and not (self.parallel and key in self.tasks)
        if starts:
            if not self.parallel:
                self._finish_current()
            self.current = key
            label = f"{key} {event.message}".strip()
            if self.plain_lines:
                print(f"- {label}", flush=True)
            self.tasks[key] = self.progress.add_task(label, total=event.total)
        update = {"description": f"{key} {event.message}"} if event.message else {}
        self.progress.update(self.tasks[key], completed=event.done, total=event.total, **update)
        if self.plain_lines and event.message and not starts and (
                event.done == event.total or time.monotonic() - self.last_line > PLAIN_EVERY_S):
            print(f"  {event.message}", flush=True)
            self.last_line = time.monotonic()

    def _finish_current(self) -> None:
        if self.current is not None:
            task = self.tasks[self.current]
            total = self.progress.tasks[task].total
            self.progress.update(task, completed=total if total else 1, total=total or 1)

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            for stage in list(self.tasks) if self.parallel else [self.current]:
                self.current = stage
                self._finish_current()
        self.progress.stop()


def run_job(work: Callable[[Job], object], json_out: bool = False, parallel: bool = False):
    """Run core work with a progress display; with --json, stdout stays a single JSON object.

    parallel: the work reports several stages at once (one per board), each keeps its own bar."""
    with ProgressView(plain_lines=not json_out, parallel=parallel) as view:
        return work(Job(progress=view))


NPROC_HELP = ("Train on this many CPU processes here (torchrun + DDP, gloo); for several machines run torchrun "
              "yourself: docs/scale-out.md.")


def launch_if_asked(nproc: int) -> None:
    """With --nproc N (N > 1) outside torchrun: run this same command under torchrun and exit with its code."""
    from studio.core.compress.distributed import launch, launched

    if nproc > 1 and not launched():
        launch(nproc, without_option(sys.argv[1:], "--nproc"))  # does not return


def one_process_only(nproc: int, what: str) -> None:
    """Refuse a mode that runs in a single process (an ablation, a scan) when asked for several."""
    from studio.core.compress.distributed import launched

    if nproc > 1 or launched():
        raise UserError(f"{what} runs in one process; drop --nproc (and run it outside torchrun)")


def speaks_for_the_run() -> bool:
    """Rank 0 (or a single process) prints results; the other ranks of a distributed run stay quiet."""
    from studio.core.compress.distributed import is_main

    return is_main()


def without_option(argv: list[str], option: str) -> list[str]:
    """The command line without `--option VALUE` / `--option=VALUE` (to re-run it under a launcher)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


def stage(job: Job, name: str, total: int) -> Callable[[int, int], None]:
    """Announce a counted stage and return its (done, total) callback."""
    job.stage(name, total)
    return job.stepper(name)


def print_json(data: dict, one_line: bool = False) -> None:
    """One JSON object on stdout, for scripts and CI (one_line: as the last of a stream of JSON lines)."""
    sys.stdout.write(json.dumps(data, indent=None if one_line else 2) + "\n")
