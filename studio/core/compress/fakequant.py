"""Fake quantization that rounds the way RKNN int8 does on rk3588, for quantization-aware training.

RKNN folds BatchNorm into the convolution, fuses the activation, and keeps every tensor
in int8: weights symmetric per output channel, activations asymmetric per tensor (a
scale and a zero point). A quantized student here does the same arithmetic in float:
BN is folded first (`model.fuse()`), weights round to per-channel grids, and the
tensors the NPU stores round to activation grids: the output of every conv block (after
its activation), of every residual add and concat module, and of the head's output
convs. A conv whose input was made by an op that leaves no grid (the concat inside
C2f and SPPF, a residual add's sum read directly) rounds its input itself. Tensors
only sliced, max-pooled or nearest-upsampled keep their producer's grid, as on the NPU.
Quantizing only conv inputs would be simpler but leaves the activations between them in
float: rknn-toolkit2 then runs those convs in float16 with a data conversion on each
side (measured: 57 of 64 convs of yolov8n), which is neither the int8 model nor fast.
It fuses conv + SiLU into one int8 op only when the QDQ graph also rounds the
pre-activation sum and the sigmoid; whether the fused op applies those inner grids, the
measurements leave open (its simulator sat closer to a torch model without them on the
detect student, slightly closer to one with them on the OBB student). By default they are
export-only here: they track their range in training and round only in the exported
graph. Where the exported graph loses to them, a model can train with them rounding as
well (`inner_grids`), learning those grids like the rest.

Scales start from observed ranges (min/max over calibration batches, as RKNN's
`normal` algorithm does), then train with LSQ (a straight-through rounding whose
gradient also moves the scale, scaled by 1/sqrt(N * q_max)), or stay frozen. When
training ends, weights are baked onto their grids and scales frozen; the ONNX exporter
switches its copy to torch's fake-quantize ops with those constants (`prepare_export`),
which it writes as QuantizeLinear/DequantizeLinear pairs that rknn-toolkit2 keeps
(`--quant qdq`). Any bit width from 2 to 16 trains; only 8 exports.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("observe", "learn", "frozen", "export")
EXPORT_BITS = 8


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity in the backward pass (straight-through estimator)."""
    return (x.round() - x).detach() + x


def grad_scaled(x: torch.Tensor, factor: float) -> torch.Tensor:
    """The value of x with its gradient multiplied by `factor` (LSQ's step-size gradient scale)."""
    y = x * factor
    return (x - y).detach() + y


def _check_export_bits(bits: int) -> None:
    if bits != EXPORT_BITS:
        raise ValueError(f"only int8 exports; this model trains at {bits} bits")


