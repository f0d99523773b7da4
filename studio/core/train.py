"""Train a detector with ultralytics, reporting progress through the job API.

Checkpoints land in `<project>/<name>/weights/{last,best}.pt` after every epoch, so an
interrupted run can resume (`resume=True` picks up last.pt). The data issue deepens this
(provenance, evaluation); here it serves the demo: a model trained briefly on synthetic data.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from deploy.errors import UserError
from deploy.runtime.atomic import write_json_atomic
from deploy.runtime.digest import sha256_of
from deploy.runtime.output import claim_run
from studio.core.convergence import convergence, results_csv_maps, results_rows
from studio.core.data.checks import check_dataset, check_kind
from studio.core.jobs import Job
from studio.core.models import resolve_model_path
from studio.core.provenance import provenance


@dataclass
class TrainRequest:
    """Options of `studio train`; defaults suit a CPU."""

    model: str  # .yaml architecture (from scratch) or .pt checkpoint (fine-tune)
    data: Path  # a data.yaml (YOLO layout)
    epochs: int = 10
    imgsz: int = 320
    batch: int = 16
    project: Path = Path("runs/train")
    name: str = "exp"
    workers: int = 2  # dataloader processes; the machine has 2 cores (0: load in the main process)
    seed: int = 0
    resume: bool = False  # continue from <project>/<name>/weights/last.pt
    force: bool = False  # start over in a <project>/<name> that holds an earlier run
    verbose: bool = False  # show ultralytics' own log
    devices: str = "cpu"  # ultralytics' device: cpu, or GPU ids "0,1" (ultralytics then runs DDP itself)
    init: str | None = None  # a .pt whose layers of matching shape start the architecture (a detector's backbone)
    until_flat: bool = False  # stop before `epochs` once the val mAP50-95 is flat by the full-budget rule
    mosaic: bool = True  # False: no epoch uses mosaic (ultralytics' final no-mosaic phase spans the whole run)
    lr: float | None = None  # AdamW at this peak rate without warm-up (None: ultralytics' automatic choice)


@dataclass
class TrainResult:
    """Where the weights are and how good they got on the val split."""

    best: str
    last: str
    epochs: int
    map50_95: float
    map50: float
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def train(req: TrainRequest, job: Job | None = None) -> TrainResult:
    """Train (or resume) and return the best weights with their val metrics."""
    from ultralytics import YOLO
    from ultralytics.utils import LOGGER

    from studio.core.compress import distributed

    job = job or Job()
    started = time.monotonic()
    if req.init and not req.resume:
        resolve_model_path(req.init)  # a missing --init is named before anything else is looked at
    kind = check_dataset(Path(req.data))
    run_dir = Path(req.project) / req.name
    ctx = distributed.context()
    claim_run(run_dir, req.resume, req.force, "training run", remove=ctx.main)
    distributed.barrier(ctx)
    if ctx.active:  # under torchrun on CPUs: ultralytics' trainer does DDP on GPUs only
        return _train_with_loop(req, job)
    last = run_dir / "weights" / "last.pt"
    if req.resume and not last.is_file():
        raise UserError(f"nothing to resume: {last} does not exist")
    if req.resume and is_finished(last):
        raise UserError(f"{run_dir} already finished its epochs; nothing to resume")
    model = YOLO(str(last)) if req.resume else started_model(req)
    check_kind(Path(req.data), kind, model.task)  # a detect model on oriented labels (or back) is refused
    if req.resume:
        _note_resume(run_dir)
    trainer = with_whole_checkpoints(model._smart_load("trainer"))
    job.stage("train", req.epochs)

    def on_batch_end(trainer) -> None:
        job.cancel.check()

    def on_epoch_end(trainer) -> None:
        job.step("train", min(trainer.epoch + 1, trainer.epochs), trainer.epochs)
        if req.until_flat and convergence(results_csv_maps(run_dir))["flat"]:
            trainer.stop = True  # after this epoch, which is saved; ultralytics then finishes the run as usual

    model.add_callback("on_train_batch_end", on_batch_end)
    model.add_callback("on_fit_epoch_end", on_epoch_end)
    level = LOGGER.level
    if not req.verbose:
        LOGGER.setLevel(logging.WARNING)
    try:
        args = dict(data=str(req.data), epochs=req.epochs, imgsz=req.imgsz, batch=req.batch, device=req.devices,
                    workers=req.workers, project=str(Path(req.project).resolve()), name=req.name, exist_ok=True,
                    plots=False, amp=False, seed=req.seed, verbose=req.verbose,
                    **({} if req.mosaic else {"close_mosaic": req.epochs}),
                    **({} if req.lr is None else {"optimizer": "AdamW", "lr0": req.lr, "warmup_epochs": 0}))
        model.train(resume=True, trainer=trainer) if req.resume else model.train(trainer=trainer, **args)
    finally:
        LOGGER.setLevel(level)
    return _finished(req, model.trainer, run_dir, started)


def started_model(req: TrainRequest):
    """The ultralytics model a new run starts from: the architecture or checkpoint, and with `init` the layers
    of another model that have the same shape (a detector's backbone and neck start an oriented-box model)."""
    from ultralytics import YOLO

    resolve_model_path(req.model)  # fails early, with the no-download message, for a missing .pt
    model = YOLO(req.model)
    if req.init:
        model.load(str(resolve_model_path(req.init)))  # the rest (the head's class and angle branches) as built
    return model


def _finished(req: TrainRequest, trainer, run_dir: Path, started: float) -> TrainResult:
    """The result of a finished ultralytics run, with its provenance written beside the weights."""
    metrics = trainer.metrics or {}
    result = TrainResult(
        best=str(trainer.best), last=str(trainer.last), epochs=len(results_csv_maps(run_dir)),
        map50_95=round(float(metrics.get("metrics/mAP50-95(B)", 0.0)), 4),
        map50=round(float(metrics.get("metrics/mAP50(B)", 0.0)), 4),
        seconds=round(time.monotonic() - started, 1),
    )
    write_json_atomic(run_dir / "provenance.json", provenance(Path(req.data), **{
        "model": req.model, "epochs": trainer.epochs, "imgsz": req.imgsz, "batch": req.batch, "seed": req.seed,
        "best": result.best, "val_map50_95": result.map50_95, "val_map50": result.map50,
        "train_seconds": training_seconds(run_dir), "resumed": req.resume, **_init_record(req.init),
        "convergence": convergence(results_csv_maps(run_dir)),
        "command": f"studio train {req.model} --data {req.data} --epochs {req.epochs} --imgsz {req.imgsz} "
                   f"--batch {req.batch} --project {req.project} --name {req.name}"
                   + (f" --init {req.init}" if req.init else "") + (" --until-flat" if req.until_flat else "")
                   + ("" if req.mosaic else " --no-mosaic") + ("" if req.lr is None else f" --lr {req.lr}"),
    }))
    return result


def _init_record(init: str | None) -> dict:
    """Which weights started the run, by path and content, so a model card can say what it grew from."""
    if not init:
        return {}
    path = resolve_model_path(init)
    return {"init": str(init), "init_sha256": sha256_of(path)}


def _train_with_loop(req: TrainRequest, job: Job) -> TrainResult:
    """Training on several CPU processes: the studio's loop (DDP, gloo) from an architecture or a checkpoint."""
    import torch

    from studio.core.compress import distributed
    from studio.core.compress.loop import LoopConfig, fit
    from studio.core.data.formats import read_yaml, yaml_names
    from studio.core.models import load_detector

    started = time.monotonic()
    names = yaml_names(read_yaml(Path(req.data)), Path(req.data))
    if str(req.model).endswith((".yaml", ".yml")):
        torch.manual_seed(req.seed)  # every rank builds the same start (DDP also sends rank 0's weights)
        model, _ = load_detector(str(req.model), nc=len(names))  # an -obb.yaml builds an OBB model
        if req.init:
            model.load(load_detector(str(resolve_model_path(req.init)))[0])  # layers of the same shape
        model.names = dict(enumerate(names))
    else:
        model, _ = load_detector(str(resolve_model_path(req.model)))
        if model.model[-1].nc != len(names):
            raise UserError(f"{req.model} detects {model.model[-1].nc} classes, the data has {len(names)}: with "
                            "--nproc, start from an architecture (yolov8n.yaml) or a checkpoint of the same classes")
    weights = Path(req.project) / req.name / "weights"  # fit refuses a --resume without state, on every rank
    cfg = LoopConfig(data=Path(req.data), epochs=req.epochs, out=weights, imgsz=req.imgsz, batch=req.batch,
                     workers=req.workers, seed=req.seed, resume=req.resume, close_mosaic=min(10, req.epochs // 4),
                     until_flat=req.until_flat)
    result = fit(model, cfg, job, stage="train")
    if distributed.is_main():
        write_json_atomic(weights.parent / "provenance.json", provenance(Path(req.data), **{
            "model": req.model, "epochs": req.epochs, "imgsz": req.imgsz, "batch": req.batch, "seed": req.seed,
            "best": str(result.best), "val_map50_95": result.map50_95, "trainer": "studio loop (torchrun, DDP)",
            "world_size": distributed.context().world, "resumed": req.resume, **_init_record(req.init)}))
    return TrainResult(best=str(result.best), last=str(result.last), epochs=result.epochs, map50_95=result.map50_95,
                       map50=result.map50, seconds=round(time.monotonic() - started, 1))


def with_whole_checkpoints(trainer_class: type) -> type:
    """The ultralytics trainer, saving each epoch's last.pt and best.pt under a temporary name and renaming.

    ultralytics writes them in place, so a kill or Ctrl-C during the write left a truncated last.pt that
    no --resume could read; now the old checkpoint stays whole until the new one is.
    """

    def save_model(self) -> bool:
        final = {"last": self.last, "best": self.best}
        parts = {key: path.with_name(f".{path.name}.part") for key, path in final.items()}
        self.last, self.best = parts["last"], parts["best"]
        try:
            saved = trainer_class.save_model(self)
        finally:
            self.last, self.best = final["last"], final["best"]
        for key in ("last", "best"):  # last first: a kill between the two leaves a whole pair
            if parts[key].exists():
                parts[key].replace(final[key])
        return saved

    return type(f"WholeCheckpoints{trainer_class.__name__}", (trainer_class,), {"save_model": save_model})


def is_finished(checkpoint: Path) -> bool:
    """ultralytics marks a checkpoint whose training completed with epoch -1."""
    import torch

    try:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for a cut or foreign file
        raise UserError(f"{checkpoint} is damaged ({type(exc).__name__}); --force starts the run over") from None
    return ckpt.get("epoch", -1) == -1


RESUMES = "resumes.json"  # the results.csv rows there were at each resume


def _note_resume(run_dir: Path) -> None:
    """Note that a run resumes after the results.csv rows there are now: its running time starts again there."""
    path = run_dir / RESUMES
    rows = json.loads(path.read_text()) if path.is_file() else []
    write_json_atomic(path, rows + [len(results_rows(run_dir))])


def training_seconds(run_dir: Path) -> float | None:
    """Wall time of all epochs, across resumes: results.csv's `time` is a running total that a resume starts
    again, so each run's last total adds up. Where the resumes are noted (resumes.json) they mark the runs;
    in an older run, a total lower than the one before does (which misses a resumed epoch outlasting all before)."""
    times = [float(row["time"]) for row in results_rows(run_dir) if row.get("time")]
    if not times:
        return None
    noted = run_dir / RESUMES
    if noted.is_file():
        ends = [times[n - 1] for n in sorted(set(json.loads(noted.read_text()))) if 0 < n < len(times)]
    else:
        ends = [a for a, b in zip(times, times[1:]) if b < a]
    return round(sum(ends) + times[-1], 1)
