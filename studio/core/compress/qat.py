"""`studio qat`: distillation-aware quantization-aware training, ending in an int8 model for the NPU.

The student is the float model made into its RKNN int8 simulation (fakequant.py): BN
folded, grids calibrated on training images, then trained with the rounding in place.
Its teacher is a float model (by default the student's own float self) and it learns
from it through the response and feature terms of `studio distill`. A bit-width
schedule (e.g. 16,8) trains at each width in turn; each narrower stage starts from the
last one's weights with its grids observed anew at the new width (`_step_down`). Each
stage is an ordinary resumable run of the training loop in its own folder; the result,
`qat.pt`, has its weights baked onto their grids and exports with
`studio export qat.pt --format rknn --quant qdq`. With `tune_teacher`, the
teacher itself keeps adapting toward what the quantized student can learn
(teacher_tuning.py), and the adapted teacher carries over from stage to stage.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from deploy.errors import UserError
from deploy.runtime.atomic import staged, write_json_atomic
from deploy.runtime.output import claim_run
from studio.core.compress.kd_config import KdConfig
from studio.core.compress.options import IMGSZ, QAT, QAT_TERMS
from studio.core.data.checks import check_dataset, check_kind
from studio.core.jobs import Job


@dataclass
class QatRequest:
    model: Path  # the float checkpoint to quantize (e.g. a pruned and distilled student)
    data: Path
    out: Path
    teacher: Path | None = None  # None: the model's own float self
    epochs: int = QAT.default("epochs")  # over all stages
    bits: tuple[int, ...] = QAT.default("bits")  # the bit-width schedule; ends at 8
    kd: KdConfig = field(default_factory=lambda: KdConfig(terms=QAT_TERMS))
    learn_scales: bool = QAT.default("learn_scales")  # LSQ; False keeps the calibrated grids
    inner_grids: bool = QAT.default("inner_grids")  # conv + SiLU's inner grids round in training too
    tune_teacher: bool = QAT.default("tune_teacher")  # adapt the teacher to the quantized student (teacher_tuning.py)
    tune_every: int = QAT.default("tune_every")  # training steps between teacher adaptations
    calib_batches: int = QAT.default("calib_batches")
    imgsz: int = IMGSZ.default
    batch: int = QAT.default("batch")
    lr: float = QAT.default("lr")  # a trained model only needs nudging onto its grids
    workers: int = 2
    val_limit: int | None = None
    seed: int = QAT.default("seed")
    until_flat: bool = QAT.default("until_flat")  # per bit-width stage
    resume: bool = False
    force: bool = False  # start over in an `out` that holds an earlier run


@dataclass
class QatResult:
    """Field names are the JSON keys of `studio qat --json`."""

    model: str
    float_map50_95: float
    calibrated_map50_95: float  # fake-quantized before any training: what plain calibration gives
    map50_95: float
    map50: float
    small: float | None
    bits: list[int]
    stages: list[dict]
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def _validate(req: QatRequest) -> str:
    """Refuse a bad request in one line; -> the kind of the data's labels."""
    if not Path(req.model).is_file():
        raise UserError(f"{req.model}: no such checkpoint")
    labels = check_dataset(Path(req.data))
    if req.teacher is not None and not Path(req.teacher).is_file():
        raise UserError(f"--teacher {req.teacher}: no such file")
    QAT.check_fields(req, skip=("kd", "teacher"))
    if req.epochs < len(req.bits):
        raise UserError(f"--epochs {req.epochs}: need at least one epoch per bit width ({len(req.bits)})")
    if req.tune_teacher and not req.kd.terms:
        raise UserError("--tune-teacher adapts the teacher the student distils from; it needs --kd terms")
    return labels


def stage_epochs(epochs: int, stages: int) -> list[int]:
    """Epochs per stage: an even split, the remainder going to the last (int8) stage."""
    base = epochs // stages
    return [base] * (stages - 1) + [epochs - base * (stages - 1)]


def _stage_dir(out: Path, index: int, bits: int) -> Path:
    return Path(out) / f"stage{index + 1}-int{bits}"


