"""Export an ultralytics detector to ONNX, in the RKNN-friendly split layout or the standard one.

rknn-split: per detection scale, the box-distribution conv output (1, 4*reg_max, h, w)
and the class scores (1, nc, h, w), as sigmoid probabilities or as logits; for oriented
boxes (the OBB head) also the angle (1, 1, h, w) in radians, in [-pi/4, 3pi/4). DFL, box
decoding (and for logits the sigmoid of the few candidates) move to the runtime's
post-processing, which keeps the NPU graph to convolutions and quantizes well.
standard: ultralytics' own single output (1, 4 + nc, anchors), boxes as xywh pixels (detect only).
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
from torch import nn

from deploy.errors import UserError

OPSET = 13  # what rknn-toolkit2 2.5 and onnxruntime's QDQ tools both accept
EXPORT_TASKS = ("detect", "obb")


class SplitHead(nn.Module):
    """Runs a detection model and returns, per scale, the raw box distribution and the class scores."""

    def __init__(self, detection_model: nn.Module, class_scores: str = "sigmoid"):
        super().__init__()
        self.sigmoid = class_scores == "sigmoid"
        self.model = detection_model.model  # the nn.Sequential of ultralytics layers
        self.save = set(detection_model.save)
        self.detect = self.model[-1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        saved: list[torch.Tensor | None] = []
        for layer in self.model[:-1]:
            if layer.f != -1:  # input from earlier layers, as in ultralytics' _predict_once
                x = saved[layer.f] if isinstance(layer.f, int) else [x if j == -1 else saved[j] for j in layer.f]
            x = layer(x)
            saved.append(x if layer.i in self.save else None)
        head = self.detect
        feats = [x if j == -1 else saved[j] for j in head.f]
        outputs = []
        for i, feat in enumerate(feats):
            outputs.append(head.cv2[i](feat))  # (1, 4*reg_max, h, w)
            scores = head.cv3[i](feat)  # (1, nc, h, w) logits
            outputs.append(scores.sigmoid() if self.sigmoid else scores)
            if head_task(head) == "obb":  # the angle as the OBB head makes it: a sigmoid spread over half a turn
                outputs.append((head.cv4[i](feat).sigmoid() - 0.25) * math.pi)
        return tuple(outputs)


def head_task(head: nn.Module) -> str:
    """obb for ultralytics' oriented-box head, detect otherwise."""
    return "obb" if head.__class__.__name__ == "OBB" else "detect"


def split_output_names(num_scales: int, task: str = "detect") -> list[str]:
    """Output names of the split layout: box0, cls0, box1, cls1, ... (obb: box0, cls0, angle0, box1, ...)."""
    kinds = ("box", "cls", "angle") if task == "obb" else ("box", "cls")
    return [f"{kind}{i}" for i in range(num_scales) for kind in kinds]


def prepare_for_export(detection_model: nn.Module) -> nn.Module:
    """A fused (BN folded), eval-mode, float32 copy of the model; the caller's model is untouched."""
    model = copy.deepcopy(detection_model).float().eval()
    if hasattr(model, "fuse"):
        model = model.fuse(verbose=False) if "verbose" in model.fuse.__code__.co_varnames else model.fuse()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def detect_head(detection_model: nn.Module, tasks: tuple[str, ...] = ("detect",)) -> nn.Module:
    """The Detect layer of an ultralytics detection model (or, with "obb" in tasks, its OBB layer), or a
    UserError for anything else."""
    layers = getattr(detection_model, "model", None)
    head = layers[-1] if isinstance(layers, nn.Sequential) and len(layers) else None
    if head is None or not all(hasattr(head, a) for a in ("cv2", "cv3", "reg_max", "nc", "stride")):
        raise UserError("this model is not an ultralytics YOLO detector (no Detect head): export supports detection")
    kinds = {"detect": "Detect", "obb": "OBB"}
    if head.__class__.__name__ not in [kinds[t] for t in tasks]:
        supported = " and ".join(f"{kinds[t]} ({t})" for t in tasks)
        raise UserError(f"the model's head is {head.__class__.__name__}; this supports {supported}")
    if getattr(head, "cv2", None) is None:
        raise UserError("this model has only an end-to-end head; export needs the one-to-many Detect head")
    return head


def export_onnx(detection_model: nn.Module, out_path: Path, imgsz: int, layout: str,
                class_scores: str = "sigmoid") -> list[str]:
    """Write `out_path` as ONNX in `layout`; return the output names. The caller handles atomicity."""
    model = prepare_for_export(detection_model)
    for module in list(model.modules()):  # e.g. fake-quantized layers switch to ops written as Q/DQ pairs
        if callable(getattr(module, "prepare_export", None)):
            module.prepare_export()
    head = detect_head(model, EXPORT_TASKS)
    dummy = torch.zeros(1, 3, imgsz, imgsz)
    if layout == "rknn-split":
        wrapper: nn.Module = SplitHead(model, class_scores)
        names = split_output_names(len(head.f), head_task(head))
    elif layout == "standard" and head_task(head) == "obb":
        raise UserError("oriented-box models export in the rknn-split layout only (drop --layout standard)")
    elif layout == "standard":
        head.export, head.format, head.dynamic = True, "onnx", False
        wrapper = model
        names = ["output0"]
    else:
        raise UserError(f"unknown layout {layout!r}: choose rknn-split or standard")
    with torch.no_grad():
        wrapper(dummy)  # builds anchors and strides once, outside the trace
        torch.onnx.export(
            wrapper,
            (dummy,),
            str(out_path),
            input_names=["images"],
            output_names=names,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return names


def torch_outputs(detection_model: nn.Module, images: torch.Tensor, layout: str,
                  class_scores: str = "sigmoid") -> list[torch.Tensor]:
    """The outputs the exported ONNX should reproduce, computed in torch (for verification and tests)."""
    model = prepare_for_export(detection_model)
    head = detect_head(model, EXPORT_TASKS)
    with torch.no_grad():
        if layout == "rknn-split":
            return list(SplitHead(model, class_scores)(images))
        head.export, head.format, head.dynamic = True, "onnx", False
        return [model(images)]
