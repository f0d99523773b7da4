"""Run a detector over a source with the multithreaded pipeline: `studio predict` and the live demo."""
from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from deploy.errors import UserError
from deploy.runtime.detections import Detections
from deploy.runtime.digest import sha256_of
from deploy.runtime.metadata import read_model_meta
from deploy.runtime.output import Output
from deploy.runtime.postprocess import NmsConfig
from deploy.runtime.run_loop import RunLoop
from deploy.runtime.run_options import RUN_OPTIONS
from deploy.runtime.sinks import CallbackSink, ImageSink, JsonLinesSink, Sink, VideoSink
from deploy.runtime.sources import ImageSource, open_source
from deploy.runtime.tile_journal import TileJournal
from studio.core.backend_factory import BackendPool
from studio.core.jobs import Job
from studio.core.map_features import FeatureSink
from studio.core.scene_labels import LabelSink

if TYPE_CHECKING:
    from studio.core.board import Access


BOARD_BACKENDS = ("rknnlite", "ort")  # what a board's agent runs: its NPU, or ONNX Runtime on its CPU


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
    force: bool = False  # replace an existing `save` (or `features`) folder wholly
    bands: tuple[int, int, int] | None = None  # a raster's bands shown as RGB (default 1, 2, 3)
    features: Path | None = None  # folder for map features of each scene: GeoPackage and GeoJSON (map_features.py)
    resume: bool = False  # a tiled run: continue an interrupted one from the tiles it finished
    labels: Path | None = None  # a tiled run: folder for DOTA labels per scene and a YOLO dataset of its tiles
    board: str | None = None  # infer on this board (the host reads the source and sends it frames or tiles)


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
    tiles: int = 0  # with --tile: tiles run (a resumed run counts those it ran now)
    merge_ms: float = 0.0  # with --tile: time spent joining tiles into scenes
    features: list = field(default_factory=list)  # map feature files written per scene
    labels: list = field(default_factory=list)  # per scene: objects and tiles written as training labels

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _source_paths(source: str) -> list[Path]:
    """The files or folders a source reads (a glob: its folder), so --save can never be one of them."""
    path = Path(source)
    if path.exists():
        return [path]
    return [path.parent] if any(ch in source for ch in "*?[") else []


def predict(req: PredictRequest, on_result: Callable[[Detections], None] | None = None,
            job: Job | None = None, warn: Callable[[str], None] | None = None,
            access: Access | None = None) -> PredictSummary:
    """Detect objects in every frame of the source; results go to `on_result` and, with `save`, annotated
    images (or a video) appear in that folder at the end, whole (a cancelled run leaves nothing there).
    A tiled run with an output folder keeps its finished tiles beside it until it is published, so an
    interrupted run resumes (req.resume) and ends with exactly what an uninterrupted one would have written.
    With req.board the frames or tiles are inferred on that board (`access` gets onto it; board_tiles.py)."""
    RUN_OPTIONS.check_fields(req)
    if req.board and req.backend not in BOARD_BACKENDS:
        raise UserError(f"--backend {req.backend} does not run on a board: {' or '.join(BOARD_BACKENDS)}")
    if req.board and req.source.startswith("camera:"):
        raise UserError(f"{req.source} is live: frames sent to a board in batches would arrive late; run the camera "
                        "on the board (studio board run BOARD MODEL --source camera:0)")
    if req.labels and not req.tile:
        raise UserError("--labels writes the tiles of a tiled run: give --tile too (the size to train at)")
    meta = read_model_meta(req.model)
    folders = [path for path in (req.save, req.features, req.labels) if path]
    outputs = [Output(path, force=req.force, inputs=_source_paths(req.source)) for path in folders]
    journal = _journal(req)
    source = open_source(req.source, warn=warn or (lambda m: print(f"warning: {m}", file=sys.stderr)),
                         max_frames=req.max_frames, windowed=bool(req.tile) and not req.save, bands=req.bands,
                         stretches=journal.stretches() if journal else None)
    with contextlib.ExitStack() as stack:
        staged = [stack.enter_context(out) for out in outputs]  # each appears whole at the end, or not at all
        sinks: list[Sink] = []
        saved = None
        if req.save:
            is_video = not isinstance(source, ImageSource)
            sinks.append(VideoSink(str(staged[0] / "annotated.avi"), names=meta.names) if is_video else
                         ImageSink(str(staged[0]), meta.names))
            saved = str(req.save / "annotated.avi") if is_video else str(req.save)
        staging = dict(zip(folders, staged))
        features = FeatureSink(staging[req.features], meta.names) if req.features else None
        labels = LabelSink(staging[req.labels], meta.names, req.tile, req.overlap, scene_reader(source)) \
            if req.labels else None
        summary = _run(req, meta, source, sinks + [s for s in (features, labels) if s], saved, on_result,
                       job or Job(), journal, access or _access(req.board))
        summary.features = [_published(f, staging[req.features], req.features) for f in features.written] \
            if features else []
        summary.labels = [{**entry, "folder": str(req.labels)} for entry in labels.written] if labels else []
    if journal is not None:
        journal.finish()  # published: the tiles kept for a resume are no longer needed
    return summary


