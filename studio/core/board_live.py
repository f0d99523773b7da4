"""The live panel on a board: push, start the agent, and show its stream exactly like a local live session.

BoardLiveSession has LiveSession's interface (run, stop, pause, resume, step, set_thresholds,
meta, tile_grid), so the GUI's live panel drives either without knowing which; pause, step
and thresholds travel to the agent, where the frames are read.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deploy.board.remote_run import AgentStream, RunOptions
from deploy.runtime.detections import Detections
from deploy.runtime.metadata import read_model_meta
from studio.core.board import Access, push_model, start_run, stop_run
from studio.core.jobs import CancelToken, Job
from studio.core.live import LiveMeter, LiveStats


@dataclass
class BoardLiveRequest:
    board: str
    model: Path  # the exported model here; it is pushed (if changed) before the run
    source: str  # on the board: camera:N, a video, an image folder
    backend: str = "rknnlite"  # or ort (the board's CPU)
    workers: int = 3
    conf: float = 0.25
    iou: float = 0.45
    jpeg_quality: int = 80
    project: str = "studio"
    trust: bool | str = False


class BoardLiveSession:
    def __init__(self, req: BoardLiveRequest):
        self.meta = read_model_meta(req.model)
        self.req = req
        self.tile_grid: list = []
        self.meter = LiveMeter()
        self.stream: AgentStream | None = None
        self._cancel = CancelToken()
        self._paused = False
        self._lock = threading.Lock()

    @property
    def paused(self) -> bool:
        return self._paused

    def _tell(self, kind: str, **fields) -> None:
        with self._lock:
            if self.stream is not None:
                self.stream.tell(kind, **fields)

    def pause(self) -> None:
        self._paused = True
        self._tell("pause")

    def resume(self) -> None:
        self._paused = False
        self._tell("resume")

    def step(self) -> None:
        if self._paused:
            self._tell("step")

    def set_thresholds(self, conf: float, iou: float) -> None:
        self.req.conf, self.req.iou = conf, iou
        self._tell("thresholds", conf=conf, iou=iou)

    def stop(self) -> None:
        self._cancel.cancel()
        with self._lock:
            if self.stream is not None:
                self.stream.stop()

    def run(self, on_frame: Callable[[Detections, LiveStats], None]) -> LiveStats:
        """Push, start, stream until stopped or the source ends; the agent is ended in every case."""
        req, job = self.req, Job(cancel=self._cancel)
        access = Access(req.board, trust=req.trust)
        pushed = push_model(access, req.model, req.project, job)
        opts = RunOptions(req.source, req.backend, req.workers, conf=req.conf, iou=req.iou,
                          jpeg_quality=req.jpeg_quality, loop=True)
        run = start_run(access, pushed, opts)
        stats = LiveStats(0, 0.0, {}, 0, {}, [])
        try:
            with self._lock:
                self.stream = AgentStream(access.open, run)
                if self._cancel.cancelled:
                    self.stream.stop()
            frames = 0
            for dets in self.stream:
                frames += 1
                self.meter.add(dets)
                stats = self.meter.stats(frames, 0)
                on_frame(dets, stats)
        finally:
            with self._lock:
                if self.stream is not None:
                    self.stream.stop()
            stop_run(access, run)
        return stats
