"""`studio eval`: COCO-style mAP of any backend on a YOLO dataset, per class and per object size.

Oriented-box models are scored as ultralytics' OBB validation scores them (evaluate_obb.py).

The same pipeline as `studio predict` produces the detections (torch, ONNX Runtime or the
RKNN simulator), so evaluation measures what deployment runs. The metric comes from
faster-coco-eval, not from code of ours. Defaults follow ultralytics' validator (conf
0.001, IoU 0.7, 300 detections, every class above conf a candidate) so the torch backend
agrees with `yolo val`.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from deploy.errors import UserError
from deploy.runtime.backends import Backend
from deploy.runtime.frame import Frame
from deploy.runtime.metadata import ModelMeta, read_model_meta
from deploy.runtime.postprocess import NmsConfig
from deploy.runtime.run_loop import RunLoop
from studio.core.backend_factory import BackendPool
from studio.core.data.checks import check_dataset
from studio.core.data.formats import label_path, read_yolo_labels
from studio.core.evaluate_obb import eval_split, match_split, obb_metrics, obb_truth
from studio.core.jobs import Job
from studio.core.recall import found_labels, recall_summary

EVAL_BACKENDS = ("torch", "ort", "rknn-sim")
FILE_BACKENDS = {".pt": "torch", ".pth": "torch", ".onnx": "ort", ".rknn": "rknn-sim"}  # how each file runs here
SIZE_BUCKETS = ("small", "medium", "large")


@dataclass
class EvalRequest:
    model: Path
    data: Path
    backend: str = "auto"  # auto: as the file's type says (FILE_BACKENDS)
    split: str = "val"
    imgsz: int | None = None  # torch only: default is the size the checkpoint was trained at
    conf: float = 0.001
    iou: float = 0.7
    max_det: int = 300
    workers: int = 1
    limit: int | None = None  # evaluate only the first N images


@dataclass
class EvalResult:
    """Field names are the JSON keys of `studio eval --json`."""

    model: str
    backend: str
    split: str
    images: int
    map50_95: float
    map50: float
    per_class: dict[str, float] = field(default_factory=dict)  # AP50-95 per class
    per_size: dict[str, float | None] = field(default_factory=dict)  # AP50-95 per COCO size bucket
    recall: dict = field(default_factory=dict)  # at conf 0.25, IoU 0.5 (recall.py)
    latency_ms: dict[str, float] = field(default_factory=dict)  # mean per image and stage
    settings: dict = field(default_factory=dict)
    found: list = field(default_factory=list)  # per image, which counted labels the recall found (not in JSON)
    detections: list = field(default_factory=list)  # per image, (rboxes, scores, classes, boxes) (not in JSON)

    def to_dict(self) -> dict:
        out = asdict(replace(self, found=[], detections=[]))  # the per-image lists are for callers, not JSON
        del out["found"], out["detections"]
        return out


class TorchBackend(Backend):
    """An ultralytics model in torch (eval mode) behind the pipeline's backend interface."""

    name = "torch"
    layout = "nchw-float"

    def __init__(self, model):
        import torch

        self.model, self.torch = model, torch

    def infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        with self.torch.inference_mode():
            out = self.model(self.torch.from_numpy(tensor))
        return [(out[0] if isinstance(out, (tuple, list)) else out).numpy()]


