"""Fake quantization, exactly: grids, gradients and export ops checked against values worked out by hand."""
from __future__ import annotations

import io
import math
import warnings

import onnx
import pytest
import torch
from torch import nn

from deploy.convert.onnx_export import OPSET
from studio.core.compress import fakequant as fq


def _f32(value: float) -> float:
    """`value` rounded to float32, as a scale parameter stores it."""
    return torch.tensor(value, dtype=torch.float32).item()


def _onnx_ops(module: nn.Module, *args: torch.Tensor) -> list[str]:
    """The op types of `module` exported the way the project exports (TorchScript exporter, opset 13)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter, which the project uses
        torch.onnx.export(module, args, buf, opset_version=OPSET, dynamo=False)
    return [n.op_type for n in onnx.load_from_string(buf.getvalue()).graph.node if n.op_type != "Constant"]


def test_grad_scaled_keeps_the_value_and_scales_only_the_gradient():
    """grad_scaled(x, f) has the value of x and the gradient f."""
    x = torch.tensor([3.0, -2.0], requires_grad=True)
    y = fq.grad_scaled(x, 0.25)
    assert y.tolist() == [3.0, -2.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.25, 0.25]


def test_fresh_activation_quantizer_observes_the_range_and_passes_values_through():
    """A new activation quantizer is in observe mode: identity output, running min and max recorded."""
    q = fq.ActivationQuantizer()
    x = torch.tensor([-0.5, 2.0, 1.0])
    assert torch.equal(q(x), x)
    assert (float(q.low), float(q.high)) == (-0.5, 2.0)
    q(torch.tensor([3.0, 0.0]))
    assert (float(q.low), float(q.high)) == (-0.5, 3.0)


def test_fresh_activation_grid_is_the_integers_with_zero_point_zero():
    """Before calibration the grid is scale 1, zero point 0 (int32): rounding to integers clamped to -128..127."""
    q = fq.ActivationQuantizer()
    assert q.state_dict()["zero_point"].dtype == torch.int32
    q.mode = "frozen"
    y = q(torch.tensor([0.3, 1.6, -2.5, 200.0, -200.0]))
    assert y.tolist() == [0.0, 2.0, -2.0, 127.0, -128.0]  # -2.5 rounds half to even


def test_calibrate_widens_the_observed_range_to_hold_zero():
    """calibrate() uses [min(low, 0), max(high, 0)]: an all-positive or all-negative range is extended to 0."""
    pos = fq.ActivationQuantizer()
    pos(torch.tensor([0.5, 2.0]))
    pos.calibrate()
    assert pos.scale.item() == pytest.approx(2.0 / 255) and int(pos.zero_point) == -128
    neg = fq.ActivationQuantizer()
    neg(torch.tensor([-2.0, -0.5]))
    neg.calibrate()
    assert neg.scale.item() == pytest.approx(2.0 / 255) and int(neg.zero_point) == 127
    # a small range that straddles zero stays as observed
    small = fq.ActivationQuantizer()
    small(torch.tensor([-0.1, 0.41]))
    small.calibrate()
    assert small.scale.item() == pytest.approx(0.51 / 255) and int(small.zero_point) == -78


def test_calibrate_without_data_names_the_problem():
    """A quantizer that saw no data refuses to calibrate with a clear message."""
    with pytest.raises(RuntimeError, match=r"^an activation quantizer saw no data during calibration$"):
        fq.ActivationQuantizer().calibrate()


def test_set_range_of_a_tiny_or_empty_range():
    """set_range divides the width (floored at 1e-8, not 1) over the 255 steps of int8."""
    q = fq.ActivationQuantizer()
    q.set_range(0.0, 0.51)
    assert q.scale.item() == pytest.approx(0.002) and int(q.zero_point) == -128
    q.set_range(0.0, 0.0)
    assert q.scale.item() == pytest.approx(1e-8 / 255)


def test_lsq_scale_gradient_of_an_activation_grid_by_hand():
    """In learn mode d(sum y)/ds = (sum of round(x/s) - x/s inside, q - z at the clamps) / sqrt(N * q_max)."""
    q = fq.ActivationQuantizer(bits=4)  # q in -8..7
    with torch.no_grad():
        q.scale.fill_(0.5)
        q.zero_point.fill_(-3)
    q.mode = "learn"
    x = torch.tensor([[0.3, -1.1, 2.6], [5.6, -6.0, 0.0]])  # x/s = 0.6, -2.2, 5.2, 11.2, -12, 0
    y = q(x)
    # integers + z: -2, -5, 2, 8 -> 7 (clamped), -15 -> -8 (clamped), -3; value (q - z) * s
    assert y.flatten().tolist() == pytest.approx([0.5, -1.0, 2.5, 5.0, -2.5, 0.0])
    y.sum().backward()
    # 0.4 + 0.2 - 0.2 + (7 + 3) + (-8 + 3) + 0 = 5.4, N = 3 values per sample
    assert q.scale.grad.item() == pytest.approx(5.4 / math.sqrt(3 * 7), rel=1e-5)


def test_pixel_grid_is_fixed_in_every_training_mode():
    """A fixed quantizer rounds to its 0..1 grid in observe and learn mode alike, and its scale gets no gradient."""
    for mode in ("observe", "learn"):
        q = fq.ActivationQuantizer()
        q.fixed = True
        q.set_range(0.0, 1.0)
        q.mode = mode
        x = torch.tensor([0.2, 0.71, 1.3, -0.1], requires_grad=True)
        y = q(x)
        assert y.tolist() == pytest.approx([51 / 255, 181 / 255, 1.0, 0.0], abs=1e-7)
        y.sum().backward()
        assert q.scale.grad is None
        assert not math.isfinite(float(q.low))  # nothing observed


def test_export_only_grid_observes_in_training_and_rounds_after_prepare_export():
    """QuantSiLU's sigmoid grid is float in training (while tracking its range) and int8 in the exported graph."""
    silu = fq.QuantSiLU()
    silu.gate_quant.mode = "frozen"
    x = torch.tensor([-2.0, 0.0, 1.5, 4.0])
    gate = torch.sigmoid(x)
    assert torch.equal(silu(x), x * gate)
    assert (float(silu.gate_quant.low), float(silu.gate_quant.high)) == (gate.min().item(), gate.max().item())
    silu.gate_quant.prepare_export()
    s = gate.max().item() / 255  # range widened to hold 0: [0, sigmoid(4)], zero point -128
    assert silu.gate_quant.mode == "export" and int(silu.gate_quant.zero_point) == -128
    assert silu.gate_quant.scale.item() == pytest.approx(s)
    levels = [min(max(round(g / s) - 128, -128), 127) + 128 for g in gate.tolist()]
    expected = [v * n * s for v, n in zip(x.tolist(), levels)]
    assert silu(x).tolist() == pytest.approx(expected, rel=1e-5)
    assert _onnx_ops(silu.gate_quant, gate) == ["QuantizeLinear", "DequantizeLinear"]


