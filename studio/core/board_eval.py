"""`studio board eval`: mAP measured on the board itself, beside the host's float and simulator figures.

The split's images go to the board as files (once: board/images.py), the agent decodes,
pre-processes and runs them with every worker, with the evaluation's settings (conf 0.001,
IoU 0.7, 300 detections, every class above conf), and the host scores what comes back with
the code `studio eval` uses. The host columns come from `studio eval` itself: the float ONNX
the model was built from (ONNX Runtime) and, for an .rknn, the toolkit's simulator rebuilt
from that ONNX and the recorded calibration. Where the board and its host twin (the same
backend for an .onnx, the simulator for an .rknn) disagree, the per-image comparison says on
how many images and which.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy.board.check import check_board
from deploy.board.doctor import diagnose, model_facts
from deploy.board.images import ImagePush, push_images
from deploy.board.remote_run import RunOptions
from deploy.errors import UserError
from deploy.runtime.metadata import read_model_meta
from deploy.runtime.postprocess import FrameResult
from studio.core.board import Access, push_model, start_run, stream_run
from studio.core.board_truth import compare_raw, fetch_samples, quantization_differences, samples_dir
from studio.core.data.checks import check_dataset
from studio.core.evaluate import EvalRequest, eval_settings, evaluate, found_of, score, split_truth
from studio.core.jobs import Job

SAME_IOU = 0.9  # two detections are the same when their classes match and their boxes overlap this much
SCORE_STEP = 1e-4  # ... and their scores differ by less (ONNX Runtime or librknnrt versions may round apart)
METRIC_KEYS = ("map50_95", "map50", "per_class", "per_size", "recall")


@dataclass
class BoardEvalRequest:
    board: str
    model: Path
    data: Path
    split: str = "val"
    backend: str = "rknnlite"  # rknnlite (the NPU) | ort (ONNX Runtime on the board's CPU)
    workers: int = 3
    conf: float = 0.001
    iou: float = 0.7
    max_det: int = 300
    limit: int | None = None
    host: bool = True  # also evaluate the host columns (float; the simulator for an .rknn)
    compare: int = 4  # raw outputs of the first N images compared with the host's twin
    project: str = "studio"


def _column(name: str, where: str, backend: str, model: Path, metrics: dict) -> dict:
    return {"name": name, "where": where, "backend": backend, "model": str(model),
            **{k: metrics[k] for k in METRIC_KEYS}}


def built_from(model: Path) -> Path | None:
    """The float ONNX an .rknn was built from, when it is still there (its sidecar names it)."""
    meta = read_model_meta(model)
    onnx = meta.build.onnx if meta.build else ""
    if not onnx:
        return None
    path = Path(onnx) if Path(onnx).is_absolute() else model.parent / onnx
    return path if path.is_file() else None


def same_detections(a: tuple, b: tuple) -> bool:
    """Whether two images' detections are the same: as many, and each pairs with one of the other in order of
    score (same class, IoU >= SAME_IOU, scores within SCORE_STEP)."""
    from deploy.convert.verify import matched

    ra, sa, ca, ba = a
    rb, sb, cb, bb = b
    if len(sa) != len(sb):
        return False
    if not len(sa):
        return True
    first = FrameResult(ba.astype(np.float32), sa, ca, np.zeros(len(sa), np.int64), ra)  # turned boxes: rotated IoU
    second = FrameResult(bb.astype(np.float32), sb, cb, np.zeros(len(sb), np.int64), rb)
    if not matched(first, second, SAME_IOU).all():
        return False
    return bool(np.abs(np.sort(sa) - np.sort(sb)).max() < SCORE_STEP)


def _board_detections(access: Access, req: BoardEvalRequest, pushed, images: ImagePush, count: int,
                      job: Job) -> tuple[list, dict, list[dict]]:
    """Run the split on the board: each image's detections by its place in the split, the agent's stats, and the
    raw samples of its first inferences."""
    opts = RunOptions(source=images.folder, backend=req.backend, workers=req.workers, conf=req.conf, iou=req.iou,
                      max_det=req.max_det, multi_label=True, max_frames=count, raw_first=min(req.compare, count))
    place = {name: i for i, name in enumerate(images.names)}
    found: list = [None] * count

    def keep(dets, hello) -> None:
        found[place[posixpath.basename(dets.source)]] = found_of(dets)

    run = start_run(access, pushed, opts)
    summary = stream_run(access, run, keep, job, max_frames=count)
    missing = [images.names[i] for i, f in enumerate(found) if f is None]
    if missing:
        raise UserError(f"{req.board}: the agent ended without results for {len(missing)} image(s), e.g. "
                        f"{missing[0]}; its log: studio board run ... or the run folder on the board")
    with samples_dir() as tmp, access.open() as board:
        samples = fetch_samples(board, run, Path(tmp))
    return found, summary.agent or {}, samples


class _Host:
    """The host's side of the comparison: its columns, its twin of the board's backend, what it could not do."""

    def __init__(self, req: BoardEvalRequest, job: Job):
        self.req, self.job = req, job
        self.columns: list[dict] = []
        self.notes: list[str] = []
        self.twin = None  # the backend the board is compared with, on the board's own inputs
        self.twin_name = ""
        self.twin_detections: list | None = None
        self.rebuilt_quantization = None

    def evaluate(self, path: Path, backend: str, shared=None):
        r = self.req
        return evaluate(EvalRequest(model=path, data=Path(r.data), backend=backend, split=r.split, conf=r.conf,
                                    iou=r.iou, max_det=r.max_det, limit=r.limit), self.job, shared)

    def measure(self) -> None:
        model = Path(self.req.model)
        if model.suffix == ".onnx":
            from deploy.runtime.backends import OrtBackend

            result = self.evaluate(model, "ort")
            self.columns.append(_column("float, host", "host", "ort", model, result.__dict__))
            self.twin, self.twin_name, self.twin_detections = OrtBackend(str(model)), "float, host", result.detections
            return
        onnx = built_from(model)
        if onnx is None:
            self.notes.append("no float column: the ONNX this model was built from is not beside it (its sidecar's "
                              "build.onnx)")
        else:
            self.columns.append(_column("float, host", "host", "ort", onnx, self.evaluate(onnx, "ort").__dict__))
        from deploy.convert.rknn_sim import RknnSimBackend

        self.job.stage("simulator", None, f"rebuilding {model.name} from its ONNX and calibration")
        try:
            self.twin = RknnSimBackend(model, verify=True)
        except UserError as exc:
            self.notes.append(f"no simulator column, the board is shown alone: {exc}")
            return
        self.twin_name, self.rebuilt_quantization = "int8, simulator", self.twin.rebuilt_quantization
        sim = self.evaluate(model, "rknn-sim", self.twin)
        self.columns.append(_column("int8, simulator", "host", "rknn-sim", model, sim.__dict__))
        self.twin_detections = sim.detections

    def close(self) -> None:
        if self.twin is not None:
            self.twin.close()


def board_eval(access: Access, req: BoardEvalRequest, job: Job) -> dict:
    """The side-by-side report (a dict, the JSON of `studio board eval`)."""
    model = Path(req.model)
    meta = read_model_meta(model)
    if (model.suffix == ".rknn") != (req.backend == "rknnlite"):
        raise UserError(f"--backend {req.backend} does not run {model.name}: rknnlite runs an .rknn, ort an .onnx")
    check_dataset(Path(req.data), (req.split,), task=meta.task)
    truth = split_truth(meta, Path(req.data), req.split, req.limit)
    pushed = push_model(access, model, req.project, job)
    job.stage("images", None, f"to {access.board}")
    with access.open() as board:
        images = push_images(board, truth.images, req.project,
                             lambda done, total, name: job.step("images", done, total), job.cancel.check)
        findings = diagnose(check_board(board), model_facts(model))  # e.g. a runtime older than the toolkit
    found, agent, samples = _board_detections(access, req, pushed, images, len(truth.images), job)
    board_column = _column(f"{'int8' if model.suffix == '.rknn' else 'float'}, board", access.board, req.backend,
                           model, score(truth, found, meta.names, req.max_det))
    host = _Host(req, job)
    try:
        if req.host:
            host.measure()
        else:
            host.notes.append("host columns not asked for (--board-only)")
        raw = compare_raw(samples, host.twin, meta, host.twin_name) if host.twin is not None and samples else None
    finally:
        host.close()
    report = {"board": access.board, "model": model.name, "data": str(req.data), "split": req.split,
              "images": len(truth.images), "settings": eval_settings(req.conf, req.iou, req.max_det, meta) |
              {"workers": req.workers, "backend": req.backend},
              "columns": host.columns + [board_column], "notes": host.notes, "raw": raw,
              "doctor": [f.to_dict() for f in findings],
              "quantization_differences": quantization_differences(meta.quantization, host.rebuilt_quantization),
              "transfer": {"image_bytes": images.bytes_total, "bytes_sent": images.bytes_sent,
                           "files_sent": images.files_sent, "folder": images.folder},
              "board_stats": {k: agent.get(k) for k in ("fps", "stage_ms", "latency_ms") if k in agent}}
    if host.twin_detections is not None:
        same = [same_detections(a, b) for a, b in zip(host.twin_detections, found)]
        report["agreement"] = {"with": host.twin_name, "same_images": int(sum(same)), "images": len(same),
                               "share": round(sum(same) / len(same), 4),
                               "differing": [images.names[i] for i, s in enumerate(same) if not s][:20]}
    return report
