"""A source on this computer, inferred on a board: the pipeline behind `studio predict --board`.

For a scene the board does not hold (or cannot read by windows: no rasterio there), the host
reads the frames or tiles as `studio predict` does and sends them to the board in batches as
PNG files (lossless: the board sees exactly the host's pixels). The board's agent runs each
batch with its workers and streams the detections home, where the run loop merges, journals
and writes them as for a run on this computer, so --features, --labels and --resume work the
same. A batch's folder is removed from the board after its run; the next batch is read and sent
while the board runs the current one, so the board holds at most two batches of a scene,
whatever the scene's size, and the link and the NPU work at the same time.
"""
from __future__ import annotations

import posixpath
import tempfile
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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
        with ThreadPoolExecutor(1, thread_name_prefix="board-send") as sender:
            sending = sender.submit(self._send, frames)
            try:
                while (sent := sending.result()) is not None:
                    sending = sender.submit(self._send, frames)  # the next batch travels while this one runs
                    for dets in self._on_board(*sent):
                        self.stats.add(dets)
                        yield dets
            finally:
                self._discard(sending)
                self.stats.finish(time.perf_counter() - started)

    def _send(self, frames: Iterator[Frame]):
        """The next batch read, sent to the board as PNG files: (its frames, the pushed images), or None at the
        end. The model goes first, with the first batch."""
        batch = list(islice(frames, self.batch))
        if not batch:
            return None
        if self.pushed is None:
            self.pushed = push_model(self.access, self.model, self.project, self.quiet)
        with tempfile.TemporaryDirectory(prefix="studio-board-frames-") as tmp:
            paths = [_as_png(frame, Path(tmp) / f"{k:05d}.png") for k, frame in enumerate(batch)]
            with self.access.open() as board:
                return batch, push_images(board, paths, self.project, lambda done, total, name: None,
                                          self.quiet.cancel.check)

    def _discard(self, sending: Future) -> None:
        """A run ended early (cancelled, failed, closed): the batch still travelling is removed from the board."""
        try:
            sent = sending.result()
        except Exception:  # noqa: BLE001 - the run's own error is the one to report; this batch never arrived
            return
        if sent is not None:
            self._remove(sent[1].folder)

    def _remove(self, folder: str) -> None:
        with self.access.open() as board:
            board.run("rm -rf -- " + quote(folder), check=False)

    def _on_board(self, batch: list[Frame], images) -> list[Detections]:
        """One sent batch run on the board; its detections home in the batch's order, its folder removed."""
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
            self._remove(images.folder)
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
