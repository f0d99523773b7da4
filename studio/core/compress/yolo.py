"""What pruning and distillation need to know about an ultralytics YOLO detector's layout.

An oriented-box (OBB) head is a Detect head with a third branch per level, cv4, whose last
conv gives the angle; everything here covers it wherever it covers the box and class branches.
"""
from __future__ import annotations

import torch
from torch import nn


def detect_head(model: nn.Module) -> nn.Module:
    """The Detect head: the last layer of an ultralytics DetectionModel."""
    return model.model[-1]


def model_task(model: nn.Module) -> str:
    """"obb" for an oriented-box model, else "detect" (as the export names it)."""
    from deploy.convert.onnx_export import head_task

    return head_task(detect_head(model))


def angle_branches(model: nn.Module) -> list[nn.Module]:
    """The per-level angle branches of an OBB head (none for an upright one)."""
    return list(getattr(detect_head(model), "cv4", []))


def neck_features(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The feature maps the Detect head reads (P3, P4, P5), computed layer by layer as ultralytics does."""
    outputs, head = [], detect_head(model)
    for layer in model.model[:-1]:
        if layer.f != -1:
            x = outputs[layer.f] if isinstance(layer.f, int) else [x if j == -1 else outputs[j] for j in layer.f]
        x = layer(x)
        outputs.append(x)
    return [outputs[j] for j in head.f]


def raw_head_outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Per level, the box-distribution and class-logit maps (then, for OBB, the angle logits), before any decoding.

    This is the forward that DepGraph traces: the decoding of the inference head (anchors,
    DFL, concatenation of all levels) would tie unrelated channels together.
    """
    head = detect_head(model)
    feats = neck_features(model, x)
    branches = [list(head.cv2), list(head.cv3), angle_branches(model)]
    return [branch[i](f) for branch in branches if branch for i, f in enumerate(feats)]


def head_output_convs(model: nn.Module) -> list[nn.Module]:
    """The layers whose output channels are fixed by the task: the last conv of every box, class and angle
    branch (4 x reg_max bins, nc classes, one angle) and the DFL."""
    head = detect_head(model)
    return [branch[-1] for branch in list(head.cv2) + list(head.cv3) + angle_branches(model)] + [head.dfl]


def trained_imgsz(model: nn.Module) -> int:
    """The image size a checkpoint was trained at (its saved training arguments), else 640."""
    args = getattr(model, "args", None)
    size = args.get("imgsz") if isinstance(args, dict) else getattr(args, "imgsz", None)
    return int(size or 640)
