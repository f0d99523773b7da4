"""`studio distill`: train a student with a teacher's help, and the ablation that shows what each term buys.

The student is a checkpoint (fine-tuning, e.g. after pruning) or an architecture yaml
(training from scratch, e.g. a narrower model). The ablation trains the same student
from the same start with the same budget four times, adding one family of terms at a
time: none, response, + feature, + relation. The loss a training step adds lives in
kd_step.py, its terms in kd_losses.py.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from deploy.errors import UserError
from deploy.runtime.atomic import write_json_atomic
from deploy.runtime.output import claim_run
from studio.core.compress import distributed
from studio.core.compress.kd_config import KdConfig
from studio.core.compress.kd_step import Distiller
from studio.core.compress.options import DISTILL, IMGSZ
from studio.core.data.checks import check_dataset, check_kind
from studio.core.jobs import Job

ABLATION = {"none": (), "response": ("response",), "+feature": ("response", "feature"),
            "+relation": ("response", "feature", "relation")}


@dataclass
class DistillRequest:
    teacher: Path | None
    student: str  # .pt checkpoint or .yaml architecture
    data: Path
    out: Path
    epochs: int = DISTILL.default("epochs")
    kd: KdConfig = field(default_factory=KdConfig)
    imgsz: int = IMGSZ.default
    batch: int = DISTILL.default("batch")
    lr: float = DISTILL.default("lr")
    workers: int = 2
    val_limit: int | None = None
    seed: int = DISTILL.default("seed")
    until_flat: bool = DISTILL.default("until_flat")
    resume: bool = False
    force: bool = False  # start over in an `out` that holds an earlier run


@dataclass
class DistillResult:
    """Field names are the JSON keys of `studio distill --json`."""

    model: str
    teacher: str | None
    terms: list[str]
    epochs: int
    map50_95: float
    map50: float
    small: float | None
    history: list[dict]
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def distill(req: DistillRequest, job: Job | None = None) -> DistillResult:
    """Train the student (distilled when terms are on) and return its best val mAP."""
    import torch

    from studio.core.compress.loop import LoopConfig, fit
    from studio.core.compress.yolo import model_task
    from studio.core.data.formats import read_yaml, yaml_names
    from studio.core.models import class_names, for_classes, load_detector
    from studio.core.provenance import provenance

    job = job or Job()
    labels = check_dataset(Path(req.data))
    if req.kd.terms and req.teacher is None:
        raise UserError("--teacher is needed for distillation (or pass --kd none to train without one)")
    if req.teacher is not None and not Path(req.teacher).is_file():
        raise UserError(f"--teacher {req.teacher}: no such file")
    DISTILL.check_fields(req, skip=("kd",))
    ctx = distributed.context()
    claim_run(Path(req.out), req.resume, req.force, "distillation run", remove=ctx.main)
    distributed.barrier(ctx)
    torch.manual_seed(req.seed)  # new layers (remade class outputs, adapters) start from the seed too
    names = yaml_names(read_yaml(Path(req.data)), Path(req.data))
    student, remade = for_classes(load_detector(req.student, nc=len(names))[0], names)
    check_kind(Path(req.data), labels, model_task(student))
    if remade:  # e.g. an 80-class COCO checkpoint on a 4-class dataset: its class outputs start untrained
        job.stage("new class outputs", None, f"{Path(req.student).name} detects other classes: its class outputs "
                                             f"are remade for the data's {len(names)} ({', '.join(names[:6])})")
    distiller = None
    if req.kd.terms:
        teacher, _ = load_detector(str(req.teacher))
        if class_names(teacher) != names:
            raise UserError(f"--teacher {req.teacher} detects {class_names(teacher)[:5]}..., not the data's classes "
                            f"{names}: fine-tune it on the data first (studio distill --student {req.teacher} "
                            "--kd none ...), or let a recipe train one (teacher: yolov8s.yaml)")
        distiller = Distiller(teacher, student, req.kd, req.imgsz)
    cfg = LoopConfig(data=Path(req.data), epochs=req.epochs, out=Path(req.out), imgsz=req.imgsz, batch=req.batch,
                     lr=req.lr, workers=req.workers, val_limit=req.val_limit, seed=req.seed, until_flat=req.until_flat,
                     resume=req.resume)
    used = Path(req.teacher) if distiller else None  # with kd none a named teacher is never loaded
    extra = {"studio": {"operation": "distill", "teacher": str(used) if used else None,
                        "kd": req.kd.to_dict(), **provenance(used or Path(req.data))}}
    result = fit(student, cfg, job, extra_loss=distiller, extra_modules=distiller.adapters if distiller else None,
                 stage="distill" if distiller else "train", checkpoint_extra=extra)
    best = max(result.history, key=lambda h: h["map50_95"])
    out = DistillResult(model=str(result.best), teacher=str(used) if used else None,
                        terms=list(req.kd.terms), epochs=result.epochs, map50_95=best["map50_95"], map50=best["map50"],
                        small=best.get("small"), history=result.history, seconds=result.seconds)
    if distributed.is_main():
        write_json_atomic(Path(req.out) / "distill_report.json", out.to_dict())
    return out


def ablation(req: DistillRequest, job: Job | None = None) -> dict:
    """Train the four variants of ABLATION at one budget; writes ablation.json, .md and .png in req.out."""
    job = job or Job()
    started = time.monotonic()
    rows = []
    for name, terms in ABLATION.items():
        folder = Path(req.out) / name.lstrip("+")
        resumable = (folder / "state.pt").is_file()  # a variant killed before its first state starts over
        variant = replace(req, kd=replace(req.kd, terms=terms), out=folder, resume=resumable, force=not resumable)
        report = Path(variant.out) / "distill_report.json"  # written once a variant has finished
        if report.is_file():
            result = json.loads(report.read_text())
        else:
            result = distill(variant, job).to_dict()
        rows.append({"variant": name, "terms": list(terms), "map50_95": result["map50_95"], "map50": result["map50"],
                     "small": result["small"], "model": result["model"], "seconds": result["seconds"]})
    summary = {"student": str(req.student), "teacher": str(req.teacher), "data": str(req.data),
               "budget": {"epochs": req.epochs, "imgsz": req.imgsz, "batch": req.batch, "images": _train_images(req)},
               "kd": {k: v for k, v in req.kd.to_dict().items() if k != "terms"}, "rows": rows,
               "gain_map50_95": round(rows[-1]["map50_95"] - rows[0]["map50_95"], 4),
               "seconds": round(time.monotonic() - started, 1)}
    from studio.core.compress.report import write_ablation

    write_ablation(summary, Path(req.out))
    return summary


def _train_images(req: DistillRequest) -> int:
    from studio.core.data.formats import images_in, read_yaml, split_dirs

    dirs = split_dirs(read_yaml(Path(req.data)), Path(req.data))
    return len(images_in(dirs["train"])) if "train" in dirs else 0