class ActivationQuantizer(nn.Module):
    """Asymmetric per-tensor fake quantization of an activation: q = clamp(round(x / s) + z, -2^(b-1), 2^(b-1) - 1)."""

    def __init__(self, bits: int = 8, export_only: bool = False):
        super().__init__()
        self.bits, self.mode = bits, "observe"
        self.fixed = False  # a grid that never moves (the input pixels)
        self.export_only = export_only  # observes in training; rounds only in the exported graph (see QuantConv2d)
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("zero_point", torch.tensor(0, dtype=torch.int32))
        self.register_buffer("low", torch.tensor(math.inf))  # observed range
        self.register_buffer("high", torch.tensor(-math.inf))

    @property
    def qmin(self) -> int:
        return -(2 ** (self.bits - 1))

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1

    def reset_observed(self) -> None:
        self.low.fill_(math.inf)
        self.high.fill_(-math.inf)

    def calibrate(self) -> None:
        """Scale and zero point from the observed range, widened to hold 0 (so zero padding is exact)."""
        if self.fixed:
            return
        if not torch.isfinite(self.low):
            raise RuntimeError("an activation quantizer saw no data during calibration")
        self.set_range(min(float(self.low), 0.0), max(float(self.high), 0.0))

    def set_range(self, low: float, high: float) -> None:
        """Place the grid so that [low, high] is what the integers -2^(b-1)..2^(b-1)-1 represent."""
        scale = max(high - low, 1e-8) / (self.qmax - self.qmin)
        zero = min(max(round(self.qmin - low / scale), self.qmin), self.qmax)
        with torch.no_grad():
            self.scale.fill_(scale)
            self.zero_point.fill_(zero)

    def represented_range(self) -> tuple[float, float]:
        s, z = self.scale.detach().abs().item(), int(self.zero_point)
        return (self.qmin - z) * s, (self.qmax - z) * s

    def set_bits(self, bits: int) -> None:
        """Change the bit width keeping the represented range (the stepwise bit-width schedule)."""
        low, high = self.represented_range()
        self.bits = bits
        self.set_range(low, high)

    def prepare_export(self) -> None:
        """Called by the ONNX exporter on its copy: torch's op with constant grids, which it writes as a Q/DQ pair."""
        _check_export_bits(self.bits)
        if self.export_only and torch.isfinite(self.low):
            self.calibrate()  # the range seen through training (bake() does the same)
        self.mode, self.constants = "export", (self.scale.detach().abs().item(), int(self.zero_point))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = self.mode
        if mode != "export" and (self.fixed or self.export_only):
            mode = "frozen" if self.fixed else "observe"
        if mode == "observe":
            with torch.no_grad():
                self.low.copy_(torch.minimum(self.low, x.min()))
                self.high.copy_(torch.maximum(self.high, x.max()))
            return x
        if mode == "export":
            return torch.fake_quantize_per_tensor_affine(x, *self.constants, self.qmin, self.qmax)
        scale = self.scale.abs().clamp_min(1e-8)
        if mode == "learn":
            scale = grad_scaled(scale, 1.0 / math.sqrt(x[0].numel() * self.qmax))
        else:
            scale = scale.detach()
        zero = self.zero_point.to(x.dtype)
        return (torch.clamp(round_ste(x / scale) + zero, self.qmin, self.qmax) - zero) * scale


class WeightQuantizer(nn.Module):
    """Symmetric per-output-channel fake quantization of a weight: q = clamp(round(w / s_c), -q_max, q_max)."""

    def __init__(self, channels: int, bits: int = 8):
        super().__init__()
        self.bits, self.mode = bits, "observe"
        self.scale = nn.Parameter(torch.ones(channels))

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1

    def calibrate(self, weight: torch.Tensor) -> None:
        """s_c = max |w_c| / q_max: the grid RKNN's per-channel quantization puts on a trained weight."""
        with torch.no_grad():
            self.scale.copy_(weight.detach().abs().flatten(1).amax(1).clamp_min(1e-8) / self.qmax)

    def set_bits(self, bits: int) -> None:
        """Change the bit width keeping the largest representable magnitude."""
        with torch.no_grad():
            self.scale.mul_(self.qmax / (2 ** (bits - 1) - 1))
        self.bits = bits

    def prepare_export(self) -> None:
        _check_export_bits(self.bits)
        self.mode = "export"

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.mode == "observe":
            return w
        if self.mode == "export":
            zeros = torch.zeros_like(self.scale, dtype=torch.int32)
            # declared as -128..127 for the ONNX exporter; baked weights (QuantConv2d.prepare_export) never reach -128
            return torch.fake_quantize_per_channel_affine(w, self.scale.detach().abs().clamp_min(1e-8), zeros, 0,
                                                          -self.qmax - 1, self.qmax)
        scale = self.scale.abs().clamp_min(1e-8)
        scale = grad_scaled(scale, 1.0 / math.sqrt(w[0].numel() * self.qmax)) if self.mode == "learn" \
            else scale.detach()
        scale = scale.view((-1,) + (1,) * (w.dim() - 1))
        return torch.clamp(round_ste(w / scale), -self.qmax, self.qmax) * scale


