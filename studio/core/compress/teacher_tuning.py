"""Teacher fine-tuning for quantization-aware distillation: the teacher adapts to what an int8 student can learn.

A float teacher knows things an int8 student cannot represent; distilling them wastes the
student's capacity. Every few training steps this loop (in the spirit of MAML) asks
what the teacher should look like for the student to learn well from it:

  inner: a pseudo student (a copy of the fake-quantized student) takes one distillation
         step from the teacher on the support half of the batch: theta' = theta - a * dKD/dtheta;
  query: the pseudo student's detection loss on the other half, L_q(theta');
  outer: the teacher moves to lower L_q(theta'). Its gradient goes through the inner step,
         dL_q/dphi = -a * d/dphi [g . dKD/dtheta] with g = dL_q/dtheta' held constant (the
         first-order part of MAML's chain rule), a mixed second derivative that autograd
         takes through the student's straight-through rounding; plus the teacher's own
         detection loss on the support half, so that it stays a detector.
         (Finite differences in theta, as DARTS does, see nothing here: a small step of a
         fake-quantized weight rarely crosses a rounding boundary.)

The real student then distils from the adapted teacher as usual (the loop's extra loss).
On several processes each adapts on its own share of the batch and the teacher's gradients
are averaged before its step, so every process holds the same teacher, as DDP keeps the
students alike.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from studio.core.compress import distributed
from studio.core.compress.kd_step import Distiller


def split_batch(batch: dict, first: int) -> tuple[dict, dict]:
    """An ultralytics training batch cut into images [:first] and [first:], labels re-indexed."""
    idx = batch["batch_idx"]
    head, tail = {"img": batch["img"][:first]}, {"img": batch["img"][first:]}
    keep = idx < first
    for key in ("cls", "bboxes"):
        head[key], tail[key] = batch[key][keep], batch[key][~keep]
    head["batch_idx"], tail["batch_idx"] = idx[keep], idx[~keep] - first
    return head, tail


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


class TeacherTuner(nn.Module):
    """The loop's extra loss when the teacher is fine-tuned: adapts it every `every` steps, then distils."""

    def __init__(self, distiller: Distiller, hyp, every: int = 10, inner_lr: float = 0.01, teacher_lr: float = 1e-5,
                 task_weight: float = 1.0):
        super().__init__()
        self.distiller, self.every, self.inner_lr, self.task_weight = distiller, every, inner_lr, task_weight
        self.teacher = distiller.teacher
        self.teacher.args, self.teacher.criterion = hyp, None  # its detection loss reads the run's gains
        for p in self.teacher.parameters():
            p.requires_grad_(True)
        self.optimizer = torch.optim.AdamW(self.teacher.parameters(), lr=teacher_lr, weight_decay=0.0)
        self.calls = 0
        self.ctx = distributed.context()
        self.last: dict[str, float] = {}  # the latest adaptation's figures, logged with every step

    @property
    def adapters(self) -> nn.ModuleList:
        return self.distiller.adapters

    def forward(self, batch: dict, preds: dict, student: nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        self.calls += 1
        if self.calls % self.every == 0 and batch["img"].shape[0] >= 2:
            self.last = self.adapt(batch, student)
        loss, parts = self.distiller(batch, preds, student)
        return loss, {**parts, **self.last}

    def adapt(self, batch: dict, student: nn.Module) -> dict[str, float]:
        """One outer step on the teacher; returns the pseudo student's query loss (before this step's update)."""
        support, query = split_batch(batch, batch["img"].shape[0] // 2)
        pseudo = copy.deepcopy(student).train()
        adapters = copy.deepcopy(self.adapters)
        theta = _params(pseudo) + _params(adapters)
        phi = list(self.teacher.parameters())
        self.teacher.eval()  # BN statistics stay as trained; the weights move
        # inner: the distillation gradient on the support half, kept differentiable in the teacher
        kd = self.distiller.loss(support, pseudo(support["img"]), self.teacher(support["img"])[1], pseudo, adapters)[0]
        g_kd = [g if g is not None else torch.zeros_like(p)
                for p, g in zip(theta, torch.autograd.grad(kd, theta, create_graph=True, allow_unused=True))]
        # the pseudo student after one step, as a separate copy (the graph above still needs theta)
        stepped, stepped_adapters = copy.deepcopy(pseudo), copy.deepcopy(adapters)
        stepped.criterion = None
        theta_next = _params(stepped) + _params(stepped_adapters)
        with torch.no_grad():
            for p, g in zip(theta_next, g_kd):
                p.sub_(self.inner_lr * g.detach())
        # query: how well that step serves detection on the other half
        q_loss = stepped.loss(query, stepped(query["img"]))[0].sum()
        g_query = torch.autograd.grad(q_loss, theta_next, allow_unused=True)
        # outer: dL_q/dphi = -a * d/dphi (g_query . dKD/dtheta)
        dot = sum((g * q.detach()).sum() for g, q in zip(g_kd, g_query) if q is not None)
        meta = torch.autograd.grad(dot, phi, allow_unused=True)
        task = self.teacher.loss(support, self.teacher(support["img"]))[0].sum() / support["img"].shape[0]
        task_grads = torch.autograd.grad(task, phi, allow_unused=True)
        self.optimizer.zero_grad(set_to_none=True)
        for p, m, t in zip(phi, meta, task_grads):
            grad = torch.zeros_like(p)
            if m is not None:
                grad -= self.inner_lr * m
            if t is not None:
                grad += self.task_weight * t
            p.grad = grad
        distributed.average_gradients(self.teacher, self.ctx)  # every process steps its teacher alike
        torch.nn.utils.clip_grad_norm_(phi, max_norm=10.0)
        self.optimizer.step()
        return {"tune_query": float(q_loss.detach()), "tune_teacher_task": float(task.detach())}
