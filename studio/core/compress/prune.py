"""`studio prune`: progressive structured pruning of an ultralytics detector, with fine-tuning.

Step i of n removes channels until the model is at 1 - p_i of its original FLOPs (or
parameters), with p_i = p_f * (1 - (1 - i/n)^k): large steps first, while the network
is redundant, small ones near the target. Between steps the model fine-tunes (optionally
distilled from a teacher). Each step's pruned and tuned weights stay on disk, so an
interrupted run resumes where it stopped; the result is an ordinary ultralytics
checkpoint that `studio export` converts like any other. This module schedules the steps
and the fine-tuning; channel_pruner.py removes the channels of one step.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from deploy.errors import UserError
from deploy.runtime.atomic import write_json_atomic
from deploy.runtime.output import claim_run
from studio.core.compress.channel_pruner import PruneTarget, prune_to
from studio.core.compress.criteria import NEEDS_GRADIENTS, make_importance
from studio.core.compress.kd_config import KD_TERMS
from studio.core.compress.options import PRUNE
from studio.core.data.checks import check_dataset, check_kind
from studio.core.jobs import Job

TAYLOR_BATCHES = 4  # training batches whose gradients rank channels for the Taylor criterion


@dataclass
class PruneRequest:
    """Options of `studio prune`; one of target_flops / target_params (shares to keep)."""

    model: Path
    out: Path
    data: Path | None = None
    target_flops: float | None = None
    target_params: float | None = None
    criterion: str = PRUNE.default("criterion")
    scope: str = PRUNE.default("scope")  # global: rank channels across layers; layer: the same ratio in every layer
    protect: tuple[int, ...] = PRUNE.default("protect")  # ultralytics layer indices left untouched
    steps: int = PRUNE.default("steps")
    schedule_k: float = PRUNE.default("schedule_k")
    finetune_epochs: int = PRUNE.default("finetune_epochs")
    sparsity_epochs: int = PRUNE.default("sparsity_epochs")  # bn criterion: L1 on BatchNorm gammas before pruning
    bn_l1: float = PRUNE.default("bn_l1")
    teacher: Path | None = None  # distil from it while fine-tuning
    kd: tuple[str, ...] = KD_TERMS
    imgsz: int | None = None  # default: the size the model was trained at
    batch: int = PRUNE.default("batch")
    round_to: int | None = PRUNE.default("round_to")  # keep channel counts multiples of this (NPU-friendly)
    workers: int = 2
    val_limit: int | None = None
    resume: bool = False
    force: bool = False  # start over in an `out` that holds an earlier run


@dataclass
class PruneResult:
    """Field names are the JSON keys of `studio prune --json`."""

    model: str
    source: str
    criterion: str
    imgsz: int
    gflops: dict
    params: dict
    steps: list[dict] = field(default_factory=list)
    map50_95: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def schedule(final: float, steps: int, k: float) -> list[float]:
    """Cumulative pruned shares after each step: p_i = p_f * (1 - (1 - i/n)^k), i = 1..n."""
    return [final * (1 - (1 - i / steps) ** k) for i in range(1, steps + 1)]


def _target(req: PruneRequest) -> PruneTarget:
    if (req.target_flops is None) == (req.target_params is None):
        raise UserError("give one of --target-flops or --target-params (the share of the model to keep, e.g. 0.5)")
    if req.target_flops is not None:
        return PruneTarget("flops", req.target_flops)
    return PruneTarget("params", req.target_params)


def _validate(req: PruneRequest) -> str:
    """Refuse a bad request in one line; -> the kind of the data's labels ("" without data)."""
    PRUNE.check_fields(req)
    needs_data = req.finetune_epochs or req.sparsity_epochs or req.criterion in NEEDS_GRADIENTS
    if needs_data and req.data is None:
        raise UserError(f"--data: a data.yaml is needed to fine-tune or rank by {req.criterion}")
    if req.teacher is not None and not Path(req.teacher).is_file():
        raise UserError(f"--teacher {req.teacher}: no such file")
    return check_dataset(Path(req.data)) if needs_data else ""


