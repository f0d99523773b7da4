"""The training loop behind fine-tuning, distillation and quantization-aware training.

Ultralytics' trainer rebuilds a model from its yaml before training, which would undo a
pruned architecture, and it has no place for extra loss terms; so compression jobs train
with this loop. It borrows ultralytics' data pipeline (augmentation, mosaic), its
detection loss and its EMA, adds whatever `extra_loss` returns (distillation terms, a
sparsity penalty), validates with `studio eval` after every epoch, and keeps a resumable
state file next to the weights. The saved checkpoints are ordinary ultralytics ones.
"""
from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from deploy.errors import UserError
from deploy.runtime.atomic import staged
from studio.core.compress.schedule import Schedule
from studio.core.jobs import Job

ExtraLoss = Callable[[dict, dict, nn.Module], "tuple[torch.Tensor, dict[str, float]]"]


@dataclass
class LoopConfig:
    """How to train; defaults suit fine-tuning a trained detector on a CPU."""

    data: Path
    epochs: int
    out: Path  # folder for best.pt, last.pt and state.pt
    imgsz: int = 320
    batch: int = 16
    lr: float = 0.001  # AdamW, cosine to lr * final_lr
    final_lr: float = 0.05
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    close_mosaic: int = 10  # train the last N epochs without mosaic (schedule.py: sooner once flat)
    workers: int = 2
    seed: int = 0
    until_flat: bool = False  # end once the val mAP50-95 is flat by the full-budget rule (schedule.py)
    val_limit: int | None = None  # validate on the first N val images only
    resume: bool = False
    overrides: dict = field(default_factory=dict)  # any other ultralytics hyper-parameter


@dataclass
class LoopResult:
    best: Path
    last: Path
    epochs: int
    map50_95: float
    map50: float
    history: list[dict]
    seconds: float


def hyperparameters(cfg: LoopConfig, task: str = "detect"):
    """Ultralytics' hyper-parameter namespace (loss gains, augmentation) for this run of a model of `task` (obb:
    oriented labels are read and ultralytics' OBB loss is used)."""
    from ultralytics.cfg import get_cfg

    return get_cfg(overrides={"imgsz": cfg.imgsz, "batch": cfg.batch, "workers": cfg.workers, "seed": cfg.seed,
                              "data": str(cfg.data), "close_mosaic": cfg.close_mosaic, "task": task,
                              **cfg.overrides})


def default_hyperparameters(imgsz: int, task: str = "detect"):
    """Ultralytics' default hyper-parameters at an image size, for checkpoints saved without training."""
    from ultralytics.cfg import get_cfg

    return get_cfg(overrides={"imgsz": imgsz, "task": task})


def _dataloader(cfg: LoopConfig, hyp, model: nn.Module, rank: int = -1, world: int = 1):
    """Ultralytics' training data; with several ranks each reads its share (DistributedSampler) of batch/world."""
    from ultralytics.data import build_dataloader, build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    from studio.core.models import ultralytics_quiet

    per_rank = max(cfg.batch // world, 1)  # --batch is the global batch
    try:
        with ultralytics_quiet():  # it reports every cache scan
            data = check_det_dataset(str(cfg.data))
            stride = max(int(model.stride.max()), 32)
            dataset = build_yolo_dataset(hyp, data["train"], per_rank, data, mode="train", stride=stride)
    except Exception as exc:
        raise UserError(f"--data {cfg.data}: cannot load the training split ({exc})") from None
    loader = build_dataloader(dataset, per_rank, cfg.workers, shuffle=True, pin_memory=False, rank=rank)
    if loader.num_workers:
        loader.multiprocessing_context = _worker_context()
    if rank != -1:  # one permutation on every rank, so their shares are disjoint (ultralytics seeds per rank)
        loader.sampler.seed = cfg.seed
    return dataset, loader


@functools.cache
def _worker_context():
    """Loader workers start from a small server process that has imported the data pipeline, not forked from
    this one: a worker forked from a training process keeps every page that process rewrites after the fork
    (weights, gradients, activations), so at the no-mosaic switch, when the workers start again, each held a
    copy of most of a multi-GB distillation rank."""
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["ultralytics.data.dataset"])
    return context


