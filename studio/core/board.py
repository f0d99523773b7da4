"""Boards from the studio's side: open a checked SSH session, push with progress, run and stream, stop.

The CLI (`studio board ...`) and the GUI's Deploy page both call these; the SSH, protocol
and agent details live in deploy/board.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deploy.board.profiles import BoardStore
from deploy.board.push import PushResult, push
from deploy.board.remote_run import AgentRun, AgentStream, RunOptions, start_agent, stop_agent
from deploy.board.session import BoardSession
from deploy.errors import UserError
from deploy.runtime.atomic import write_text_atomic
from deploy.runtime.detections import Detections
from deploy.runtime.pipeline import LATENCY_KEYS
from studio.core.jobs import Job


@dataclass
class Access:
    """How to get onto a board this run: trust an unknown host key (True, or only this fingerprint), a password."""

    board: str
    trust: bool | str = False
    password: str | None = field(default=None, repr=False)  # asked once per run; held in memory only
    store: BoardStore | None = None

    def open(self) -> BoardSession:
        store = self.store or BoardStore()
        return BoardSession.open(store.get(self.board), store, trust=self.trust, password=self.password)


def push_model(access: Access, model: Path, project: str, job: Job) -> PushResult:
    """Push the runtime and the model, showing bytes sent; cancellable between blocks (resumes next time)."""
    job.stage("push", None, f"to {access.board}")
    with access.open() as board:
        return push(board, Path(model), project,
                    progress=lambda done, total, name: job.step("push", done, total, _mib(done, total)),
                    check_cancel=job.cancel.check)


def _mib(done: int, total: int) -> str:
    return f"{done / 2**20:.1f} of {total / 2**20:.1f} MiB"


def _runs_file(store: BoardStore, board: str) -> Path:
    folder = store.home / "runs"
    folder.mkdir(exist_ok=True)
    return folder / f"{board}.json"


def remember_run(store: BoardStore, run: AgentRun) -> None:
    """The last agent started on a board, so `studio board stream/stop` find it."""
    write_text_atomic(_runs_file(store, run.board), json.dumps(run.to_dict(), indent=2), mode=0o600)


def last_run(store: BoardStore, board: str) -> AgentRun:
    path = _runs_file(store, board)
    if not path.exists():
        raise UserError(f"no agent was started on {board} from here; start one with: studio board run {board} MODEL "
                        "--source SOURCE --detach")
    return AgentRun(**json.loads(path.read_text()))


def start_run(access: Access, pushed: PushResult, opts: RunOptions) -> AgentRun:
    with access.open() as board:
        run = start_agent(board, pushed, opts)
    remember_run(access.store or BoardStore(), run)
    return run


def stop_run(access: Access, run: AgentRun) -> None:
    with access.open() as board:
        stop_agent(board, run)


@dataclass
class StreamSummary:
    frames: int
    detections: int
    seconds: float
    fps: float  # as received on the host
    reconnects: int
    agent: dict | None  # the agent's own pipeline stats (None when stopped before the end)
    hello: dict | None
    features: list = field(default_factory=list)  # with --features: the map feature files of each scene

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def stream_run(access: Access, run: AgentRun, on_result: Callable[[Detections, dict], None], job: Job,
               max_frames: int | None = None, stop_when_done: bool = True,
               on_stream: Callable[[AgentStream], None] | None = None) -> StreamSummary:
    """Receive results until the agent ends, max_frames arrive or the job is cancelled; then stop the agent.

    on_result gets each Detections and the agent's hello (class names, workers, backend).
    """
    stream = AgentStream(access.open, run)
    if on_stream:
        on_stream(stream)  # lets a caller (the GUI) change thresholds or stop the stream from another thread
    job.stage("stream", max_frames, f"from {run.board}")
    frames = detections = 0
    started = time.perf_counter()
    try:
        for dets in stream:
            frames += 1
            detections += len(dets)
            on_result(dets, stream.hello or {})
            job.step("stream", frames, max_frames, f"{frames} frames")
            if max_frames and frames >= max_frames:
                break
    finally:
        if stop_when_done:
            stream.stop()
            stop_run(access, run)
    seconds = time.perf_counter() - started
    return StreamSummary(frames, detections, round(seconds, 3), round(frames / seconds, 2) if seconds else 0.0,
                         stream.reconnects, stream.stats, stream.hello)


@dataclass
class BenchRequest:
    board: str
    model: Path
    source: str  # on the board; a short folder is read in a loop until `frames` are done
    workers: tuple[int, ...] = (1, 2, 3)
    frames: int = 200
    backend: str = "rknnlite"
    project: str = "studio"


def bench_board(access: Access, req: BenchRequest, job: Job) -> dict:
    """Frames/s and per-stage ms measured by the agent on the board, for each worker count, in one run."""
    if not req.workers or min(req.workers) < 1:
        raise UserError("--workers takes counts of at least 1, e.g. 1,2,3")
    if req.frames < 10:
        raise UserError("--frames must be at least 10")
    pushed = push_model(access, req.model, req.project, job)
    runs = []
    for workers in req.workers:
        opts = RunOptions(req.source, req.backend, workers, max_frames=req.frames, loop=True)
        run = start_run(access, pushed, opts)
        summary = stream_run(access, run, lambda dets, hello: None, job)  # the agent ends after req.frames
        agent = summary.agent or {}
        # steady_fps leaves out the seconds the workers spent loading the model before the first frame
        runs.append({"workers": workers, "fps": agent.get("steady_fps") or agent.get("fps"),
                     "fps_with_start": agent.get("fps"), "stage_ms": agent.get("stage_ms"),
                     **{k: agent.get(k) for k in LATENCY_KEYS},
                     "frames": agent.get("frames"), "received_fps": summary.fps})
    base = runs[0]["fps"] or 0.0
    for entry in runs:
        entry["speedup"] = round(entry["fps"] / base, 3) if base and entry["fps"] else None
    return {"board": access.board, "model": Path(req.model).name, "backend": req.backend, "source": req.source,
            "frames": req.frames, "measured": f"on the board by its agent ({req.backend})", "runs": runs}


def install_service(access: Access, model: Path, opts: RunOptions, project: str, job: Job) -> dict:
    """Push the model and set it up as a service on the board (replacing the project's earlier one)."""
    from deploy.board import service

    pushed = push_model(access, model, project, job)
    job.stage("install", None, f"on {access.board}")
    with access.open() as board:
        return service.install_service(board, pushed, opts, project)


def on_service(access: Access, project: str, work: Callable) -> object:
    """Run `work(board, project_dir)` in a session, for the service's status, logs, stream and removal."""
    from deploy.board.push import project_dir

    with access.open() as board:
        return work(board, project_dir(board, project))