def test_prepare_export_keeps_a_trained_activation_grid():
    """prepare_export freezes the grid the quantizer has (learned scale, any sign), not the observed range."""
    q = fq.ActivationQuantizer()
    q(torch.tensor([-1.0, 1.0]))  # observed data, then a grid moved by training
    with torch.no_grad():
        q.scale.fill_(-0.25)
        q.zero_point.fill_(10)
    q.mode = "learn"
    q.prepare_export()
    assert q.mode == "export" and q.constants == (0.25, 10)
    # 1.1 -> 4 + 10; -40 -> -150 clamps to -128; 40 -> 170 clamps to 127; value (q - 10) * 0.25
    assert q(torch.tensor([1.1, -40.0, 40.0, 0.0])).tolist() == [1.0, -34.5, 29.25, 0.0]
    assert _onnx_ops(q, torch.zeros(1, 4)) == ["QuantizeLinear", "DequantizeLinear"]


def test_only_int8_grids_prepare_for_export():
    """prepare_export refuses any other bit width, naming the one the model trains at."""
    with pytest.raises(ValueError, match="only int8 exports; this model trains at 6 bits"):
        fq.ActivationQuantizer(bits=6).prepare_export()
    with pytest.raises(ValueError, match="only int8 exports; this model trains at 4 bits"):
        fq.WeightQuantizer(1, bits=4).prepare_export()


def test_fresh_weight_quantizer_passes_through_and_calibrates_to_int8():
    """A new weight quantizer observes (identity) and defaults to 8 bits: s_c = max|w_c| / 127."""
    wq = fq.WeightQuantizer(1)
    w = torch.tensor([[[[0.3, -2.54]]]])
    assert torch.equal(wq(w), w)
    wq.calibrate(w)
    assert wq.scale.tolist() == pytest.approx([0.02])


def test_weight_grid_clamps_symmetrically_in_training_modes():
    """Frozen weights round to s * clamp(round(w / s), -q_max, q_max): -q_max, not -q_max - 1, at the bottom."""
    wq = fq.WeightQuantizer(1, bits=4)  # q in -7..7
    with torch.no_grad():
        wq.scale.fill_(0.5)
    wq.mode = "frozen"
    w = torch.tensor([[[[0.3, -1.1, 4.0, -5.0]]]])  # w/s = 0.6, -2.2, 8, -10
    assert wq(w).flatten().tolist() == [0.5, -1.0, 3.5, -3.5]