def training_batches(cfg: LoopConfig, hyp, model: nn.Module, count: int) -> list[dict]:
    """The first `count` training batches, images scaled to 0..1 (for gradient-based channel ranking): the same
    ones for the same seed, so a ranking and the widths it leads to are reproducible (the loader's order and
    augmentation follow torch's seed)."""
    torch.manual_seed(cfg.seed)
    _, loader = _dataloader(cfg, hyp, model)
    batches = []
    for batch in loader:
        batch["img"] = batch["img"].float() / 255
        batches.append(batch)
        if len(batches) == count:
            break
    return batches


def optimizer_for(model: nn.Module, cfg: LoopConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on conv/linear weights only (not on BatchNorm or biases)."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            is_norm = isinstance(module, nn.modules.batchnorm._BatchNorm)
            (decay if name == "weight" and not is_norm else no_decay).append(param)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.937, 0.999))


def save_checkpoint(model: nn.Module, path: Path, hyp, epoch: int, extra: dict | None = None) -> None:
    """An ultralytics-style checkpoint (`ema` holds the model, in half precision), written atomically.

    A fake-quantized model stays in float32: its scales are the int8 grids it will export,
    and half precision would move them.
    """
    from ultralytics import __version__

    from studio.core.compress.fakequant import is_quantized

    saved = copy.deepcopy(model).eval()
    if not is_quantized(saved):
        saved = saved.half()
    saved.args = {k: v for k, v in vars(hyp).items()}
    for attr in ("criterion",):
        if hasattr(saved, attr):
            setattr(saved, attr, None)
    ckpt = {"epoch": epoch, "model": None, "ema": saved, "train_args": dict(saved.args), "version": __version__,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S"), **(extra or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    with staged(path) as tmp:
        torch.save(ckpt, tmp)


def validate(weights: Path, cfg: LoopConfig) -> dict:
    """mAP of a checkpoint on the val split, through `studio eval`'s torch path."""
    from studio.core.evaluate import EvalRequest, evaluate

    result = evaluate(EvalRequest(model=weights, data=Path(cfg.data), imgsz=cfg.imgsz, limit=cfg.val_limit))
    return {"map50_95": result.map50_95, "map50": result.map50, "small": result.per_size.get("small")}


def prepare_training(model: nn.Module, cfg: LoopConfig):
    """Make `model` trainable for this run: hyper-parameters for its loss and data (its task), a fresh criterion,
    gradients on."""
    from studio.core.compress.yolo import model_task

    hyp = hyperparameters(cfg, model_task(model))
    model.args = hyp  # the detection loss reads its gains from here
    model.criterion = None  # rebuilt for the current (possibly pruned) head
    for name, p in model.named_parameters():  # all but the head's fixed DFL projection, as ultralytics does
        p.requires_grad_(".dfl" not in name)
    return hyp


def train_step(model: nn.Module, batch: dict, optimizer: torch.optim.Optimizer, extra_loss: ExtraLoss | None,
               trainable: nn.Module, forward: nn.Module | None = None,
               after_backward: Callable[[], None] | None = None) -> tuple[float, dict[str, float]]:
    """One optimisation step on a batch (images already 0..1): detection loss plus the extra terms.

    `forward` is what to call for the predictions (DDP around `model` when distributed);
    `after_backward` runs between backward and the step (averaging other gradients).
    Returns the total loss (per batch, before the step) and its parts for the log.
    """
    preds = (forward or model)(batch["img"])
    loss, items = model.loss(batch, preds)
    total = loss.sum()
    parts = {k: float(v) for k, v in items.items()} if isinstance(items, dict) else {"det": float(loss.sum())}
    if extra_loss is not None:
        extra, extra_parts = extra_loss(batch, preds, model)
        total = total + extra * batch["img"].shape[0]
        parts.update(extra_parts)
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    if after_backward is not None:
        after_backward()
    torch.nn.utils.clip_grad_norm_(trainable.parameters(), max_norm=10.0)
    optimizer.step()
    return float(total.detach()), parts


@dataclass
class _EpochEnd:
    """What rank 0 does after each epoch: save last.pt, validate, keep best.pt, save the state to resume from."""

    model: nn.Module
    ema: object
    optimizer: object
    extra_modules: nn.Module | None
    hyp: object
    cfg: LoopConfig
    checkpoint_extra: dict
    history: list
    best_fitness: float
    trained: Callable[[], float]  # seconds trained so far, the runs this one resumes included

    def __call__(self, epoch: int, epoch_sums: dict, job: Job, stage: str, batches: int, world: int) -> None:
        """Adds this epoch to `history` and keeps `best_fitness`, the best val mAP50-95 so far."""
        out = self.cfg.out
        save_checkpoint(self.ema.ema, out / "last.pt", self.hyp, epoch, self.checkpoint_extra)
        metrics = validate(out / "last.pt", self.cfg)
        self.history.append({"epoch": epoch + 1, **metrics, **epoch_sums})
        job.step(stage, (epoch + 1) * batches, self.cfg.epochs * batches,
                 f"epoch {epoch + 1}/{self.cfg.epochs}: val mAP50-95 {metrics['map50_95']:.4f}")
        if metrics["map50_95"] > self.best_fitness:
            self.best_fitness = metrics["map50_95"]
            save_checkpoint(self.ema.ema, out / "best.pt", self.hyp, epoch, self.checkpoint_extra)
        with staged(out / "state.pt") as tmp:
            torch.save({"model": self.model.state_dict(), "ema": self.ema.ema.state_dict(),
                        "updates": self.ema.updates, "optimizer": self.optimizer.state_dict(),
                        "extra": self.extra_modules.state_dict() if self.extra_modules else None, "epoch": epoch,
                        "best_fitness": self.best_fitness, "history": self.history, "world_size": world,
                        "seconds": self.trained()}, tmp)


def _resume(cfg: LoopConfig, model, ema, extra_modules, optimizer, ctx):
    """Load the training state every rank continues from (read by rank 0, shared); -> (epoch, best, history,
    seconds trained so far)."""
    from studio.core.compress import distributed

    state_path = cfg.out / "state.pt"
    if not distributed.share_from_main(state_path.is_file(), ctx):  # every rank says so, none waits
        raise UserError(f"nothing to resume: {state_path} does not exist")
    state = distributed.share_from_main(torch.load(state_path, map_location="cpu", weights_only=False)
                                        if ctx.main else None, ctx)
    model.load_state_dict(state["model"])
    ema.ema.load_state_dict(state["ema"])
    ema.updates = state["updates"]
    if extra_modules is not None and state.get("extra") is not None:
        extra_modules.load_state_dict(state["extra"])
    optimizer.load_state_dict(state["optimizer"])
    start_epoch = state["epoch"] + 1
    if start_epoch >= cfg.epochs:
        raise UserError(f"{cfg.out} already finished its {cfg.epochs} epochs; nothing to resume")
    return start_epoch, state["best_fitness"], state["history"], state.get("seconds", 0.0)  # older states: 0


def _train_epoch(model, loader, optimizer, ema, schedule: Schedule, epoch: int, epochs: int, job: Job, stage: str,
                 step: Callable[[dict], tuple]) -> dict[str, float]:
    """One epoch over `loader`: the rate set per batch, one optimiser step and EMA update each, the loss parts
    averaged over the steps that gave them (teacher tuning reports from its first adaptation on)."""
    from studio.core.compress import distributed

    model.train()
    if distributed.context().active:
        loader.sampler.set_epoch(epoch)  # another shuffle each epoch, the same on every rank
    batches = len(loader)
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for i, batch in enumerate(loader):
        job.cancel.check()
        for group in optimizer.param_groups:
            group["lr"] = schedule.rate(epoch + i / batches)
        batch["img"] = batch["img"].float() / 255
        _, parts = step(batch)
        ema.update(model)
        for k, v in parts.items():
            sums[k], counts[k] = sums.get(k, 0.0) + v, counts.get(k, 0) + 1
        job.step(stage, epoch * batches + i + 1, epochs * batches,
                 f"epoch {epoch + 1}/{epochs} " + " ".join(f"{k} {v / counts[k]:.3f}" for k, v in sums.items()))
    return {k: round(v / counts[k], 5) for k, v in sums.items()}


def fit(model: nn.Module, cfg: LoopConfig, job: Job | None = None, extra_loss: ExtraLoss | None = None,
        extra_modules: nn.Module | None = None, stage: str = "fine-tune", checkpoint_extra: dict | None = None
        ) -> LoopResult:
    """Train `model` in place for cfg.epochs (or resume), keeping best.pt by val mAP50-95.

    `extra_loss(batch, preds, model)` returns a scalar added to the detection loss (per image,
    like each detection term) and a dict of its parts for the log; `extra_modules` holds
    trainable parameters it owns (distillation adapters), optimised with the model.
    """
    from ultralytics.utils.torch_utils import ModelEMA

    from studio.core.compress import distributed

    ctx = distributed.context()
    job = distributed.quiet(job or Job(), ctx)  # rank 0 reports
    checkpoint_extra = {**(checkpoint_extra or {}), "world_size": ctx.world}
    started = time.monotonic()
    torch.manual_seed(cfg.seed)
    hyp = prepare_training(model, cfg)
    trainable = nn.ModuleList([model] + ([extra_modules] if extra_modules is not None else []))
    optimizer = optimizer_for(trainable, cfg)
    ema = ModelEMA(model)
    start_epoch, best_fitness, history, before = 0, -1.0, [], 0.0
    if cfg.resume:
        start_epoch, best_fitness, history, before = _resume(cfg, model, ema, extra_modules, optimizer, ctx)
    from studio.core.compress.fakequant import is_quantized

    forward = distributed.wrap(model, ctx, find_unused=is_quantized(model))
    distributed.broadcast_module(extra_modules, ctx)
    dataset, loader = _dataloader(cfg, hyp, model, ctx.rank if ctx.active else -1, ctx.world)
    batches = len(loader)
    job.stage(stage, cfg.epochs * batches)

    def trained() -> float:
        return round(before + time.monotonic() - started, 1)

    def step(batch: dict) -> tuple:
        return train_step(model, batch, optimizer, extra_loss, trainable, forward,
                          lambda: distributed.average_gradients(extra_modules, ctx))

    end_epoch = _EpochEnd(model, ema, optimizer, extra_modules, hyp, cfg, checkpoint_extra, history, best_fitness,
                          trained)
    mosaic_on = True
    for epoch in range(start_epoch, cfg.epochs):
        schedule = distributed.share_from_main(Schedule.of(cfg, history), ctx)  # rank 0 holds the history
        if distributed.share_from_main(schedule.done(history), ctx):  # also a resumed run that stopped flat
            job.stage(stage, None, f"val mAP50-95 flat after {len(history)} epochs: stopping before {cfg.epochs}")
            break
        if mosaic_on and not schedule.mosaic(epoch):  # once, also where the hyper-parameters had no mosaic
            dataset.close_mosaic(hyp)
            loader.reset()  # the workers hold their own copy of the dataset
            mosaic_on = False
        epoch_sums = _train_epoch(model, loader, optimizer, ema, schedule, epoch, cfg.epochs, job, stage, step)
        distributed.on_main(ctx, end_epoch, epoch, epoch_sums, job, stage, batches, ctx.world)
    return _result(cfg, distributed.share_from_main(history, ctx), trained())  # every rank: rank 0's history


def _result(cfg: LoopConfig, history: list[dict], seconds: float) -> LoopResult:
    """The run's result: its best epoch by val mAP50-95, how many epochs it trained and for how long in all (the
    runs it resumed included)."""
    best = max(history, key=lambda h: h["map50_95"]) if history else {"map50_95": 0.0, "map50": 0.0}
    return LoopResult(best=cfg.out / "best.pt", last=cfg.out / "last.pt", epochs=len(history),
                      map50_95=best["map50_95"], map50=best["map50"], history=history,
                      seconds=seconds)
