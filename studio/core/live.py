"""A live inference session: the pipeline over a source, pausable, steppable, with thresholds that change live.

Qt-free, so the GUI's live panel is a thin view over it (and the board agent can reuse it).

    session = LiveSession(LiveRequest(model, "camera:0", workers=2))
    session.run(on_frame)   # blocks; call session.stop() / pause() / step() from another thread
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from deploy.errors import UserError
from deploy.runtime.detections import Detections
from deploy.runtime.frame import Frame
from deploy.runtime.metadata import load_meta
from deploy.runtime.pipeline import Pipeline
from deploy.runtime.postprocess import NmsConfig
from deploy.runtime.sinks import VideoSink
from deploy.runtime.sources import open_source
from deploy.runtime.tiling import merge_tiles, tile_frames, tile_grid
from studio.core.backend_factory import BackendPool


@dataclass
class LiveRequest:
    model: Path
    source: str
    backend: str = "ort"
    workers: int = 1
    tile: int | None = None
    overlap: float = 0.2
    conf: float = 0.25
    iou: float = 0.45
    loop: bool = True  # start a finished image folder or video again
    record: Path | None = None  # an annotated .avi


@dataclass
class LiveStats:
    """What the panel shows besides the frame (with tiles, the pipeline's unit is a tile)."""

    frames: int  # pipeline results so far (frames, or tiles)
    fps: float  # pipeline results per second over the last two seconds
    stage_ms: dict  # of the latest pipeline result
    dropped: int
    worker_busy: dict  # worker -> fraction of the recent wall time spent on frames
    recent_workers: list  # which worker produced each of the latest results, oldest first


class LiveMeter:
    """Frames/s, per-stage ms and worker occupancy over the last two seconds of results (local or remote)."""

    def __init__(self) -> None:
        self._recent: deque = deque(maxlen=120)  # (time, worker, busy seconds, timings)

    def add(self, dets: Detections) -> None:
        busy = sum(dets.timings.get(k, 0.0) for k in ("preprocess", "infer", "postprocess")) / 1e3
        self._recent.append((time.perf_counter(), dets.worker, busy, dict(dets.timings)))

    def stats(self, frames: int, dropped: int) -> LiveStats:
        now = time.perf_counter()
        window = [r for r in self._recent if now - r[0] <= 2.0]
        span = now - window[0][0] if len(window) > 1 else 0.0
        fps = (len(window) - 1) / span if span > 0 else 0.0
        per_worker: dict[int, float] = {}
        for _, worker, seconds, _ in window:
            per_worker[worker] = per_worker.get(worker, 0.0) + seconds
        busy = {w: min(1.0, s / span) if span > 0 else 0.0 for w, s in sorted(per_worker.items())}
        latest = self._recent[-1][3] if self._recent else {}
        return LiveStats(frames, round(fps, 1), latest, dropped, busy, [r[1] for r in list(self._recent)[-48:]])


def model_meta(model: Path):
    """The sidecar of an exported model, or a one-line UserError (no file, no or another sidecar)."""
    if not Path(model).is_file():
        raise UserError(f"{model}: no such model file")
    try:
        return load_meta(model)
    except ValueError as exc:
        raise UserError(str(exc)) from None


class LiveSession:
    """Runs until the source ends (without loop) or stop(); pause()/resume()/step() gate the frames."""

    def __init__(self, req: LiveRequest):
        self.meta = model_meta(req.model)
        self.req = req
        self.source = open_source(req.source, warn=lambda m: None)
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._steps = threading.Semaphore(0)
        self.meter = LiveMeter()
        self.pipeline: Pipeline | None = None
        self.tile_grid: list[tuple[int, int, int]] = []  # (x, y, size) of the tiles of the current scene

    def set_thresholds(self, conf: float, iou: float) -> None:
        """Takes effect from the next frame a worker starts."""
        self.req = replace(self.req, conf=conf, iou=iou)
        if self.pipeline is not None:
            self.pipeline.cfg = NmsConfig(conf=conf, iou=iou)

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def step(self) -> None:
        """While paused, let exactly one more frame through (ignored while running)."""
        if self.paused:
            self._steps.release()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()
        self._steps.release()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def _gated(self, frames: Iterator[Frame]) -> Iterator[Frame]:
        for frame in frames:
            while not self._running.is_set() and not self._stop.is_set():
                if self._steps.acquire(timeout=0.05):
                    break
            if self._stop.is_set():
                return
            yield frame

    def _until_stopped(self, tiles: Iterator[Frame]) -> Iterator[Frame]:
        """Tiles until stop(): a large scene need not finish all its tiles before the session ends."""
        for tile in tiles:
            if self._stop.is_set():
                return
            yield tile

    def _frames(self) -> Iterator[Frame]:
        index = 0
        while not self._stop.is_set():
            produced = False
            for frame in self.source:
                produced = True
                yield Frame(frame.image, index, frame.source, frame.read_ms)
                index += 1
                if self._stop.is_set():
                    return
            if not (self.req.loop and produced) or self.source.live:
                return

    def run(self, on_frame: Callable[[Detections, LiveStats], None]) -> LiveStats:
        """Process frames until stopped; on_frame gets each result (in order) with fresh stats."""
        pool = BackendPool(self.req.backend, Path(self.req.model), self.req.workers)
        cfg = NmsConfig(conf=self.req.conf, iou=self.req.iou)
        self.pipeline = Pipeline(pool.factory(), self.meta, cfg, workers=self.req.workers, live=self.source.live,
                                 keep_images=True)
        frames = self._gated(self._frames())
        if self.req.tile:
            frames = self._until_stopped(tile_frames(frames, self.req.tile, self.req.overlap))
        sink = VideoSink(str(self.req.record), names=self.meta.names) if self.req.record else None
        stats = LiveStats(0, 0.0, {}, 0, {}, [])
        running = self.pipeline.run(frames)
        try:
            results = self._observe(running)
            for dets in merge_tiles(results, self.pipeline.cfg) if self.req.tile else results:
                if self.req.tile:
                    self.tile_grid = tile_grid(*dets.image.shape[:2], self.req.tile, self.req.overlap)
                if self._stop.is_set():  # a scene cut short by stop() is not shown as if it were whole
                    break
                stats = self._stats()
                if sink:
                    sink.write(dets)
                on_frame(dets, stats)
                if self._stop.is_set():
                    break
        finally:
            self._stop.set()
            running.close()  # stops the pipeline's threads before their backends go away
            if sink:
                sink.close()
            pool.close()
        return stats

    def _observe(self, results: Iterator[Detections]) -> Iterator[Detections]:
        """Note when and by which worker each pipeline result (frame or tile) was produced."""
        for dets in results:
            self.meter.add(dets)
            yield dets

    def _stats(self) -> LiveStats:
        return self.meter.stats(self.pipeline.stats.frames, self.pipeline.stats.dropped)
