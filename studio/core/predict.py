"""Run a detector over a source with the multithreaded pipeline: `studio predict` and the live demo."""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deploy.errors import UserError
from deploy.runtime.detections import Detections
from deploy.runtime.metadata import load_meta
from deploy.runtime.pipeline import Pipeline, PipelineError
from deploy.runtime.postprocess import NmsConfig
from deploy.runtime.sinks import CallbackSink, ImageSink, JsonLinesSink, Sink, VideoSink
from deploy.runtime.sources import ImageSource, open_source
from deploy.runtime.tiling import merge_tiles, tile_frames
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
    if not Path(req.model).is_file():
        raise UserError(f"{req.model}: no such model file")


def predict(req: PredictRequest, on_result: Callable[[Detections], None] | None = None,
            job: Job | None = None, warn: Callable[[str], None] | None = None) -> PredictSummary:
    """Detect objects in every frame of the source; results go to `on_result` and the --save sink."""
    job = job or Job()
    _validate(req)
    try:
        meta = load_meta(req.model)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    warn = warn or (lambda m: print(f"warning: {m}", file=sys.stderr))
    source = open_source(req.source, warn=warn, max_frames=req.max_frames)
    sinks: list[Sink] = []
    if on_result:
        sinks.append(CallbackSink(on_result))
    saved = None
    if req.save:
        is_video = not isinstance(source, ImageSource)
        saved = str(req.save / "annotated.avi") if is_video else str(req.save)
        if is_video:
            req.save.mkdir(parents=True, exist_ok=True)
        sinks.append(VideoSink(saved, names=meta.names) if is_video else ImageSink(saved, meta.names))
    cfg = NmsConfig(conf=req.conf, iou=req.iou, max_det=req.max_det)
    pool = BackendPool(req.backend, Path(req.model), req.workers)
    pipeline = Pipeline(pool.factory(), meta, cfg, workers=req.workers, live=source.live,
                        keep_images=any(s.needs_images for s in sinks))
    frames = tile_frames(source, req.tile, req.overlap) if req.tile else iter(source)
    count = detections = 0
    job.stage("predict", None, f"{req.backend} x{req.workers}")
    results = pipeline.run(frames)
    try:
        for dets in merge_tiles(results, cfg) if req.tile else results:
            for sink in sinks:
                sink.write(dets)
            count += 1
            detections += len(dets)
            job.step("predict", count, None)
    except PipelineError as exc:
        cause = exc.__cause__
        if isinstance(cause, UserError):
            raise UserError(str(cause)) from None
        raise
    finally:
        results.close()  # stops the pipeline's threads before their backends go away
        for sink in sinks:
            sink.close()
        pool.close()
    stats = pipeline.stats
    return PredictSummary(count, detections, stats.dropped, list(getattr(source, "skipped", [])),
                          round(stats.seconds, 3), round(count / stats.seconds, 2) if stats.seconds else 0.0,
                          {k: round(v, 3) for k, v in stats.stage_ms.items()}, saved)


def json_lines_printer(names: list[str] | None = None) -> Callable[[Detections], None]:
    """on_result that prints one JSON line per frame on stdout."""
    sink = JsonLinesSink(sys.stdout, names)
    return sink.write