class QuantConv2d(nn.Conv2d):
    """A (BN-folded) convolution with its weight on int8 grids, and its input too where no producer rounded it."""

    def __init__(self, conv: nn.Conv2d, bits: int = 8):
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                         conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode)
        with torch.no_grad():
            self.weight.copy_(conv.weight)
            if conv.bias is not None:
                self.bias.copy_(conv.bias)
        self.input_quant: ActivationQuantizer | None = ActivationQuantizer(bits)
        self.weight_quant = WeightQuantizer(conv.out_channels, bits)
        self.sum_quant: ActivationQuantizer | None = None  # export-only grid of a conv block's pre-activation sum

    @torch.no_grad()
    def prepare_export(self) -> None:
        """On the exporter's copy: the weight baked onto its grid, whether or not the checkpoint was baked."""
        mode, self.weight_quant.mode = self.weight_quant.mode, "frozen"
        self.weight.copy_(self.weight_quant(self.weight))
        self.weight_quant.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_quant is not None:
            x = self.input_quant(x)
        y = F.conv2d(x, self.weight_quant(self.weight), self.bias, self.stride, self.padding, self.dilation,
                     self.groups)
        return self.sum_quant(y) if self.sum_quant is not None else y


class QuantSiLU(nn.Module):
    """x * sigmoid(x) with a grid on the sigmoid (export-only by default), as QDQ spells SiLU for rknn-toolkit2."""

    def __init__(self, bits: int = 8, export_only: bool = True):
        super().__init__()
        self.gate_quant = ActivationQuantizer(bits, export_only)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate_quant(torch.sigmoid(x))


def _conv_blocks(model: nn.Module) -> list[nn.Module]:
    from ultralytics.nn.modules.conv import Conv

    return [m for m in model.modules() if isinstance(m, Conv)]


def quantize_output(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
    """Forward hook: round a module's output to its `output_quant` grid."""
    return module.output_quant(output)


def quant_convs(model: nn.Module) -> list[QuantConv2d]:
    return [m for m in model.modules() if isinstance(m, QuantConv2d)]


def activation_quantizers(model: nn.Module) -> list[ActivationQuantizer]:
    return [m for m in model.modules() if isinstance(m, ActivationQuantizer)]


def is_quantized(model: nn.Module) -> bool:
    """True for a model prepared by `quantize_model` (a QAT student or its checkpoint)."""
    return bool(quant_convs(model))


def _rounded_outputs(model: nn.Module) -> list[nn.Module]:
    """The modules whose output the NPU stores in int8: conv blocks, residual adds, concats, head output convs (the
    angle's too)."""
    from ultralytics.nn.modules.block import Bottleneck
    from ultralytics.nn.modules.conv import Concat

    from studio.core.compress.yolo import angle_branches

    head = model.model[-1]
    outputs = [branch[-1] for branch in list(head.cv2) + list(head.cv3) + angle_branches(model)]
    joins = [m for m in model.modules() if isinstance(m, Concat) or (isinstance(m, Bottleneck) and m.add)]
    return _conv_blocks(model) + joins + outputs


@torch.no_grad()
def _drop_redundant_input_quantizers(model: nn.Module, imgsz: int) -> None:
    """Follow one forward pass and remove the input quantizer of every conv whose input is already on a grid.

    On a grid: a rounded module output, a slice of one (C2f's chunk), or a max-pool or
    nearest upsample of one. Everything else (the image, a torch.cat, a sum) is not.
    """
    on_grid: dict[int, torch.Tensor] = {}  # id -> tensor (held so that ids are not reused)

    def gridded(t: torch.Tensor) -> bool:
        return id(t) in on_grid or (t._base is not None and id(t._base) in on_grid)

    def mark(module, inputs, output):
        on_grid[id(output)] = output

    def keep(module, inputs, output):
        if gridded(inputs[0]):
            on_grid[id(output)] = output

    def check(module, inputs):
        if gridded(inputs[0]):
            module.input_quant = None

    handles = [q.register_forward_hook(mark) for q in activation_quantizers(model)]
    handles += [m.register_forward_hook(keep) for m in model.modules() if isinstance(m, (nn.MaxPool2d, nn.Upsample))]
    handles += [c.register_forward_pre_hook(check) for c in quant_convs(model)]
    try:
        model(torch.zeros(1, 3, imgsz, imgsz))
    finally:
        for h in handles:
            h.remove()


def quantize_model(detection_model: nn.Module, bits: int = 8, imgsz: int = 320, inner_grids: bool = False
                   ) -> nn.Module:
    """A BN-folded copy of an ultralytics detector that fake-quantizes as RKNN does; quantizers start observing.

    The DFL's fixed convolution is left alone: it is not part of the exported graph (the
    runtime decodes boxes). The first convolution reads 0..1 images, which the NPU
    receives as uint8 pixels, so its input grid is fixed to exactly those 256 values.
    `inner_grids`: the conv blocks' pre-activation sums and sigmoids round in training too (else export-only).
    """
    model = copy.deepcopy(detection_model).float().eval()
    model.fuse(verbose=False)
    head = model.model[-1]
    dfl = {id(m) for m in head.dfl.modules()} if hasattr(head, "dfl") else set()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d) and not isinstance(child, QuantConv2d) and id(child) not in dfl:
                setattr(parent, name, QuantConv2d(child, bits))
    for module in _rounded_outputs(model):
        module.output_quant = ActivationQuantizer(bits)
        module.register_forward_hook(quantize_output)
    for block in _conv_blocks(model):
        block.conv.sum_quant = ActivationQuantizer(bits, export_only=not inner_grids)
        if isinstance(block.act, nn.SiLU):
            block.act = QuantSiLU(bits, export_only=not inner_grids)
    _drop_redundant_input_quantizers(model, imgsz)
    for q in activation_quantizers(model):
        q.reset_observed()
    pixels = quant_convs(model)[0].input_quant
    pixels.fixed = True
    pixels.set_range(0.0, 1.0)
    return model