def test_lsq_scale_gradient_of_a_weight_grid_by_hand():
    """In learn mode d(sum w_q)/ds = (sum of round(w/s) - w/s inside, +-q_max at the clamps) / sqrt(N * q_max)."""
    w = torch.tensor([[[[0.3, -1.1]], [[4.0, -2.6]]]], requires_grad=True)  # one output channel of N = 4
    for mode in ("learn", "frozen"):
        wq = fq.WeightQuantizer(1, bits=4)
        with torch.no_grad():
            wq.scale.fill_(0.5)
        wq.mode = mode
        y = wq(w)  # w/s = 0.6, -2.2, 8 -> 7 (clamped), -5.2
        assert y.flatten().tolist() == [0.5, -1.0, 3.5, -2.5]
        y.sum().backward()
        if mode == "learn":  # 0.4 + 0.2 + 7 + 0.2
            assert wq.scale.grad.item() == pytest.approx(7.8 / math.sqrt(4 * 7), rel=1e-5)
        else:
            assert wq.scale.grad is None


def test_weight_export_uses_the_full_int8_range_per_channel():
    """In export mode each channel rounds onto its own grid, clamped to -128..127, as QuantizeLinear does."""
    wq = fq.WeightQuantizer(2)
    with torch.no_grad():
        wq.scale.copy_(torch.tensor([-0.5, 0.25]))
    wq.prepare_export()
    assert wq.mode == "export"
    w = torch.tensor([[[[0.3, -70.0, 70.0]]], [[[-0.3, 1.0, -31.9]]]])  # 2 output channels, 1 input channel
    # w/s: 0.6, -140 -> -128, 140 -> 127 | -1.2, 4, -127.6 -> -128
    assert wq(w).flatten().tolist() == [0.5, -64.0, 63.5, -0.25, 1.0, -32.0]