def _access(board: str | None) -> Access | None:
    """A board run's way onto the board when the caller gave none: its saved profile, known host key only."""
    if board is None:
        return None
    from studio.core.board import Access

    return Access(board)


def _journal(req: PredictRequest) -> TileJournal | None:
    """Where a tiled run with an output folder keeps its finished tiles: beside that folder, named after it."""
    dest = req.features or req.save or req.labels
    if not req.tile or dest is None:
        if req.resume:
            raise UserError("--resume continues a tiled run (--tile) that writes --features, --labels or --save: "
                            "those keep its finished tiles")
        return None
    manifest = {"model": sha256_of(Path(req.model)), "source": _source_identity(req.source), "backend": req.backend,
                "tile": req.tile, "overlap": req.overlap, "conf": req.conf, "iou": req.iou, "max_det": req.max_det,
                "bands": list(req.bands) if req.bands else None,
                "outputs": [str(p) for p in (req.save, req.features, req.labels)], "board": req.board}
    return TileJournal.open(Path(dest).parent / f".{Path(dest).name}.tiles", manifest, req.resume, req.force)


def _source_identity(source: str) -> list:
    """A source as a resumed run must find it: the spec, and a file's size and modification time."""
    path = Path(source)
    if path.is_file():
        stat = path.stat()
        return [source, stat.st_size, stat.st_mtime_ns]
    return [source]


def scene_reader(source) -> Callable[[str], object]:
    """Opens a scene the run has read again, as it read it: a raster by windows with the same bands and
    stretch, another image decoded whole (RGB)."""
    def read(path: str):
        settings = next((r for r in getattr(source, "rasters", []) if r["path"] == path), None)
        if settings is not None:
            from deploy.runtime.raster import RasterImage

            return RasterImage(path, settings["bands"], settings["stretch"])
        import cv2

        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise UserError(f"{path}: could not be read again for its tiles")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return read


def _published(entry: dict, staging: Path, final: Path) -> dict:
    """A written feature entry with its paths where they will be once the output is published."""
    return {k: str(final / Path(v).relative_to(staging)) if k in ("gpkg", "geojson") else v for k, v in entry.items()}


def _run(req: PredictRequest, meta, source, sinks: list[Sink], saved: str | None,
         on_result: Callable[[Detections], None] | None, job: Job, journal: TileJournal | None,
         access: Access | None) -> PredictSummary:
    sinks = ([CallbackSink(on_result)] if on_result else []) + sinks
    cfg = NmsConfig(conf=req.conf, iou=req.iou, max_det=req.max_det)
    progress = TileProgress(job) if req.tile else None
    if access is not None:
        from studio.core.board_tiles import BoardPipeline

        board = BoardPipeline(access, Path(req.model), req.backend, req.workers, cfg, job)
        loop = RunLoop(None, meta, cfg, tile=req.tile, overlap=req.overlap, sinks=sinks, journal=journal,
                       on_result=progress, pipeline=board)
    else:
        pool = BackendPool(req.backend, Path(req.model), req.workers)
        loop = RunLoop(pool.factory(), meta, cfg, workers=req.workers, live=source.live, tile=req.tile,
                       overlap=req.overlap, sinks=sinks, close=pool.close, journal=journal, on_result=progress)
    count = detections = 0
    merge_ms = 0.0
    job.stage("predict", None, f"{req.backend} x{req.workers}")
    for dets in loop.results(source):
        count += 1
        detections += len(dets)
        merge_ms += dets.timings.get("merge", 0.0)
        job.step("predict", count, None)
    stats = loop.stats
    return PredictSummary(count, detections, stats.dropped, list(getattr(source, "skipped", [])),
                          round(stats.seconds, 3), round(count / stats.seconds, 2) if stats.seconds else 0.0,
                          {k: round(v, 3) for k, v in stats.stage_ms.items()}, saved,
                          list(getattr(source, "rasters", [])), stats.frames if req.tile else 0, round(merge_ms, 1))


def json_lines_printer(names: list[str] | None = None) -> Callable[[Detections], None]:
    """on_result that prints one JSON line per frame on stdout."""
    sink = JsonLinesSink(sys.stdout, names)
    return sink.write


class TileProgress:
    """The tiles of the current scene as a progress bar, with tiles/s (tiles a resumed run had done count as
    done, not in the rate)."""

    def __init__(self, job: Job):
        self.job, self.started, self.run = job, time.perf_counter(), 0

    def __call__(self, dets: Detections) -> None:
        self.run += bool(dets.timings)  # a recorded tile carries no timings: it was not run now
        rate = self.run / max(time.perf_counter() - self.started, 1e-9)
        self.job.step("tiles", dets.tile["tile"] + 1, dets.tile["tiles"],
                      f"{Path(dets.source).name}: {rate:.1f} tiles/s")
