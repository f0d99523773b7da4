"""The tiles of a long scene run, kept as they finish, so an interrupted run resumes where it stopped.

A journal is a folder. `manifest.json` records what decides the results (model, source,
tiles, thresholds, backend) and, per raster, how it was read (bands, the 16-bit stretch);
each finished tile is one .npz file written atomically (temporary name, then rename), so a
kill at any moment leaves whole tiles or none. On resume a tile already there is not read
(for a lazy raster) and not run: its recorded detections, exact float32, take their place in
the stream, in tile order, and the merge sees exactly what an uninterrupted run gave it.

    journal = TileJournal.open(folder, manifest, resume=True)
    loop = RunLoop(..., tile=640, journal=journal)
"""
import hashlib
import json
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Optional

import numpy as np

from deploy.errors import UserError
from deploy.runtime.atomic import staged, write_json_atomic
from deploy.runtime.detections import Detections
from deploy.runtime.frame import Frame

MANIFEST = "manifest.json"
TILE_KEYS = ("offset", "tile", "tiles", "scene_hw", "size")  # what the merge reads of a tile's placement


def scene_key(index: int, source: str) -> str:
    """A file-name-safe key of one scene of a run: its place in the source and where it came from."""
    return hashlib.sha1(f"{index}\0{source}".encode()).hexdigest()[:16]


class TileJournal:
    """Finished tiles on disk; `resumed` runs the rest and interleaves the recorded ones in order."""

    def __init__(self, folder: Path, manifest: dict, done: set):
        self.folder, self.manifest, self.done = folder, manifest, done
        self.rasters: dict = dict(manifest.get("rasters", {}))  # path -> reading settings, as first recorded

    @classmethod
    def open(cls, folder, manifest: dict, resume: bool, force: bool = False) -> "TileJournal":
        """The journal of this run: an earlier one continued (resume, when its manifest matches), or a new one.
        An interrupted run's journal is never dropped silently: without resume it takes `force`."""
        folder = Path(folder)
        earlier = folder / MANIFEST
        if resume and not earlier.is_file():
            raise UserError(f"nothing to resume: no interrupted run's progress in {folder}")
        if earlier.is_file() and not resume:
            if not force:
                raise UserError(f"{folder} holds the progress of an interrupted run: --resume continues it, "
                                "--force starts over")
            shutil.rmtree(folder)
        if resume:
            recorded = json.loads(earlier.read_text())
            changed = [k for k in manifest if recorded.get(k) != manifest[k]]
            if changed:
                k = changed[0]
                raise UserError(f"the interrupted run in {folder} had {k} {recorded.get(k)!r}, this one "
                                f"{manifest[k]!r}: resume with the same settings, or --force to start over")
            for partial in folder.glob(".*.tmp.npz"):  # a tile being written when the run was killed
                partial.unlink()
            return cls(folder, recorded, {p.stem for p in folder.glob("[!.]*.npz")})
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / MANIFEST, manifest)
        return cls(folder, manifest, set())

    @staticmethod
    def name(index: int, source: str, tile: int) -> str:
        return f"{scene_key(index, source)}-{tile:06d}"

    def has(self, frame: Frame, tile: int) -> bool:
        """Whether tile `tile` of the scene `frame` is already recorded."""
        return self.name(frame.index, frame.source, tile) in self.done

    def stretches(self) -> dict:
        """Per raster path, the stretch it was read with when this run began (None for 8-bit rasters)."""
        return {path: reading.get("stretch") for path, reading in self.rasters.items()}

    def record(self, dets: Detections, reading: Optional[dict] = None) -> None:
        """Keep a finished tile (and, the first time a raster is seen, how it was read)."""
        if reading is not None and dets.source not in self.rasters:
            self.rasters[dets.source] = reading
            write_json_atomic(self.folder / MANIFEST, {**self.manifest, "rasters": self.rasters})
        arrays = {"boxes": dets.boxes, "scores": dets.scores, "classes": dets.classes,
                  "placement": np.array(json.dumps({k: dets.tile[k] for k in TILE_KEYS}))}
        if dets.rboxes is not None:
            arrays["rboxes"] = dets.rboxes
        name = self.name(dets.frame, dets.source, dets.tile["tile"])
        with staged(self.folder / f"{name}.npz", ".npz") as tmp:
            np.savez(tmp, **arrays)
        self.done.add(name)

    def recorded(self, frame: Frame) -> Detections:
        """A recorded tile as the pipeline gave it (no timings: it was not run now)."""
        with np.load(self.folder / f"{self.name(frame.index, frame.source, frame.extra['tile'])}.npz") as data:
            placement = json.loads(str(data["placement"]))
            tile = {**frame.extra, **{k: tuple(v) if isinstance(v, list) else v for k, v in placement.items()}}
            return Detections(data["boxes"], data["scores"], data["classes"], {}, frame.index, frame.source, tile,
                              frame.image, rboxes=data["rboxes"] if "rboxes" in data else None)

    def resumed(self, tiles: Iterator[Frame], run: Callable[[Iterator[Frame]], Iterator[Detections]]
                ) -> Iterator[Detections]:
        """Every tile's detections in tile order: recorded ones read back, the others run (and recorded)."""
        order: deque = deque()  # per tile handed on: its recorded detections, or None for one sent to `run`

        def to_run() -> Iterator[Frame]:
            for frame in tiles:
                if self.has(frame, frame.extra["tile"]):
                    order.append(self.recorded(frame))
                else:
                    order.append(None)
                    yield frame

        results = run(to_run())
        try:
            for dets in results:
                while True:
                    waiting = order.popleft()  # the run's result was queued after everything before it
                    if waiting is None:
                        break
                    yield waiting
                scene = dets.tile.get("scene")
                self.record(dets, getattr(scene, "settings", None))
                yield dets
            while order:
                yield order.popleft()
        finally:
            results.close()

    def finish(self) -> None:
        """The run's results are published: its progress is no longer needed."""
        shutil.rmtree(self.folder, ignore_errors=True)