def prune(req: PruneRequest, job: Job | None = None) -> PruneResult:
    """Prune (and fine-tune) step by step; writes <out>/pruned.pt and <out>/prune_report.json."""
    from studio.core.compress import distributed
    from studio.core.compress.c2f import split_c2f
    from studio.core.compress.loop import default_hyperparameters, save_checkpoint
    from studio.core.compress.yolo import model_task
    from studio.core.models import load_detector

    job = job or Job()
    started = time.monotonic()
    ctx = distributed.context()
    main = ctx.main  # under torchrun rank 0 prunes and writes; every rank fine-tunes (DDP) and follows it
    job = distributed.quiet(job, ctx)
    target = _target(req)
    labels = _validate(req)
    out = Path(req.out)
    claim_run(out, req.resume, req.force, "pruning run", remove=main)
    distributed.barrier(ctx)
    model, source = _loaded(req, labels)
    imgsz, loop_cfg, hyp = _training_setup(req, model, out)
    protect = _protected(model, req.protect)
    example = torch.zeros(1, 3, imgsz, imgsz)
    split_c2f(model)
    progress_file = out / "progress.json"
    done = _progress(req, progress_file)
    before = _measure(model, example)
    base_map = validate_model(model, hyp, loop_cfg, out / "original.pt") if req.data and main else None
    base_map = distributed.share_from_main(base_map, ctx)
    if req.sparsity_epochs and req.criterion == "bn" and not done["steps"]:
        model = _sparse_train(model, req, loop_cfg, job)
    shares = schedule(1 - target.keep, req.steps, req.schedule_k)
    for i, share in enumerate(shares, start=1):
        step_dir = out / f"step{i}"
        record = next((s for s in done["steps"] if s["step"] == i), None)
        if record and record.get("tuned"):
            model, _ = load_detector(record["tuned"])
            continue
        if record:
            model, _ = load_detector(record["pruned"])
        elif not main:  # rank 0 prunes; the others take its pruned model
            record = distributed.share_from_main(None, ctx)
            model, _ = load_detector(record["pruned"])
        else:
            job.stage(f"prune step {i}/{req.steps}", None, f"to {1 - share:.0%} of the {target.measure}")
            _prune_step(model, example, req, target, share, before, loop_cfg, hyp, protect)
            record = {"step": i, "share": round(share, 4), "pruned": str(step_dir / "pruned.pt")}
            save_checkpoint(model, Path(record["pruned"]), hyp or default_hyperparameters(imgsz, model_task(model)), -1)
            _save_progress(progress_file, done, record)
            distributed.share_from_main(record, ctx)
        gflops, params = _measure(model, example)
        record.update(gflops=round(gflops, 4), params=params)
        if req.finetune_epochs:
            model = _fine_tune(model, req, loop_cfg, step_dir, imgsz, record, job, i)
        _save_progress(progress_file, done, record, write=main)
    if not main:
        distributed.barrier(ctx)  # rank 0 validates and writes the result
        return PruneResult(**json.loads((out / "prune_report.json").read_text()))
    result = _final(model, example, req, target, source, imgsz, hyp, loop_cfg, before, base_map, done, started)
    write_json_atomic(out / "prune_report.json", result.to_dict())
    distributed.barrier(ctx)
    return result


def _loaded(req: PruneRequest, labels: str):
    """(model, its path); a model refused in one line when the data's labels are of the other kind."""
    from studio.core.compress.yolo import model_task
    from studio.core.models import load_detector

    model, source = load_detector(str(req.model))
    if labels:  # oriented labels for an OBB model, upright ones otherwise
        check_kind(Path(req.data), labels, model_task(model))
    return model, source


def _final(model, example, req: PruneRequest, target, source, imgsz: int, hyp, loop_cfg, before, base_map,
           done: dict, started: float) -> PruneResult:
    """Rank 0: the pruned model validated and saved as <out>/pruned.pt with its provenance, and the result."""
    from studio.core.compress.loop import default_hyperparameters, save_checkpoint
    from studio.core.compress.yolo import model_task
    from studio.core.provenance import provenance

    final = Path(req.out) / "pruned.pt"
    final_map = validate_model(model, hyp, loop_cfg, final) if req.data else None
    save_checkpoint(model, final, hyp or default_hyperparameters(imgsz, model_task(model)), -1, {"studio": provenance(
        Path(req.model), operation="prune", criterion=req.criterion, target=asdict(target), steps=req.steps)})
    return _result(req, final, source, imgsz, before, _measure(model, example), done["steps"], started,
                   {"before": base_map, "after": final_map} if req.data else {})


def _training_setup(req: PruneRequest, model, out: Path):
    """(input size, fine-tuning settings, hyperparameters or None without data) of a pruning run."""
    from studio.core.compress.loop import LoopConfig, hyperparameters
    from studio.core.compress.yolo import model_task, trained_imgsz

    imgsz = req.imgsz or trained_imgsz(model)
    if imgsz % 32:
        raise UserError(f"--imgsz {imgsz} is not a multiple of 32")
    loop_cfg = LoopConfig(data=Path(req.data) if req.data else Path(), epochs=req.finetune_epochs, out=out,
                          imgsz=imgsz, batch=req.batch, workers=req.workers, val_limit=req.val_limit)
    return imgsz, loop_cfg, hyperparameters(loop_cfg, model_task(model)) if req.data else None


def _progress(req: PruneRequest, progress_file: Path) -> dict:
    """The steps an earlier run finished (with --resume), or none."""
    return json.loads(progress_file.read_text()) if req.resume and progress_file.is_file() else {"steps": []}