def _quantizers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (ActivationQuantizer, WeightQuantizer))]


def set_mode(model: nn.Module, mode: str) -> None:
    """Put every quantizer in `mode`: observe | learn | frozen (export is the exporter's, on its copy)."""
    if mode not in MODES[:3]:
        raise ValueError(f"unknown quantizer mode {mode!r}")
    for q in _quantizers(model):
        q.mode = mode


@torch.no_grad()
def calibrate(model: nn.Module, batches) -> None:
    """Observe activation ranges over `batches` (image tensors, 0..1), then place every grid; ends in 'learn'."""
    training = model.training
    model.eval()
    set_mode(model, "observe")
    for images in batches:
        model(images)
    for q in activation_quantizers(model):
        q.calibrate()
    for conv in quant_convs(model):
        conv.weight_quant.calibrate(conv.weight)
    set_mode(model, "learn")
    model.train(training)


def set_bits(model: nn.Module, bits: int) -> None:
    """Move every quantizer to `bits`, keeping the ranges learned so far (stepwise bit-width reduction)."""
    if not 2 <= bits <= 16:
        raise ValueError(f"bit width {bits} is outside 2..16")
    for q in _quantizers(model):
        if getattr(q, "fixed", False):
            q.bits = bits
            q.set_range(0.0, 1.0)
        else:
            q.set_bits(bits)


def model_bits(model: nn.Module) -> int:
    """The bit width of a quantized model's grids (they move together)."""
    return quant_convs(model)[0].weight_quant.bits


@torch.no_grad()
def bake(model: nn.Module) -> None:
    """Put each weight exactly on its grid and freeze every scale: the model as the NPU will run it.

    A baked model computes what it computed in training; the ONNX export of it writes
    every quantizer as a Q/DQ pair.
    """
    for conv in quant_convs(model):
        conv.weight_quant.mode = "frozen"
        conv.weight.copy_(conv.weight_quant(conv.weight))
    for q in activation_quantizers(model):
        if q.export_only:
            q.calibrate()  # the range seen over all of training
    for q in _quantizers(model):
        q.scale.data = q.scale.data.abs().clamp_min(1e-8)
    set_mode(model, "frozen")
