"""A source on this computer, inferred on a board: the pipeline behind `studio predict --board`.

For a scene the board does not hold (or cannot read by windows: no rasterio there), the host
reads the frames or tiles as `studio predict` does and sends them to the board in batches as
PNG files (lossless: the board sees exactly the host's pixels). The board's agent runs each
batch with its workers and streams the detections home, where the run loop merges, journals
and writes them as for a run on this computer, so --features, --labels and --resume work the
same. A batch's folder is removed from the board after its run: the board holds at most one
batch of a scene, whatever the scene's size.
"""
from __future__ import annotations

import posixpath
import tempfile
import time
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

import numpy as np

from deploy.board.images import push_images
from deploy.board.remote_run import RunOptions
from deploy.board.session import quote
from deploy.errors import UserError
from deploy.runtime.detections import Detections
from deploy.runtime.frame import Frame
from deploy.runtime.output import write_image
from deploy.runtime.pipeline import PipelineStats
from deploy.runtime.postprocess import NmsConfig
from studio.core.board import Access, push_model, start_run, stream_run
from studio.core.jobs import Job

BATCH = 64  # frames per round trip: enough to keep three NPU workers busy, few enough to resume cheaply


class BoardPipeline:
    """Pipeline.run's contract (Detections in frame order, `cfg`, `stats`) with the inference on a board."""

    def __init__(self, access: Access, model: Path, backend: str, workers: int, cfg: NmsConfig, job: Job,
                 project: str = "studio", batch: int | None = None):
        batch = batch or BATCH
        self.access, self.model, self.backend, self.workers = access, Path(model), backend, workers
        self.cfg, self.project, self.batch = cfg, project, batch
        self.keep_images = False  # attach each frame to its Detections (a drawing sink asks)
        self.quiet = Job(cancel=job.cancel)  # pushes and streams report nothing of their own: the run's bar counts
        self.stats = PipelineStats()
        self.pushed = None

    def run(self, frames: Iterable[Frame]) -> Iterator[Detections]:
        self.stats = PipelineStats()
        started = time.perf_counter()
        frames = iter(frames)
        try:
            while batch := list(islice(frames, self.batch)):
                for dets in self._on_board(batch):
                    self.stats.add(dets)
                    yield dets
        finally:
            self.stats.finish(time.perf_counter() - started)

    def _on_board(self, batch: list[Frame]) -> list[Detections]:
        """One batch: its frames to the board, run there, their detections home in the batch's order."""
        if self.pushed is None:
            self.pushed = push_model(self.access, self.model, self.project, self.quiet)
        with tempfile.TemporaryDirectory(prefix="studio-board-frames-") as tmp:
            paths = [_as_png(frame, Path(tmp) / f"{k:05d}.png") for k, frame in enumerate(batch)]
            with self.access.open() as board:
                images = push_images(board, paths, self.project, lambda done, total, name: None,
                                     self.quiet.cancel.check)
        place = {name: k for k, name in enumerate(images.names)}
        found: list[Detections | None] = [None] * len(batch)

        def keep(dets: Detections, hello: dict) -> None:
            found[place[posixpath.basename(dets.source)]] = dets

        opts = RunOptions(source=images.folder, backend=self.backend, workers=self.workers, conf=self.cfg.conf,
                          iou=self.cfg.iou, max_det=self.cfg.max_det, multi_label=self.cfg.multi_label,
                          max_frames=len(batch))
        try:
            stream_run(self.access, start_run(self.access, self.pushed, opts), keep, self.quiet,
                       max_frames=len(batch))
        finally:
            with self.access.open() as board:
                board.run("rm -rf -- " + quote(images.folder), check=False)
        missing = [k for k, dets in enumerate(found) if dets is None]
        if missing:
            raise UserError(f"{self.access.board}: the agent ended without results for {len(missing)} of "
                            f"{len(batch)} frames sent; its log: the run folder on the board")
        return [_placed(dets, frame, self.keep_images) for dets, frame in zip(found, batch)]


def _as_png(frame: Frame, path: Path) -> Path:
    import cv2

    write_image(path, cv2.cvtColor(np.ascontiguousarray(frame.image), cv2.COLOR_RGB2BGR))
    return path


def _placed(dets: Detections, frame: Frame, keep_image: bool) -> Detections:
    """The board's detections as the host's pipeline would have given them for `frame`: its index, source and
    tile placement, the board's timings and worker."""
    return Detections(dets.boxes, dets.scores, dets.classes, dict(dets.timings), frame.index, frame.source,
                      frame.extra or None, frame.image if keep_image else None, dets.worker, rboxes=dets.rboxes)
