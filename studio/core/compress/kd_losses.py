"""Distillation losses for detectors in remote sensing, as plain functions of tensors.

The methods are described in docs/distillation.md: response distillation of class scores
and box distributions (and angles, for oriented boxes), feature distillation with
foreground/background separation, size weighting and local attention, and relation
distillation of cosine-similarity matrices. Each loss is zero when the student's tensors
equal the teacher's, and each returns a per-image value (the training loop scales it by
the batch like the detection loss). Boxes arrive as ultralytics batches carry them:
normalised (cx, cy, w, h) rows with the index of their image, and for oriented boxes a
fifth column, the angle. The teacher's targets are not detached: a frozen teacher runs
without gradients anyway, and teacher fine-tuning (teacher_tuning.py) needs them; only
the weightings taken from the teacher (attention, box confidence) are detached.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

EPSILON = 1e-3  # background value of the weighted foreground mask


def assign_levels(wh: torch.Tensor, levels: int) -> torch.Tensor:
    """Pyramid level of each box: floor(L + log2(sqrt(w*h / (W*H)))), clamped to 0..L-1.

    `wh` holds widths and heights as fractions of the image, so w*h/(W*H) is their product.
    Small boxes go to fine levels (0 = stride 8).
    """
    area = (wh[:, 0].double() * wh[:, 1].double()).clamp_min(1e-12)
    level = torch.floor(levels + 0.5 * torch.log2(area))
    return level.clamp(0, levels - 1).long()


@dataclass
class LevelMasks:
    """Masks of one pyramid level, each (B, H, W)."""

    foreground: torch.Tensor  # 1 inside boxes assigned to this level, 0 elsewhere
    weights: torch.Tensor  # A_avg / A_i inside box i (largest where boxes overlap), EPSILON elsewhere
    boxes: list[tuple[int, int, int, int, int]]  # (image, x0, y0, x1, y1) in cells, one per box on this level
    box_ids: list[int]  # which row of the batch's boxes each entry of `boxes` is

    @property
    def background(self) -> torch.Tensor:
        return 1.0 - self.foreground


def box_cells(cxcywh: torch.Tensor, height: int, width: int) -> tuple[int, int, int, int]:
    """The cells (x0, y0, x1, y1), end exclusive, that a normalised box covers on an H x W map; at least one."""
    cx, cy, w, h = (float(v) for v in cxcywh)
    x0 = min(max(int((cx - w / 2) * width), 0), width - 1)
    y0 = min(max(int((cy - h / 2) * height), 0), height - 1)
    x1 = max(min(math.ceil((cx + w / 2) * width), width), x0 + 1)
    y1 = max(min(math.ceil((cy + h / 2) * height), height), y0 + 1)
    return x0, y0, x1, y1


def upright(boxes: torch.Tensor) -> torch.Tensor:
    """(N, 4) normalised (cx, cy, w, h): the boxes themselves, or the upright boxes around oriented ones (N, 5)."""
    if boxes.shape[1] == 4:
        return boxes
    cos, sin = torch.cos(boxes[:, 4]).abs(), torch.sin(boxes[:, 4]).abs()
    w, h = boxes[:, 2], boxes[:, 3]
    return torch.stack([boxes[:, 0], boxes[:, 1], w * cos + h * sin, w * sin + h * cos], 1)


def level_masks(boxes: torch.Tensor, image_idx: torch.Tensor, batch: int, shapes: list[tuple[int, int]]
                ) -> list[LevelMasks]:
    """Foreground, weight and per-box masks for each level of `shapes` ((H, W) per level, fine to coarse).
    An oriented box takes its level and size weight from its own area and covers the cells of the upright
    box around it."""
    levels = len(shapes)
    assigned = assign_levels(boxes[:, 2:4], levels) if len(boxes) else torch.zeros(0, dtype=torch.long)
    areas = (boxes[:, 2] * boxes[:, 3]).clamp_min(1e-12) if len(boxes) else torch.zeros(0)
    cells_of = upright(boxes) if len(boxes) else boxes
    mean_area = torch.zeros(batch)
    for b in range(batch):
        mine = image_idx == b
        if mine.any():
            mean_area[b] = areas[mine].mean()
    out = []
    for level, (h, w) in enumerate(shapes):
        fg = torch.zeros(batch, h, w)
        weight = torch.full((batch, h, w), EPSILON)
        cells, ids = [], []
        for k in torch.nonzero(assigned == level).flatten().tolist():
            b = int(image_idx[k])
            x0, y0, x1, y1 = box_cells(cells_of[k], h, w)
            fg[b, y0:y1, x0:x1] = 1.0
            size_weight = float(mean_area[b] / areas[k])
            weight[b, y0:y1, x0:x1] = weight[b, y0:y1, x0:x1].clamp_min(size_weight)
            cells.append((b, x0, y0, x1, y1))
            ids.append(k)
        out.append(LevelMasks(fg, weight, cells, ids))
    return out


def local_attention(feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(spatial (B,1,H,W), channel (B,C,1,1)) attention: sigmoid(AvgPool(F) + MaxPool(F)) over channels and space."""
    spatial = torch.sigmoid(feature.mean(1, keepdim=True) + feature.amax(1, keepdim=True))
    channel = torch.sigmoid(feature.mean((2, 3), keepdim=True) + feature.amax((2, 3), keepdim=True))
    return spatial, channel