def test_quant_conv_keeps_the_convolution_it_replaces():
    """QuantConv2d copies stride, padding, dilation, groups, bias (or none) and padding mode, and the bit width."""
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2, bias=False)
    q = fq.QuantConv2d(conv)
    assert q.bias is None
    x = torch.randn(1, 4, 9, 9)
    torch.testing.assert_close(q(x), conv(x), rtol=0, atol=0)  # observe mode: the plain convolution
    assert fq.QuantConv2d(nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect")).padding_mode == "reflect"
    q4 = fq.QuantConv2d(conv, bits=4)
    assert q4.weight_quant.bits == 4 and q4.input_quant.bits == 4
    q4.weight_quant.calibrate(q4.weight)
    torch.testing.assert_close(q4.weight_quant.scale, conv.weight.abs().flatten(1).amax(1) / 7)


def test_is_quantized_and_model_bits():
    """is_quantized tells a prepared model from a float one; model_bits reads its (first) conv's bit width."""
    assert not fq.is_quantized(nn.Sequential(nn.Conv2d(1, 1, 1)))
    model = nn.Sequential(fq.QuantConv2d(nn.Conv2d(1, 1, 1), bits=6))
    assert fq.is_quantized(model) and fq.model_bits(model) == 6


def test_set_mode_accepts_only_training_modes():
    """'export' is the exporter's own mode: set_mode refuses it by name."""
    with pytest.raises(ValueError, match=r"^unknown quantizer mode 'export'$"):
        fq.set_mode(nn.Sequential(fq.ActivationQuantizer()), "export")


def _pixel_model() -> nn.Sequential:
    """A one-conv quantized model whose input grid is the fixed 8-bit 0..1 pixel grid."""
    conv = fq.QuantConv2d(nn.Conv2d(3, 2, 1))
    conv.input_quant.fixed = True
    conv.input_quant.set_range(0.0, 1.0)
    return nn.Sequential(conv)


def test_set_bits_accepts_2_to_16_bits_only():
    """set_bits takes any width from 2 to 16 inclusive and names a width outside."""
    model = _pixel_model()
    for bits in (2, 16):
        fq.set_bits(model, bits)
        assert fq.model_bits(model) == bits
    for bits in (1, 17):
        with pytest.raises(ValueError, match=rf"^bit width {bits} is outside 2\.\.16$"):
            fq.set_bits(model, bits)


def test_set_bits_puts_the_pixel_grid_exactly_on_0_to_1():
    """The fixed pixel grid is re-placed on exactly 0..1 at each width, never carried over (and drifting)."""
    model = _pixel_model()
    pixels = model[0].input_quant
    fq.set_bits(model, 2)
    assert pixels.scale.item() == _f32(1 / 3) and int(pixels.zero_point) == -2
    fq.set_bits(model, 5)
    assert pixels.scale.item() == _f32(1 / 31) and int(pixels.zero_point) == -16


class _ToyHead(nn.Module):
    """A detection head with box and class branches and no DFL."""

    def __init__(self):
        super().__init__()
        from ultralytics.nn.modules.conv import Conv

        self.cv2 = nn.ModuleList([nn.Sequential(Conv(16, 8, 3), nn.Conv2d(8, 4, 1))])
        self.cv3 = nn.ModuleList([nn.Sequential(Conv(16, 8, 3), nn.Conv2d(8, 2, 1))])

    def forward(self, x):
        return torch.cat([self.cv2[0](x), self.cv3[0](x)], 1)


class _ToyDetector(nn.Module):
    """What quantize_model uses of a DetectionModel: model[-1] the head, fuse() folding BN; a stride-4 FPN join."""

    def __init__(self):
        super().__init__()
        from ultralytics.nn.modules.conv import Concat, Conv

        self.model = nn.Sequential(Conv(3, 8, 3, 2), Conv(8, 8, 3, 2), nn.Upsample(scale_factor=2), Concat(1),
                                   _ToyHead())
        self.fuse_verbose: list = []

    def fuse(self, verbose=True):
        from ultralytics.nn.modules.conv import Conv
        from ultralytics.utils.torch_utils import fuse_conv_and_bn

        self.fuse_verbose.append(verbose)
        for m in self.modules():
            if isinstance(m, Conv) and hasattr(m, "bn"):
                m.conv = fuse_conv_and_bn(m.conv, m.bn)
                delattr(m, "bn")
                m.forward = m.forward_fuse
        return self

    def forward(self, x):
        c0, c1, up, cat, head = self.model
        p2 = c0(x)
        return head(cat([p2, up(c1(p2))]))  # sizes match only for a multiple of 4


def test_quantize_model_defaults():
    """Defaults: 8 bits, a 320 px tracing pass, the original left alone, pixels on 0..1, export-only sums."""
    toy = _ToyDetector()
    q = fq.quantize_model(toy)
    assert not fq.is_quantized(toy) and any(isinstance(m, nn.BatchNorm2d) for m in toy.modules())
    assert toy.fuse_verbose == [] and len(q.fuse_verbose) == 1 and not q.fuse_verbose[0]  # fused quietly
    assert len(fq.quant_convs(q)) == 6  # a head without a DFL: all its convs quantize
    assert fq.model_bits(q) == 8 and all(m.bits == 8 for m in fq._quantizers(q))
    pixels = fq.quant_convs(q)[0].input_quant
    assert pixels.fixed and pixels.scale.item() == _f32(1 / 255) and int(pixels.zero_point) == -128
    blocks = fq._conv_blocks(q)
    assert len(blocks) == 4 and all(b.conv.sum_quant is not None and b.conv.sum_quant.export_only for b in blocks)


def test_inner_grids_make_training_compute_what_the_exported_graph_does():
    """With inner_grids the conv + SiLU grids round in training, so a baked model equals its export-mode self;
    by default they wait for the export, and the two differ."""
    torch.manual_seed(0)
    images = torch.rand(2, 3, 32, 32)
    for inner in (False, True):
        q = fq.quantize_model(_ToyDetector(), imgsz=32, inner_grids=inner)
        inner_grids = [b.conv.sum_quant for b in fq._conv_blocks(q)] + [b.act.gate_quant for b in fq._conv_blocks(q)]
        assert len(inner_grids) == 8 and all(g.export_only is not inner for g in inner_grids)
        fq.calibrate(q, [images])
        fq.bake(q)
        trained = torch.cat([t.flatten() for t in q(images)])
        for module in q.modules():
            if callable(getattr(module, "prepare_export", None)):
                module.prepare_export()
        exported = torch.cat([t.flatten() for t in q(images)])
        assert torch.allclose(trained, exported, atol=1e-5) is inner


def test_quantize_model_passes_the_bit_width_everywhere():
    """bits reaches every grid, the pixel grid included (2^bits levels over 0..1)."""
    q = fq.quantize_model(_ToyDetector(), bits=4, imgsz=32)
    assert all(m.bits == 4 for m in fq._quantizers(q))
    pixels = fq.quant_convs(q)[0].input_quant
    assert pixels.fixed and pixels.scale.item() == _f32(1 / 15) and int(pixels.zero_point) == -8
