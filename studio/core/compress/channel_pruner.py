"""Structured pruning of any torch model to a FLOPs, parameter or channel target, with torch-pruning.

DepGraph groups the layers whose channels must go together (a conv, its BatchNorm, the
convs that read it, residual partners); a criterion ranks the channels of each group and
the pruner removes the lowest. To land on a FLOPs or parameter target the pruner takes
many small steps (1/`granularity` of the channel ratio) and stops at the first that reaches
it; once the next step could jump far past the goal (widths rounded to 16 move in lumps) it
goes on in steps FINE times smaller, so the result overshoots by at most one of those.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from deploy.errors import UserError

MEASURES = ("flops", "params", "channels")
SCOPES = ("global", "layer")
MAX_CHANNEL_RATIO = 0.9  # no group loses more than this share of its channels
FINE = 4  # near its goal the pruner takes steps this much smaller: widths in 16s make coarse steps jump


@dataclass(frozen=True)
class PruneTarget:
    """What to keep: `keep` of the model's FLOPs or parameters, or of every group's channels."""

    measure: str = "flops"
    keep: float = 0.5

    def __post_init__(self):
        if self.measure not in MEASURES:
            raise UserError(f"prune target {self.measure!r} is not one of: {', '.join(MEASURES)}")
        if not 0.0 < self.keep < 1.0:
            raise UserError(f"the share to keep must be between 0 and 1 (exclusive), got {self.keep}")


@dataclass
class PruneStats:
    """FLOPs (multiply-accumulates x 2) and parameters before and after, at the example input."""

    gflops_before: float
    gflops_after: float
    params_before: int
    params_after: int

    @property
    def flops_ratio(self) -> float:
        return self.gflops_after / self.gflops_before

    @property
    def params_ratio(self) -> float:
        return self.params_after / self.params_before


class ConvFlops:
    """FLOPs of a model's convolutions and linear layers from their current weight shapes.

    Pruning changes channel counts, never spatial sizes, so each layer's output size is
    recorded once with a forward pass; after that every count is arithmetic over weight
    shapes (a traced count per pruning step would cost a forward pass and a deep copy).
    """

    def __init__(self, model: nn.Module, example: torch.Tensor, forward: Callable | None = None):
        self.pixels: dict[nn.Module, int] = {}
        hooks = [m.register_forward_hook(self._record) for m in model.modules()
                 if isinstance(m, (nn.Conv2d, nn.Linear))]
        try:
            with torch.no_grad():
                (forward or (lambda mod, x: mod(x)))(model, example)
        finally:
            for hook in hooks:
                hook.remove()
        self.model = model

    def _record(self, module, inputs, output) -> None:
        self.pixels[module] = output.shape[-2] * output.shape[-1] if isinstance(module, nn.Conv2d) else 1

    def __call__(self) -> tuple[float, int]:
        """(GFLOPs, parameters) now: 2 x multiply-accumulates of every recorded layer."""
        macs = sum(pixels * module.weight.numel() for module, pixels in self.pixels.items())
        return 2 * macs / 1e9, sum(p.numel() for p in self.model.parameters())


def prune_to(model: nn.Module, example: torch.Tensor, importance, target: PruneTarget, *,
             ignored: list[nn.Module] = (), scope: str = "global", round_to: int | None = None,
             backward: Callable[[nn.Module], None] | None = None, forward: Callable | None = None,
             granularity: int = 100) -> PruneStats:
    """Prune `model` in place until it meets `target`.

    `backward(model)` fills gradients (Taylor) before each step; `forward(model, example)` is what
    DepGraph traces (default: the model's own forward).
    """
    if scope not in SCOPES:
        raise UserError(f"--scope {scope!r} is not one of: {', '.join(SCOPES)}")
    was_training, threads = model.training, torch.get_num_threads()
    torch.set_num_threads(1)  # pruning is thousands of tiny tensor ops: thread hand-offs cost 20x the work
    try:
        return _prune_to(model, example, importance, target, ignored, scope, round_to, backward, forward, granularity)
    finally:
        torch.set_num_threads(threads)
        model.zero_grad(set_to_none=True)
        model.train(was_training)


def _prune_to(model, example, importance, target, ignored, scope, round_to, backward, forward, granularity):
    model.eval()  # tracing in train mode would update BatchNorm statistics with the dummy input
    for p in model.parameters():
        p.requires_grad_(True)  # DepGraph follows autograd; checkpoints saved from an EMA come frozen
    count = ConvFlops(model, example, forward)
    gflops0, params0 = count()
    one_shot = target.measure == "channels"
    steps = 1 if one_shot else granularity * FINE
    pruner = tp.pruner.MetaPruner(
        model, example, importance, global_pruning=scope == "global",
        pruning_ratio=(1 - target.keep) if one_shot else MAX_CHANNEL_RATIO, max_pruning_ratio=MAX_CHANNEL_RATIO,
        iterative_steps=steps, ignored_layers=list(ignored), round_to=round_to, forward_fn=forward)
    goal = target.keep * (gflops0 if target.measure == "flops" else params0)
    gflops, params, stride, biggest = gflops0, params0, 1 if one_shot else FINE, 0.0
    while pruner.current_step < steps:
        if backward is not None:
            model.zero_grad()
            backward(model)
            model.eval()
        before = gflops if target.measure == "flops" else params
        pruner.current_step += min(stride, steps - pruner.current_step) - 1  # skip ahead on the ratio schedule
        pruner.step()
        gflops, params = count()
        reached = gflops if target.measure == "flops" else params
        if one_shot or reached <= goal:
            break
        biggest = max(biggest, before - reached)
        if reached - goal < biggest:  # the next step could jump as far as the biggest yet: fine steps from here
            stride = 1
    else:
        reached = gflops / gflops0 if target.measure == "flops" else params / params0
        raise UserError(f"could not prune to {target.keep:.0%} of the {target.measure} (reached {reached:.0%} "
                        f"with every group at {MAX_CHANNEL_RATIO:.0%} of its channels removed); "
                        f"protect fewer layers or aim higher")
    return PruneStats(gflops0, gflops, params0, params)
