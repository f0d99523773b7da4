"""The one run loop: frames -> gate (pause, step, stop) -> tiles -> pipeline -> tile merge -> sinks -> close.

predict, the live session, evaluation, the pipeline benchmark and the board agent all run
frames through here; nothing else builds a Pipeline. The loop yields final results (whole
scenes when tiling) in order, writes them to its sinks, and when the iteration ends, however
it ends, stops the pipeline's threads before closing sinks and backends.

    loop = RunLoop(backends, meta, NmsConfig(conf=0.3), workers=2, tile=512, sinks=[ImageSink("out")])
    for dets in loop.results(frames):
        ...
    print(loop.stats.fps)
"""
import threading
from collections.abc import Iterable, Iterator
from typing import Callable, Optional

from deploy.errors import UserError
from deploy.runtime.backends import Backend
from deploy.runtime.detections import Detections
from deploy.runtime.frame import Frame
from deploy.runtime.heads import head_for
from deploy.runtime.metadata import ModelMeta
from deploy.runtime.pipeline import POLL_S, Pipeline, PipelineError, PipelineStats
from deploy.runtime.postprocess import NmsConfig
from deploy.runtime.sinks import Sink
from deploy.runtime.tile_journal import TileJournal
from deploy.runtime.tiling import merge_tiles, tile_frames


class Gate:
    """Pause, single-step and stop for a running loop, callable from any thread."""

    def __init__(self) -> None:
        self._running = threading.Event()
        self._running.set()
        self._stop = threading.Event()
        self._steps = threading.Semaphore(0)

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

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def frames(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        """Pass frames on while running; while paused, one per step(); none after stop()."""
        for frame in frames:
            while not self._running.is_set() and not self._stop.is_set():
                if self._steps.acquire(timeout=POLL_S):
                    break
            if self._stop.is_set():
                return
            yield frame

    def until_stopped(self, items: Iterable) -> Iterator:
        """Items until stop(): a large scene need not cut all its tiles before the run ends."""
        for item in items:
            if self._stop.is_set():
                return
            yield item


def replayed(source, loop: bool, gate: Gate, max_frames: Optional[int] = None) -> Iterator[Frame]:
    """The source's frames numbered 0, 1, 2, ...; with loop, a finished folder or video starts again
    (a live source never does); ends at stop() or after max_frames."""
    index = 0
    while not gate.stopped:
        produced = False
        for frame in source:
            produced = True
            yield Frame(frame.image, index, frame.source, frame.read_ms)
            index += 1
            if gate.stopped or (max_frames and index >= max_frames):
                return
        if not (loop and produced) or source.live:
            return


class RunLoop:
    """One run of a model over frames. `cfg` may be replaced while it runs (thresholds from a slider):
    workers and the tile merge use the new one from their next frame or scene. `pipeline` runs the frames
    elsewhere under Pipeline's contract (run, cfg, stats, keep_images): studio's board pipeline."""

    def __init__(self, backends: Optional[Callable[[int], Backend]], meta: ModelMeta, cfg: NmsConfig = NmsConfig(),
                 workers: int = 1, live: bool = False, tile: Optional[int] = None, overlap: float = 0.2,
                 sinks: Iterable[Sink] = (), gate: Optional[Gate] = None, keep_images: bool = False,
                 on_result: Optional[Callable[[Detections], None]] = None, close: Callable[[], None] = lambda: None,
                 scene_max_det: Optional[int] = None, journal: Optional[TileJournal] = None,
                 pipeline: Optional[Pipeline] = None):
        try:
            head_for(meta)  # a task or layout this runtime cannot decode fails here, as one line
        except ValueError as exc:
            raise UserError(str(exc)) from None
        self.sinks = list(sinks)
        keep_images = keep_images or any(s.needs_images for s in self.sinks)
        if pipeline is None:
            pipeline = Pipeline(backends, meta, cfg, workers=workers, live=live, keep_images=keep_images)
        else:  # the same contract run elsewhere (a board); backends and workers are its own
            pipeline.keep_images = pipeline.keep_images or keep_images
        self.pipeline = pipeline
        self.tile, self.overlap, self.scene_max_det = tile, overlap, scene_max_det
        self.journal = journal  # tiles finished by an earlier, interrupted run (and this run's, as they finish)
        self.gate = gate or Gate()
        self.on_result = on_result  # each pipeline result (a frame, or a tile before merging)
        self._close = close

    @property
    def cfg(self) -> NmsConfig:
        return self.pipeline.cfg

    @cfg.setter
    def cfg(self, cfg: NmsConfig) -> None:
        self.pipeline.cfg = cfg

    @property
    def stats(self) -> PipelineStats:
        return self.pipeline.stats

    def results(self, frames: Iterable[Frame]) -> Iterator[Detections]:
        """Final results in frame order, each already written to the sinks; after stop() nothing more is
        written or yielded (a scene cut short is not passed off as whole). Everything is closed when the
        iteration ends."""
        frames = self.gate.frames(frames)
        if self.tile:
            frames = self.gate.until_stopped(tile_frames(frames, self.tile, self.overlap,
                                                         self.journal.has if self.journal else None))
        running = self.journal.resumed(frames, self.pipeline.run) if self.journal else self.pipeline.run(frames)
        try:
            observed = self._observed(running)
            for dets in merge_tiles(observed, lambda: self.pipeline.cfg, self.scene_max_det) if self.tile else observed:
                if self.gate.stopped:  # e.g. a scene cut short: never written or shown as if whole
                    break
                for sink in self.sinks:
                    sink.write(dets)
                yield dets
        except PipelineError as exc:
            if isinstance(exc.__cause__, UserError):  # a backend's one-line message (a model it cannot load)
                raise UserError(str(exc.__cause__)) from None
            raise
        finally:
            running.close()  # stops the pipeline's threads before their backends go away
            try:
                for sink in self.sinks:
                    sink.close()
            finally:
                self._close()

    def _observed(self, results: Iterator[Detections]) -> Iterator[Detections]:
        for dets in results:
            if self.on_result is not None:
                self.on_result(dets)
            yield dets