def _torch_setup(req: EvalRequest):
    """(backend factory, meta, closer) for a .pt checkpoint, run as ultralytics' standard output."""
    import torch

    from studio.core.compress.yolo import trained_imgsz
    from studio.core.models import class_names, load_detector

    model, _ = load_detector(str(req.model))
    imgsz = req.imgsz or trained_imgsz(model)
    if imgsz % 32:
        raise UserError(f"--imgsz {imgsz} must be a multiple of 32")
    model = model.fuse(verbose=False) if hasattr(model, "fuse") else model
    torch.set_num_threads(max(1, torch.get_num_threads() // max(1, req.workers)))
    task = "obb" if model.model[-1].__class__.__name__ == "OBB" else "detect"
    meta = ModelMeta(format="pt", names=class_names(model), imgsz=imgsz, layout="standard", outputs=["output0"],
                     task=task)
    return (lambda i: TorchBackend(model)), meta, (lambda: None)


def ground_truth(data: Path, split: str, names_expected: list[str], limit: int | None) -> tuple[dict, list[Path]]:
    """A COCO ground-truth dict of a YOLO split (difficult objects marked as ignored) and its images."""
    from studio.core.data.formats import image_size

    images, difficult = eval_split(data, split, names_expected, limit)
    names = names_expected
    gt = {"images": [], "annotations": [], "categories": [{"id": i, "name": n} for i, n in enumerate(names)]}
    for image_id, path in enumerate(images):
        w, h = image_size(path)
        gt["images"].append({"id": image_id, "width": w, "height": h, "file_name": path.name})
        lbl = label_path(path)
        hard = set(difficult.get(f"{split}/{path.stem}", []))
        rows = read_yolo_labels(lbl, len(names)) if lbl.is_file() else []
        for k, (cls, cx, cy, bw, bh) in enumerate(rows):
            box = [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": image_id, "category_id": cls,
                                      "bbox": box, "area": box[2] * box[3], "iscrowd": int(k in hard),
                                      "ignore": int(k in hard)})
    if not gt["annotations"]:
        raise UserError(f"{data}: the {split} split has no labelled objects, so there is no mAP to compute")
    return gt, images


def coco_detections(found: list[tuple]) -> list[dict]:
    """Each image's (rboxes, scores, classes, boxes) detections in COCO's result form (xywh boxes)."""
    return [{"image_id": image_id, "category_id": cls, "score": score,
             "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]}
            for image_id, (_, scores, classes, boxes) in enumerate(found)
            for box, score, cls in zip(boxes.tolist(), scores.tolist(), classes.tolist())]


def coco_labels(gt: dict, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per image, the xyxy boxes and classes of its labels that count (difficult ones left out)."""
    rows: list[list] = [[] for _ in range(count)]
    for ann in gt["annotations"]:
        if not ann["ignore"]:
            x, y, w, h = ann["bbox"]
            rows[ann["image_id"]].append((x, y, x + w, y + h, ann["category_id"]))
    out = []
    for r in rows:
        a = np.array(r, np.float64).reshape(-1, 5)
        out.append((a[:, :4], a[:, 4].astype(np.int64)))
    return out


def coco_metrics(gt: dict, detections: list[dict], names: list[str], max_det: int) -> dict:
    """mAP50-95, mAP50, AP per class and per size bucket with faster-coco-eval."""
    from faster_coco_eval import COCO, COCOeval_faster

    coco_gt = COCO(gt)
    coco_dt = coco_gt.loadRes(detections) if detections else None
    if coco_dt is None:
        return {"map50_95": 0.0, "map50": 0.0, "per_class": dict.fromkeys(names, 0.0),
                "per_size": dict.fromkeys(SIZE_BUCKETS, 0.0)}
    ev = COCOeval_faster(coco_gt, coco_dt, iouType="bbox")
    ev.params.maxDets = [1, 10, max_det]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    precision = ev.eval["precision"]  # (iou thresholds, recall points, classes, areas, max dets)

    def ap(values: np.ndarray) -> float | None:
        values = values[values > -1]
        return round(float(values.mean()), 4) if values.size else None

    per_class = {n: ap(precision[:, :, k, 0, -1]) for k, n in enumerate(names)}
    per_size = {b: ap(precision[:, :, :, a + 1, -1]) for a, b in enumerate(SIZE_BUCKETS)}
    return {"map50_95": round(float(ev.stats[0]), 4), "map50": round(float(ev.stats[1]), 4),
            "per_class": per_class, "per_size": per_size}


def _backend(req: EvalRequest) -> str:
    """The backend that runs this file: the one asked for, or the file type's; a mismatch names the right one."""
    if req.backend != "auto" and req.backend not in EVAL_BACKENDS:
        raise UserError(f"--backend {req.backend!r} is not one of: auto, {', '.join(EVAL_BACKENDS)}")
    natural = FILE_BACKENDS.get(Path(req.model).suffix)
    if natural is None:
        raise UserError(f"{req.model}: expected a .pt checkpoint, an .onnx or an .rknn model")
    if req.backend not in ("auto", natural):
        raise UserError(f"--backend {req.backend} does not run {Path(req.model).name}: use --backend {natural} "
                        "(or leave --backend out: it follows the file type)")
    return natural


def evaluate(req: EvalRequest, job: Job | None = None, shared: Backend | None = None) -> EvalResult:
    """Run the model over a split and score it; a UserError for a wrong backend, model or dataset.
    shared: a backend already open for the model (a simulator rebuilt once for several uses), left open."""
    job = job or Job()
    if not Path(req.model).is_file():
        raise UserError(f"{req.model}: no such model file")
    req = replace(req, backend=_backend(req))
    if req.backend == "torch":
        factory, meta, close = _torch_setup(req)
        check_dataset(Path(req.data), (req.split,), task=meta.task)
    else:
        meta = read_model_meta(req.model)
        if req.imgsz and req.imgsz != meta.imgsz:
            raise UserError(f"--imgsz {req.imgsz}: {Path(req.model).name} was exported for {meta.imgsz} px and "
                            f"takes no other size; export it again with --imgsz {req.imgsz}")
        check_dataset(Path(req.data), (req.split,), task=meta.task)
        pool = BackendPool(req.backend, Path(req.model), req.workers, shared)
        factory, close = pool.factory(), pool.close
    truth = split_truth(meta, Path(req.data), req.split, req.limit)
    cfg = NmsConfig(conf=req.conf, iou=req.iou, max_det=req.max_det, multi_label=True)
    loop = RunLoop(factory, meta, cfg, workers=req.workers, close=close)
    found = [None] * len(truth.images)
    job.stage("evaluate", len(truth.images), f"{req.backend}")
    for dets in loop.results(_frames(truth.images)):
        found[dets.frame] = found_of(dets)
        job.step("evaluate", dets.frame + 1, len(truth.images))
    stats = loop.stats
    return EvalResult(model=str(req.model), backend=req.backend, split=req.split, images=len(truth.images),
                      latency_ms={k: round(v, 3) for k, v in stats.stage_ms.items()},
                      settings=eval_settings(req.conf, req.iou, req.max_det, meta),
                      detections=found, **score(truth, found, meta.names, req.max_det))


@dataclass
class SplitTruth:
    """The labels of a split as its task scores them, and its images in scoring order."""

    task: str
    images: list[Path]
    labels: object  # detect: a COCO ground-truth dict; obb: a list of Truth


def split_truth(meta: ModelMeta, data: Path, split: str, limit: int | None) -> SplitTruth:
    if meta.task == "obb":
        truths, images = obb_truth(data, split, meta.names, limit)
        return SplitTruth("obb", images, truths)
    gt, images = ground_truth(data, split, meta.names, limit)
    return SplitTruth("detect", images, gt)


def found_of(dets) -> tuple:
    """What scoring keeps of an image's detections: (rboxes, scores, classes, xyxy boxes)."""
    return dets.rboxes, dets.scores, dets.classes.astype(np.int64), dets.boxes


def eval_settings(conf: float, iou: float, max_det: int, meta: ModelMeta) -> dict:
    oriented = meta.task == "obb"
    return {"conf": conf, "iou": iou, "max_det": max_det, "imgsz": meta.imgsz, "multi_label": True, "task": meta.task,
            "metric": "probiou, ultralytics OBB val" if oriented else "bbox IoU, COCO"}


def score(truth: SplitTruth, found: list[tuple], names: list[str], max_det: int) -> dict:
    """mAP50-95, mAP50, per class and size, and recall of detections made anywhere (host or board), one
    (rboxes, scores, classes, boxes) per image of the split in its order."""
    oriented = truth.task == "obb"
    if oriented:
        metrics = obb_metrics(match_split(truth.labels, [f[:3] for f in found]), names)
        labels = [(t.rboxes[~t.difficult], t.classes[~t.difficult]) for t in truth.labels]
    else:
        metrics = coco_metrics(truth.labels, coco_detections(found), names, max_det)
        labels = coco_labels(truth.labels, len(found))
    flags = [found_labels(box, cls, rboxes if oriented else boxes, scores, classes, oriented)
             for (box, cls), (rboxes, scores, classes, boxes) in zip(labels, found)]
    metrics["recall"], metrics["found"] = recall_summary(flags), flags
    return metrics


def _frames(images: list[Path]) -> Iterator[Frame]:
    import time

    from deploy.convert.calibration import read_rgb

    for index, path in enumerate(images):
        start = time.perf_counter()
        rgb = read_rgb(path)
        yield Frame(rgb, index, str(path), (time.perf_counter() - start) * 1e3)
