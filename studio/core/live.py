"""A live inference session: the pipeline over a source, pausable, steppable, with thresholds that change live.

Qt-free, so the GUI's live panel is a thin view over it (and the board agent can reuse it).

    session = LiveSession(LiveRequest(model, "camera:0", workers=2))
    session.run(on_frame)   # blocks; call session.stop() / pause() / step() from another thread
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from deploy.runtime.detections import Detections
from deploy.runtime.metadata import read_model_meta
from deploy.runtime.pipeline import percentiles
from deploy.runtime.postprocess import NmsConfig
from deploy.runtime.run_loop import Gate, RunLoop, replayed
from deploy.runtime.sinks import VideoSink
from deploy.runtime.sources import open_source
from deploy.runtime.tiling import tile_grid
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
    latency_ms: dict = field(default_factory=dict)  # p50/p95/p99 from read to result over the last two seconds


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
        latency = percentiles(r[3]["latency"] for r in window if "latency" in r[3])
        return LiveStats(frames, round(fps, 1), latest, dropped, busy, [r[1] for r in list(self._recent)[-48:]],
                         latency)


class LiveSession:
    """Runs until the source ends (without loop) or stop(); pause()/resume()/step() gate the frames."""

    def __init__(self, req: LiveRequest):
        self.meta = read_model_meta(req.model)
        self.req = req
        self.source = open_source(req.source, warn=lambda m: None, windowed=bool(req.tile))  # rasters by windows
        self.gate = Gate()
        self.meter = LiveMeter()
        self.loop: RunLoop | None = None
        self.tile_grid: list[tuple[int, int, int]] = []  # (x, y, size) of the tiles of the current scene
        self.on_tile: Callable[[Detections], None] | None = None  # each tile's detections as it finishes

    def set_thresholds(self, conf: float, iou: float) -> None:
        """Takes effect from the next frame a worker starts (and the next scene the tile merge joins)."""
        self.req = replace(self.req, conf=conf, iou=iou)
        if self.loop is not None:
            self.loop.cfg = NmsConfig(conf=conf, iou=iou)

    def pause(self) -> None:
        self.gate.pause()

    def resume(self) -> None:
        self.gate.resume()

    def step(self) -> None:
        """While paused, let exactly one more frame through (ignored while running)."""
        self.gate.step()

    def stop(self) -> None:
        self.gate.stop()

    @property
    def paused(self) -> bool:
        return self.gate.paused

    @property
    def pipeline(self):
        """The running pipeline (its stats count pipeline results: frames, or tiles)."""
        return self.loop.pipeline if self.loop is not None else None

    def run(self, on_frame: Callable[[Detections, LiveStats], None]) -> LiveStats:
        """Process frames until stopped; on_frame gets each result (in order) with fresh stats."""
        pool = BackendPool(self.req.backend, Path(self.req.model), self.req.workers)
        self.loop = RunLoop(pool.factory(), self.meta, NmsConfig(conf=self.req.conf, iou=self.req.iou),
                            workers=self.req.workers, live=self.source.live, tile=self.req.tile,
                            overlap=self.req.overlap, gate=self.gate, keep_images=True,
                            sinks=[VideoSink(str(self.req.record), names=self.meta.names)] if self.req.record else [],
                            on_result=self._observe, close=pool.close)
        stats = LiveStats(0, 0.0, {}, 0, {}, [])
        try:
            for dets in self.loop.results(replayed(self.source, self.req.loop, self.gate)):
                if self.req.tile:
                    self.tile_grid = tile_grid(*dets.image.shape[:2], self.req.tile, self.req.overlap)
                stats = self._stats()
                on_frame(dets, stats)
                if self.gate.stopped:
                    break
        finally:
            self.gate.stop()
        return stats

    def _observe(self, dets: Detections) -> None:
        self.meter.add(dets)
        if self.on_tile is not None and dets.tile:
            self.on_tile(dets)

    def _stats(self) -> LiveStats:
        return self.meter.stats(self.loop.stats.frames, self.loop.stats.dropped)