def qat(req: QatRequest, job: Job | None = None) -> QatResult:
    """Quantize, calibrate, train through the bit-width schedule; write qat.pt and qat_report.json in req.out."""
    from studio.core.compress import distributed
    from studio.core.compress import fakequant as fq
    from studio.core.compress.loop import LoopConfig, hyperparameters, save_checkpoint
    from studio.core.compress.yolo import model_task
    from studio.core.models import load_detector
    from studio.core.provenance import provenance

    job = job or Job()
    labels = _validate(req)
    ctx = distributed.context()
    main = ctx.main  # rank 0 calibrates and writes; the others train with it and read what it wrote
    job = distributed.quiet(job, ctx)
    out = Path(req.out)
    report_path = out / "qat_report.json"
    _claim_out(req, out, ctx)
    float_model, _ = load_detector(str(req.model))
    check_kind(Path(req.data), labels, model_task(float_model))
    if fq.is_quantized(float_model):
        raise UserError(f"{req.model} is already fake-quantized (a QAT checkpoint); give the float model it came from")
    teacher = load_detector(str(req.teacher))[0] if req.teacher else float_model
    base = LoopConfig(data=Path(req.data), epochs=1, out=out, imgsz=req.imgsz, batch=req.batch, lr=req.lr,
                      workers=req.workers, val_limit=req.val_limit, warmup_epochs=0.5, seed=req.seed,
                      until_flat=req.until_flat)
    hyp = hyperparameters(base, model_task(float_model))
    extra = {"studio": {"operation": "qat", "source": str(req.model), "bits": list(req.bits),
                        "teacher": str(req.teacher) if req.teacher else "self (float)",
                        "kd": req.kd.to_dict(), **provenance(Path(req.model))}}

    calibrated = out / "calibrated.pt"  # appears last: with it, calibration.json is there too
    if main and not calibrated.is_file():
        _calibrate(float_model, req, base, hyp, extra, calibrated, job)
    distributed.barrier(ctx)
    start = json.loads((out / "calibration.json").read_text())
    student, stages = _bit_width_stages(load_detector(str(calibrated))[0], teacher, req, base, extra, main, job)
    fq.bake(student)
    final = out / "qat.pt"
    if main:
        save_checkpoint(student, final, hyp, req.epochs - 1, extra)
    best = stages[-1]
    result = QatResult(model=str(final), float_map50_95=start["float"]["map50_95"],
                       calibrated_map50_95=start["calibrated"]["map50_95"], map50_95=best["map50_95"],
                       map50=best["map50"], small=best.get("small"), bits=list(req.bits), stages=stages,
                       seconds=round(sum(stage["seconds"] for stage in stages), 1))  # every resumed part
    if main:
        write_json_atomic(report_path, result.to_dict())
    return result


def _claim_out(req: QatRequest, out: Path, ctx) -> None:
    """Refuse a folder holding another run (unless resumed or forced); every rank checks before rank 0 creates it."""
    from studio.core.compress import distributed

    claim_run(out, req.resume, req.force, "QAT run", remove=ctx.main)
    if req.resume and not out.is_dir():
        raise UserError(f"nothing to resume: {out} does not exist")
    distributed.barrier(ctx)  # every rank has checked the folder before rank 0 writes into it
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)


def _calibrate(float_model, req: QatRequest, base, hyp, extra: dict, calibrated: Path, job: Job) -> None:
    """Rank 0: the float model's mAP, then the fake-quantized one calibrated on training batches and its mAP."""
    from studio.core.compress import fakequant as fq
    from studio.core.compress.loop import save_checkpoint, validate

    job.stage("float mAP")
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(float_model, Path(tmp) / "float.pt", hyp, -1)
        float_metrics = validate(Path(tmp) / "float.pt", base)
    job.stage("calibrate", req.calib_batches)
    student = fq.quantize_model(float_model, req.bits[0], req.imgsz, req.inner_grids)
    _calibrate_and_save(student, req, base, hyp, extra, calibrated, calibrated.parent / "calibration.json",
                        {"float": float_metrics, "bits": req.bits[0], "batches": req.calib_batches})


def _calibrate_and_save(student, req: QatRequest, base, hyp, extra: dict, checkpoint: Path, report: Path,
                        fields: dict) -> None:
    """Place the student's grids on `calib_batches` training batches, then save it and write `fields` with its mAP
    ("calibrated") to `report`; the checkpoint appears only after the report, so with it the report is there too."""
    from studio.core.compress import fakequant as fq
    from studio.core.compress.loop import save_checkpoint, training_batches, validate

    fq.calibrate(student, [b["img"] for b in training_batches(base, hyp, student, req.calib_batches)])
    with staged(checkpoint, ".pt") as pending:
        save_checkpoint(student, pending, hyp, -1, extra)
        write_json_atomic(report, {**fields, "calibrated": validate(pending, base)})


