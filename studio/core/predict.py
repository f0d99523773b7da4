"""Run a detector over a source with the multithreaded pipeline: `studio predict` and the live demo."""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deploy.runtime.detections import Detections
from deploy.runtime.metadata import read_model_meta
from deploy.runtime.output import Output
from deploy.runtime.postprocess import NmsConfig
from deploy.runtime.run_loop import RunLoop
from deploy.runtime.run_options import RUN_OPTIONS
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
    force: bool = False  # replace an existing `save` folder wholly


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
    rasters: list = field(default_factory=list)  # rasters read by windows: path, bands, stretch (to rerun alike)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _source_paths(source: str) -> list[Path]:
    """The files or folders a source reads (a glob: its folder), so --save can never be one of them."""
    path = Path(source)
    if path.exists():
        return [path]
    return [path.parent] if any(ch in source for ch in "*?[") else []


def predict(req: PredictRequest, on_result: Callable[[Detections], None] | None = None,
            job: Job | None = None, warn: Callable[[str], None] | None = None) -> PredictSummary:
    """Detect objects in every frame of the source; results go to `on_result` and, with `save`, annotated
    images (or a video) appear in that folder at the end, whole (a cancelled run leaves nothing there)."""
    RUN_OPTIONS.check_fields(req)
    meta = read_model_meta(req.model)
    source = open_source(req.source, warn=warn or (lambda m: print(f"warning: {m}", file=sys.stderr)),
                         max_frames=req.max_frames, windowed=bool(req.tile) and not req.save)
    if not req.save:
        return _run(req, meta, source, [], None, on_result, job or Job())
    is_video = not isinstance(source, ImageSource)
    with Output(req.save, force=req.force, inputs=_source_paths(req.source)) as staging:
        sink = VideoSink(str(staging / "annotated.avi"), names=meta.names) if is_video else ImageSink(
            str(staging), meta.names)
        saved = str(req.save / "annotated.avi") if is_video else str(req.save)
        return _run(req, meta, source, [sink], saved, on_result, job or Job())


def _run(req: PredictRequest, meta, source, sinks: list[Sink], saved: str | None,
         on_result: Callable[[Detections], None] | None, job: Job) -> PredictSummary:
    sinks = ([CallbackSink(on_result)] if on_result else []) + sinks
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
                          {k: round(v, 3) for k, v in stats.stage_ms.items()}, saved,
                          list(getattr(source, "rasters", [])))


def json_lines_printer(names: list[str] | None = None) -> Callable[[Detections], None]:
    """on_result that prints one JSON line per frame on stdout."""
    sink = JsonLinesSink(sys.stdout, names)
    return sink.write