def feature_loss(student: torch.Tensor, teacher: torch.Tensor, masks: LevelMasks
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(foreground, background) losses of one level, per image.

    Both features are weighted by the teacher's local attention; the foreground error is
    weighted by the size-weight mask and divided by the number of foreground cells, the
    background error by the number of background cells, per image; channels are averaged
    so the scale does not depend on the width of the layer.
    """
    spatial, channel = local_attention(teacher.detach())
    error = ((teacher - student) * spatial * channel).pow(2).mean(1)  # (B, H, W)
    fg, bg = masks.foreground.to(error), masks.background.to(error)
    fg_loss = (masks.weights.to(error) * fg * error).sum((1, 2)) / fg.sum((1, 2)).clamp_min(1.0)
    bg_loss = (bg * error).sum((1, 2)) / bg.sum((1, 2)).clamp_min(1.0)
    return fg_loss.mean(), bg_loss.mean()


def pooled_objects(feature: torch.Tensor, masks: LevelMasks) -> tuple[torch.Tensor, torch.Tensor]:
    """(object vectors (N, C), each object's own-image background vector (N, C)) on one level."""
    if not masks.boxes:
        return feature.new_zeros(0, feature.shape[1]), feature.new_zeros(0, feature.shape[1])
    objects = torch.stack([feature[b, :, y0:y1, x0:x1].mean((1, 2)) for b, x0, y0, x1, y1 in masks.boxes])
    bg = masks.background.to(feature)
    background = (feature * bg[:, None]).sum((2, 3)) / bg.sum((1, 2)).clamp_min(1.0)[:, None]  # (B, C)
    return objects, background[[b for b, *_ in masks.boxes]]


def relation_matrices(objects: torch.Tensor, backgrounds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(R_obj: cosine similarity of every pair of objects (N, N), R_obj_bg: of each object and its background (N,))."""
    unit = F.normalize(objects, dim=1)
    return unit @ unit.T, F.cosine_similarity(objects, backgrounds, dim=1)


def relation_loss(student: torch.Tensor, teacher: torch.Tensor, masks: LevelMasks) -> torch.Tensor:
    """Mean squared difference of the student's and teacher's relation matrices on one level.

    Cosine similarities do not depend on the width of the features, so the student's own
    features are used (no adapter). Zero when the level holds no objects.
    """
    if not masks.boxes:
        return student.sum() * 0.0
    s_obj, s_bg = relation_matrices(*pooled_objects(student, masks))
    t_obj, t_bg = relation_matrices(*pooled_objects(teacher, masks))
    return F.mse_loss(s_obj, t_obj) + F.mse_loss(s_bg, t_bg)


def class_response_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-class Bernoulli KL(teacher || student) at temperature T, times T^2; summed over classes, mean over anchors.

    Detection class scores are independent sigmoids (multi-label), so each class is a
    two-way distribution rather than one softmax over classes.
    """
    s, t = student_logits / temperature, teacher_logits / temperature
    s_log, s_log1m = F.logsigmoid(s), F.logsigmoid(-s)
    t_log, t_log1m = F.logsigmoid(t), F.logsigmoid(-t)
    t = t_log.exp()
    kl = t * (t_log - s_log) + (1 - t) * (t_log1m - s_log1m)  # (B, nc, N)
    return kl.sum(1).mean() * temperature**2


def box_response_loss(student_boxes: torch.Tensor, teacher_boxes: torch.Tensor, teacher_logits: torch.Tensor,
                      reg_max: int, temperature: float) -> torch.Tensor:
    """KL of the box-side distributions (DFL bins) at temperature T, times T^2, summed over the 4 sides.

    Anchors are weighted by the teacher's highest class probability: the box distribution of
    an anchor that sees no object carries no knowledge worth copying.
    """
    b, _, n = student_boxes.shape
    s = F.log_softmax(student_boxes.view(b, 4, reg_max, n) / temperature, dim=2)
    t = F.log_softmax(teacher_boxes.view(b, 4, reg_max, n) / temperature, dim=2)
    kl = (t.exp() * (t - s)).sum(2).sum(1)  # (B, N)
    weight = torch.sigmoid(teacher_logits.detach()).amax(1)  # (B, N)
    return (kl * weight).sum() / weight.sum().clamp_min(1e-6) * temperature**2


def angle_response_loss(student_angles: torch.Tensor, teacher_angles: torch.Tensor, teacher_logits: torch.Tensor
                        ) -> torch.Tensor:
    """sin^2 of the angle difference (radians, (B, 1, N)), weighted per anchor by the teacher's highest class
    probability as the box term is.

    A rectangle turned by pi is the same rectangle, and sin^2 has period pi: the term is zero when the angles
    agree up to a half turn and never pulls the student across the wrap the long way round.
    """
    gap = torch.sin(student_angles - teacher_angles).square().sum(1)  # (B, N)
    weight = torch.sigmoid(teacher_logits.detach()).amax(1)
    return (gap * weight).sum() / weight.sum().clamp_min(1e-6)