def _bit_width_stages(student, teacher, req: QatRequest, base, extra: dict, main: bool, job: Job):
    """Train through the bit-width schedule, one stage at a time; a finished stage is read back, not rerun.
    Returns the last student and every stage's summary."""
    import torch

    from studio.core.compress import fakequant as fq
    from studio.core.models import load_detector

    stages = []
    for index, (bits, epochs) in enumerate(zip(req.bits, stage_epochs(req.epochs, len(req.bits)))):
        folder = _stage_dir(Path(req.out), index, bits)
        done = folder / "stage.json"
        if done.is_file():
            stages.append(json.loads(done.read_text()))
            student = load_detector(stages[-1]["model"])[0]
            if (folder / "teacher.pt").is_file():  # as adapted by that stage, in float32
                teacher.load_state_dict(torch.load(folder / "teacher.pt", map_location="cpu"))
            continue
        job.stage(f"int{bits}")
        if index and not (folder / "state.pt").is_file():
            student = _step_down(student, bits, req, base, extra, folder, main, job)
        else:  # the first stage, calibrated at its width; or a stage resumed from its state
            fq.set_bits(student, bits)
        fq.set_mode(student, "learn" if req.learn_scales else "frozen")
        stage = _train_stage(student, teacher, req, replace(base, epochs=epochs, out=folder,
                                                            resume=(folder / "state.pt").is_file()), job, extra)
        stepped = folder / "stepped.json"  # a narrower stage: its start, observed at its width
        start = json.loads(stepped.read_text())["calibrated"] if stepped.is_file() else None
        stage["calibrated_map50_95"] = start["map50_95"] if start else None
        if req.tune_teacher and main:  # a resumed run's next stage starts from it (saved before stage.json)
            with staged(folder / "teacher.pt") as tmp:
                torch.save(teacher.state_dict(), tmp)
        if main:
            write_json_atomic(done, stage)
        stages.append(stage)
        student = load_detector(stage["model"])[0]
    return student, stages


def _step_down(student, bits: int, req: QatRequest, base, extra: dict, folder: Path, main: bool, job: Job):
    """The student entering a narrower stage, its grids observed anew at that width (rank 0 writes stepped.pt).

    The learned ranges are not kept: AdamW moves every scale by about the learning rate a step,
    whatever the scale's size, so at 16 bits (scales of 1e-4 and less) they wander wide. On the
    oriented-box student, 92 of 100 activation ranges left a 20-epoch int16 stage 2x and more
    wider than the tensors they hold, and int8 on them scored mAP50-95 0.37 where ranges
    observed again gave 0.85 before any int8 training.
    """
    from studio.core.compress import distributed
    from studio.core.compress import fakequant as fq
    from studio.core.compress.loop import hyperparameters
    from studio.core.compress.yolo import model_task
    from studio.core.models import load_detector

    stepped = folder / "stepped.pt"
    if main and not stepped.is_file():
        job.stage(f"calibrate int{bits}", req.calib_batches)
        fq.set_bits(student, bits)
        folder.mkdir(parents=True, exist_ok=True)
        _calibrate_and_save(student, req, base, hyperparameters(base, model_task(student)), extra, stepped,
                            folder / "stepped.json", {"bits": bits})
    distributed.barrier(distributed.context())
    return load_detector(str(stepped))[0]


def _train_stage(student, teacher, req: QatRequest, cfg, job: Job, extra: dict) -> dict:
    """One bit width: the loop with the distillation terms; returns the stage's summary."""
    from torch import nn

    from studio.core.compress.fakequant import model_bits
    from studio.core.compress.kd_step import Distiller
    from studio.core.compress.loop import fit, hyperparameters
    from studio.core.compress.teacher_tuning import TeacherTuner
    from studio.core.compress.yolo import model_task

    extra_loss, extra_modules = None, None
    if req.kd.terms:
        distiller = Distiller(teacher, student, req.kd, req.imgsz)
        extra_loss, extra_modules = distiller, distiller.adapters
        if req.tune_teacher:  # the adapted teacher is part of the resumable state
            extra_loss = TeacherTuner(distiller, hyperparameters(cfg, model_task(teacher)), every=req.tune_every)
            extra_modules = nn.ModuleList([distiller.adapters, teacher])
    result = fit(student, cfg, job, extra_loss=extra_loss, extra_modules=extra_modules,
                 stage=f"qat int{model_bits(student)}", checkpoint_extra=extra)
    best = max(result.history, key=lambda h: h["map50_95"])
    return {"bits": model_bits(student), "epochs": result.epochs, "model": str(result.best),
            "map50_95": best["map50_95"], "map50": best["map50"], "small": best.get("small"),
            "history": result.history, "seconds": result.seconds}
