"""Run a detector over a source with the multithreaded pipeline: `studio predict` and the live demo."""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deploy.errors import UserError
from deploy.runtime.detections import Detections
from deploy.runtime.metadata import read_model_meta
from deploy.runtime.postprocess import NmsConfig
from deploy.runtime.run_loop import RunLoop
from deploy.runtime.sinks import CallbackSink, ImageSink, JsonLinesSink, Sink, VideoSink
from deploy.runtime.sources import ImageSource, open_source
from studio.core.backend_factory import BackendPool
from studio.core.jobs import Job


@dataclass
class PredictRequest:
    """Options of `studio predict`."""

    model: Path  # .onnx for ort, .rknn for rknn-sim / rknnlite; its sidecar says how to run it
    source: str  # image, folder, glob, video or camera:N
    backend: str = "ort"
    workers: int = 1
    tile: int | None = None  # cut large images into tiles of this size
    overlap: float = 0.2  # tile overlap fraction
    conf: float = 0.25
    iou: float = 0.45
    max_det: int = 300
    save: Path | None = None  # folder for annotated images (or a video for video sources)
    max_frames: int | None = None


@dataclass
class PredictSummary:
    frames: int
    detections: int
    dropped: int
    skipped: list[str]
    seconds: float
    fps: float
    stage_ms: dict
    saved: str | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _validate(req: PredictRequest) -> None:
    if req.workers < 1:
        raise UserError("--workers must be at least 1")
    if not 0 <= req.overlap < 1:
        raise UserError(f"--overlap {req.overlap} must be in [0, 1)")
    if req.tile is not None and req.tile < 64:
        raise UserError(f"--tile {req.tile} is too small (at least 64)")


def predict(req: PredictRequest, on_result: Callable[[Detections], None] | None = None,
            job: Job | None = None, warn: Callable[[str], None] | None = None) -> PredictSummary:
    """Detect objects in every frame of the source; results go to `on_result` and the --save sink."""
    job = job or Job()
    _validate(req)
    meta = read_model_meta(req.model)
    warn = warn or (lambda m: print(f"warning: {m}", file=sys.stderr))
    source = open_source(req.source, warn=warn, max_frames=req.max_frames)
    sinks: list[Sink] = [CallbackSink(on_result)] if on_result else []
    saved = None
    if req.save:
        is_video = not isinstance(source, ImageSource)
        saved = str(req.save / "annotated.avi") if is_video else str(req.save)
        if is_video:
            req.save.mkdir(parents=True, exist_ok=True)
        sinks.append(VideoSink(saved, names=meta.names) if is_video else ImageSink(saved, meta.names))
    pool = BackendPool(req.backend, Path(req.model), req.workers)
    loop = RunLoop(pool.factory(), meta, NmsConfig(conf=req.conf, iou=req.iou, max_det=req.max_det),
                   workers=req.workers, live=source.live, tile=req.tile, overlap=req.overlap, sinks=sinks,
                   close=pool.close)
    count = detections = 0
    job.stage("predict", None, f"{req.backend} x{req.workers}")
    for dets in loop.results(source):
        count += 1
        detections += len(dets)
        job.step("predict", count, None)
    stats = loop.stats
    return PredictSummary(count, detections, stats.dropped, list(getattr(source, "skipped", [])),
                          round(stats.seconds, 3), round(count / stats.seconds, 2) if stats.seconds else 0.0,
                          {k: round(v, 3) for k, v in stats.stage_ms.items()}, saved)


def json_lines_printer(names: list[str] | None = None) -> Callable[[Detections], None]:
    """on_result that prints one JSON line per frame on stdout."""
    sink = JsonLinesSink(sys.stdout, names)
    return sink.write