def _fine_tune(model, req: PruneRequest, loop_cfg, step_dir: Path, imgsz: int, record: dict, job: Job, step: int):
    """Fine-tune after a pruning step (resuming its own state), note the result in `record`; -> the best model."""
    from studio.core.compress.loop import LoopConfig, fit
    from studio.core.models import load_detector

    cfg = LoopConfig(**{**asdict(loop_cfg), "out": step_dir, "resume": (step_dir / "state.pt").is_file()})
    extra, modules = _distiller(req, model, imgsz)
    result = fit(model, cfg, job, extra_loss=extra, extra_modules=modules, stage=f"fine-tune step {step}")
    record.update(tuned=str(result.best), map50_95=result.map50_95, history=result.history)
    return load_detector(str(result.best))[0]


def _prune_step(model, example, req: PruneRequest, target, share: float, before, loop_cfg, hyp, protect) -> None:
    """Remove channels until the model is at 1 - share of its original FLOPs (or parameters)."""
    from studio.core.compress.yolo import head_output_convs, raw_head_outputs

    current = _measure(model, example)[0 if target.measure == "flops" else 1]
    original = before[0 if target.measure == "flops" else 1]
    keep = (1 - share) * original / current
    if keep < 1.0:
        backward = _taylor_backward(model, loop_cfg, hyp) if req.criterion in NEEDS_GRADIENTS else None
        prune_to(model, example, make_importance(req.criterion), PruneTarget(target.measure, keep),
                 ignored=head_output_convs(model) + protect, scope=req.scope, round_to=req.round_to,
                 backward=backward, forward=raw_head_outputs)


def _result(req: PruneRequest, final: Path, source, imgsz: int, before, after, steps: list, started: float,
            map50_95: dict) -> PruneResult:
    return PruneResult(
        model=str(final), source=str(source), criterion=req.criterion, imgsz=imgsz,
        gflops={"before": round(before[0], 4), "after": round(after[0], 4), "ratio": round(after[0] / before[0], 4)},
        params={"before": before[1], "after": after[1], "ratio": round(after[1] / before[1], 4)},
        steps=steps, seconds=round(time.monotonic() - started, 1), map50_95=map50_95)


def _measure(model, example) -> tuple[float, int]:
    from studio.core.compress.channel_pruner import ConvFlops
    from studio.core.compress.yolo import raw_head_outputs

    was = model.training
    model.eval()
    try:
        return ConvFlops(model, example, raw_head_outputs)()
    finally:
        model.train(was)


def validate_model(model, hyp, cfg, path: Path) -> float:
    """Val mAP50-95 of an in-memory model (saved to `path` first, as the evaluator reads files)."""
    from studio.core.compress.loop import save_checkpoint, validate

    save_checkpoint(model, path, hyp, -1)
    return validate(path, cfg)["map50_95"]


def _protected(model, indices: tuple[int, ...]) -> list:
    layers = len(model.model)
    bad = [i for i in indices if not 0 <= i < layers - 1]
    if bad:
        raise UserError(f"--protect {bad}: layer indices run from 0 to {layers - 2} (the head is always kept whole)")
    return [model.model[i] for i in indices]


def _save_progress(path: Path, done: dict, record: dict, write: bool = True) -> None:
    """Note a step's record (replacing an earlier one) and, unless told not to (ranks other than 0), save it."""
    done["steps"] = [s for s in done["steps"] if s["step"] != record["step"]] + [record]
    if write:
        write_json_atomic(path, done)


def _taylor_backward(model, cfg, hyp):
    """A function that accumulates loss gradients over a few training batches, BatchNorm statistics frozen."""
    from studio.core.compress.loop import training_batches

    batches = training_batches(cfg, hyp, model, TAYLOR_BATCHES)

    def backward(m) -> None:
        m.train()
        for module in m.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
        m.args, m.criterion = hyp, None
        for batch in batches:
            loss, _ = m.loss(batch, m(batch["img"]))
            loss.sum().backward()

    return backward


def _sparse_train(model, req: PruneRequest, cfg, job: Job):
    """Network Slimming's sparsity phase: train with an L1 penalty on every BatchNorm gamma."""
    from studio.core.compress.loop import LoopConfig, fit
    from studio.core.models import load_detector

    gammas = [m.weight for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]

    def penalty(batch, preds, m):
        l1 = sum(g.abs().sum() for g in gammas)
        return req.bn_l1 * l1 / batch["img"].shape[0], {"bn_l1": float(l1.detach())}

    sparse_cfg = LoopConfig(**{**asdict(cfg), "epochs": req.sparsity_epochs, "out": Path(req.out) / "sparsity",
                               "resume": (Path(req.out) / "sparsity" / "state.pt").is_file()})
    result = fit(model, sparse_cfg, job, extra_loss=penalty, stage="sparsity training")
    return load_detector(str(result.last))[0]


def _distiller(req: PruneRequest, model, imgsz: int):
    if req.teacher is None:
        return None, None
    from studio.core.compress.kd_config import KdConfig
    from studio.core.compress.kd_step import Distiller
    from studio.core.models import load_detector

    teacher, _ = load_detector(str(req.teacher))
    distiller = Distiller(teacher, model, KdConfig(terms=tuple(req.kd)), imgsz)
    return distiller, distiller.adapters
