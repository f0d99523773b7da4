"""The distillation term of a training step: a frozen teacher, adapters, and the weighted losses.

A `Distiller` is the `extra_loss` of the training loop. Per batch it runs the teacher
(eval mode, no gradients), takes the student's raw head outputs and neck features from
the same forward pass the detection loss used, and adds the terms that are switched on:
response (class scores, box distributions and, for oriented boxes, angles), feature (foreground/background with
attention) and relation. 1x1 adapters map student channels to the teacher's where the
widths differ; they train with the student and are dropped from the saved model.
"""
from __future__ import annotations

import torch
from torch import nn

from deploy.errors import UserError
from studio.core.compress import kd_losses
from studio.core.compress.kd_config import KdConfig
from studio.core.compress.yolo import detect_head, model_task, neck_features


def _check_pair(teacher: nn.Module, student: nn.Module) -> None:
    from studio.core.models import class_names

    if class_names(teacher) != class_names(student):
        raise UserError(f"teacher classes {class_names(teacher)} differ from the student's {class_names(student)}")
    if model_task(teacher) != model_task(student):
        raise UserError(f"the teacher is a {model_task(teacher)} model and the student a {model_task(student)} one: "
                        "distil oriented boxes from an oriented-box teacher (and upright from upright)")
    t_head, s_head = detect_head(teacher), detect_head(student)
    if t_head.stride.tolist() != s_head.stride.tolist() or t_head.reg_max != s_head.reg_max:
        raise UserError("teacher and student heads differ in strides or box bins; distillation needs the same grid")


class Distiller(nn.Module):
    """Callable as the loop's extra_loss; its adapters are the trainable extra modules."""

    def __init__(self, teacher: nn.Module, student: nn.Module, config: KdConfig, imgsz: int):
        super().__init__()
        _check_pair(teacher, student)
        self.config = config
        self.teacher = teacher.float().eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        probe = torch.zeros(1, 3, imgsz, imgsz)
        with torch.no_grad():
            t_ch = [f.shape[1] for f in neck_features(self.teacher, probe)]
            s_ch = [f.shape[1] for f in neck_features(student.eval(), probe)]
        self.adapters = nn.ModuleList(nn.Identity() if s == t else nn.Conv2d(s, t, 1) for s, t in zip(s_ch, t_ch))

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # the teacher's BatchNorm statistics stay as trained
        return self

    def forward(self, batch: dict, preds: dict, student: nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.no_grad():
            teacher_preds = self.teacher(batch["img"])[1]
        return self.loss(batch, preds, teacher_preds, student, self.adapters)

    def loss(self, batch: dict, preds: dict, teacher_preds: dict, student: nn.Module, adapters: nn.ModuleList
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """The switched-on terms between given student and teacher outputs (gradients reach both if they carry them)."""
        cfg, img = self.config, batch["img"]
        total, parts = img.new_zeros(()), {}
        if "response" in cfg.terms:
            cls = kd_losses.class_response_loss(preds["scores"], teacher_preds["scores"], cfg.temperature)
            box = kd_losses.box_response_loss(preds["boxes"], teacher_preds["boxes"], teacher_preds["scores"],
                                              detect_head(student).reg_max, cfg.temperature)
            total = total + cfg.cls * cls + cfg.box * box
            parts.update(kd_cls=float(cls.detach()), kd_box=float(box.detach()))
            if "angle" in preds:  # an oriented-box pair
                angle = kd_losses.angle_response_loss(preds["angle"], teacher_preds["angle"], teacher_preds["scores"])
                total = total + cfg.angle * angle
                parts["kd_angle"] = float(angle.detach())
        if "feature" in cfg.terms or "relation" in cfg.terms:
            s_feats, t_feats = preds["feats"], teacher_preds["feats"]
            shapes = [tuple(f.shape[-2:]) for f in t_feats]
            masks = kd_losses.level_masks(batch["bboxes"].float(), batch["batch_idx"].long(), img.shape[0], shapes)
            fg = bg = rel = img.new_zeros(())
            for level, m in enumerate(masks):
                if "feature" in cfg.terms:
                    f, b = kd_losses.feature_loss(adapters[level](s_feats[level]), t_feats[level], m)
                    fg, bg = fg + f, bg + b
                if "relation" in cfg.terms:
                    rel = rel + kd_losses.relation_loss(s_feats[level], t_feats[level], m)
            if "feature" in cfg.terms:
                total = total + cfg.foreground * fg + cfg.background * bg
                parts.update(kd_fg=float(fg.detach()), kd_bg=float(bg.detach()))
            if "relation" in cfg.terms:
                total = total + cfg.relation * rel
                parts["kd_rel"] = float(rel.detach())
        return total, parts
