"""Fake quantization: the arithmetic RKNN int8 does, BN folding, grids, LSQ, and the QDQ export it leads to."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from deploy.convert.onnx_export import export_onnx, torch_outputs
from deploy.convert.onnx_graph import has_qdq
from studio.core.compress import fakequant as fq
from tests.conftest import make_detector


def _int_conv(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """A 2-D convolution of integer arrays in int64, by explicit patch sums (no float anywhere)."""
    n, c, h, wd = x.shape
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.zeros((n, w.shape[0], oh, ow), dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, :, i, j] = np.einsum("nckl,ockl->no", patch, w)
    return out


def test_fake_quantized_conv_equals_integer_arithmetic_by_hand():
    torch.manual_seed(0)
    conv = fq.QuantConv2d(torch.nn.Conv2d(3, 5, 3, stride=2, padding=1, bias=True))
    conv.input_quant.set_range(-1.3, 2.1)
    conv.weight_quant.calibrate(conv.weight)
    fq.set_mode(conv, "frozen")
    x = torch.randn(2, 3, 9, 9) * 1.5  # some values fall outside the grid's range and must clamp
    got = conv(x).detach().numpy().astype(np.float64)

    s_x, z_x = conv.input_quant.scale.item(), int(conv.input_quant.zero_point)
    s_w = conv.weight_quant.scale.detach().numpy().astype(np.float64)
    assert -128 <= z_x <= 127
    q_x = np.clip(np.round(x.numpy().astype(np.float64) / s_x) + z_x, -128, 127).astype(np.int64)
    w = conv.weight.detach().numpy().astype(np.float64)
    q_w = np.clip(np.round(w / s_w[:, None, None, None]), -127, 127).astype(np.int64)
    assert np.abs(q_w).max() == 127  # the largest weight of each channel sits on the grid's end
    acc = _int_conv(q_x - z_x, q_w, stride=2, pad=1)  # int32 accumulators on the NPU
    expected = acc * (s_x * s_w)[None, :, None, None] + conv.bias.detach().numpy()[None, :, None, None]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_activation_grid_is_asymmetric_int8_holding_zero_and_the_range():
    q = fq.ActivationQuantizer()
    q.set_range(-0.5, 3.0)
    q.mode = "frozen"
    low, high = q.represented_range()
    step = q.scale.item()
    assert step == pytest.approx(3.5 / 255)  # 256 levels over the range
    assert abs(low + 0.5) <= step / 2 and abs(high - 3.0) <= step / 2 and int(q.zero_point) != 0
    x = torch.tensor([0.0, -10.0, 10.0, 1.234])
    y = q(x)
    assert y[0] == 0.0  # zero (padding) is exact
    assert y[1] == pytest.approx(low) and y[2] == pytest.approx(high)  # clamped to the ends
    assert abs(y[3] - 1.234) <= q.scale.item() / 2 + 1e-7


def test_lsq_moves_the_scale_only_when_learning():
    x = torch.linspace(-2, 2, 101, requires_grad=True)
    for mode, moves in (("learn", True), ("frozen", False)):
        q = fq.ActivationQuantizer()
        q.set_range(-1.0, 1.0)  # too narrow: the clamp error pulls the scale up
        q.mode = mode
        ((q(x) - x) ** 2).sum().backward()
        grad = q.scale.grad
        assert (grad is not None and grad.abs() > 0 and grad < 0) if moves else (grad is None or grad == 0)


def test_lower_bit_width_keeps_the_range_and_coarsens_the_grid():
    x = torch.linspace(-1, 3, 1001)
    q = fq.ActivationQuantizer(bits=16)
    q.set_range(-1.0, 3.0)
    q.mode = "frozen"
    err16 = (q(x) - x).abs().max()
    q.set_bits(8)
    low, high = q.represented_range()
    assert low == pytest.approx(-1.0, abs=0.02) and high == pytest.approx(3.0, abs=0.02)
    err8 = (q(x) - x).abs().max()
    assert err16 < 1e-4 < err8 <= q.scale.item() / 2 + 1e-6
    w = fq.WeightQuantizer(2, bits=16)
    w.calibrate(torch.tensor([[1.0, -0.5], [2.0, 0.25]]))
    w.set_bits(8)
    assert w.scale.tolist() == pytest.approx([1.0 / 127, 2.0 / 127])


def _randomize_batchnorm(model: torch.nn.Module) -> None:
    """Trained-looking BN statistics, so that folding has something to fold."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)


@pytest.fixture(scope="module")
def trained_like():
    model = make_detector()
    _randomize_batchnorm(model)
    return model


def test_folded_batchnorm_equals_unfolded_in_float(trained_like):
    q = fq.quantize_model(trained_like, imgsz=128)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in q.modules())
    fq.set_mode(q, "observe")  # every grid off: the folded model in plain float
    pixels = fq.quant_convs(q)[0].input_quant
    pixels.fixed = False
    x = torch.rand(1, 3, 128, 128)
    for a, b in zip(torch_outputs(trained_like, x, "rknn-split"), torch_outputs(q, x, "rknn-split")):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


def test_only_convs_after_a_join_round_their_own_input(trained_like):
    q = fq.quantize_model(trained_like, imgsz=128)
    named = {name: m for name, m in q.named_modules() if isinstance(m, fq.QuantConv2d)}
    rounding = sorted(name for name, m in named.items() if m.input_quant is not None)
    # the image, and the conv after each torch.cat inside C2f (8) and SPPF (1): every other input
    # was already rounded by the block, add, concat or head output that produced it
    assert rounding[0] == "model.0.conv" and len(rounding) == 10
    assert all(name.endswith("cv2.conv") for name in rounding[1:])
    assert fq.quant_convs(q)[0].input_quant.fixed
    head = q.model[-1]
    assert all(hasattr(branch[-1], "output_quant") for branch in list(head.cv2) + list(head.cv3))
    assert not any(isinstance(m, fq.QuantConv2d) for m in head.dfl.modules())


def _calibrated(model, imgsz: int = 128):
    q = fq.quantize_model(model, imgsz=imgsz)
    gen = torch.Generator().manual_seed(0)
    fq.calibrate(q, [torch.rand(2, 3, imgsz, imgsz, generator=gen) for _ in range(2)])
    return q


def test_calibrated_grids_stay_close_to_float_and_baking_keeps_the_model(trained_like):
    q = _calibrated(trained_like)
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(5))
    before = torch_outputs(q, x, "rknn-split")
    floats = torch_outputs(trained_like, x, "rknn-split")
    for a, b in zip(floats, before):
        assert F.cosine_similarity(a.flatten(), b.flatten(), 0) > 0.98
    fq.bake(q)
    for conv in fq.quant_convs(q):  # weights now lie exactly on their grids
        steps = conv.weight / conv.weight_quant.scale.view(-1, 1, 1, 1)
        assert torch.allclose(steps, steps.round(), atol=1e-3)
    for a, b in zip(before, torch_outputs(q, x, "rknn-split")):
        assert F.cosine_similarity(a.flatten(), b.flatten(), 0) > 0.999


@pytest.mark.slow  # calibrates, exports and runs a QDQ yolov8n (11-17 s here)
def test_qdq_export_runs_in_onnxruntime_like_the_torch_model(trained_like, tmp_path):
    q = _calibrated(trained_like)
    fq.bake(q)
    path = tmp_path / "qat.onnx"
    export_onnx(q, path, 128, "rknn-split", "logits")
    model = onnx.load(str(path))
    assert has_qdq(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > ops.count("Conv")  # inputs, sums, gates and outputs all rounded
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(6))
    got = ort.InferenceSession(str(path)).run(None, {"images": x.numpy()})
    for a, b in zip(torch_outputs(q, x, "rknn-split", "logits"), got):
        assert F.cosine_similarity(a.flatten(), torch.from_numpy(b).flatten(), 0) > 0.995


def test_only_int8_exports(trained_like, tmp_path):
    q = _calibrated(trained_like)
    fq.set_bits(q, 6)
    with pytest.raises(ValueError, match="only int8"):
        export_onnx(q, tmp_path / "x.onnx", 128, "rknn-split")


@pytest.mark.slow
@pytest.mark.parametrize("task", ["detect", "obb"])
def test_qat_checkpoint_builds_in_rknn_keeping_its_trained_scales(cli, task, trained_like, calib_dir, tmp_path):
    """The grids trained into a QAT model (box, class and, for oriented boxes, angle convs) are the built model's."""
    import json
    import re
    from pathlib import Path

    from studio.core.compress.loop import default_hyperparameters, save_checkpoint
    from studio.core.compress.yolo import angle_branches

    if task == "obb":
        trained_like = make_detector(obb=True)
        _randomize_batchnorm(trained_like)
    q = _calibrated(trained_like)
    with torch.no_grad():  # grids a calibration would not choose, so a re-quantizing converter would show
        for i, quant in enumerate(fq.activation_quantizers(q)):
            if not quant.fixed:
                quant.scale.mul_(1.0 + 0.01 * (i % 7))
    fq.bake(q)
    ckpt = tmp_path / "qat.pt"
    save_checkpoint(q, ckpt, default_hyperparameters(128, task), 0)
    head = q.model[-1]
    branches = (head.cv2, head.cv3) + ((angle_branches(q),) if task == "obb" else ())
    trained = [branch[-1].output_quant for level in zip(*branches) for branch in level]  # box0, cls0, (angle0), ...
    assert len(trained) == 3 * len(branches)

    refused = cli("export", ckpt, "--format", "rknn", "--calib", calib_dir, "--out", tmp_path / "ptq.rknn")
    assert refused.exit_code == 2 and "--quant qdq" in refused.stderr

    out = tmp_path / "qat.rknn"
    result = cli("export", ckpt, "--format", "rknn", "--quant", "qdq", "--imgsz", 128, "--calib", calib_dir,
                 "--report", "--report-count", 2, "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    meta = json.loads(Path(data["metadata"]).read_text())
    assert meta["build"]["quant"] == "qdq"
    kinds = ("box", "cls", "angle") if task == "obb" else ("box", "cls")
    assert [g["name"] for g in meta["quantization"]] == [f"{k}{i}" for i in range(3) for k in kinds]
    for grid, quant in zip(meta["quantization"], trained):  # read back from the built .rknn file
        if grid["name"].startswith("angle"):  # the int8 angle conv's sigmoid runs in float: the angle leaves in float
            assert grid["dtype"] == "float32"
            continue
        assert grid["dtype"] == "int8"
        assert grid["scale"] == pytest.approx(quant.scale.item(), rel=1e-6)
        assert grid["zero_point"] == int(quant.zero_point)
    # the convolutions run in int8 on the NPU; grids on conv inputs alone would leave 57 of 64 in float16.
    # (The toolkit's concat+conv fusion turns the neck's two upsample-concat-conv spots into float16
    # partial convs for any QDQ input, onnxruntime's quantize_static output included.)
    layers = re.findall(r"^D RKNN: \[[^\]]+\]\s+\d+\s+(\w+)\s+(\w+)\s+NPU", Path(data["log"]).read_text(), re.M)
    convs = [dtype for op, dtype in layers if op.startswith("Conv")]
    assert len(convs) >= 60 and convs.count("INT8") >= 0.9 * len(convs)
    # the simulator computes what the fake-quantized torch model computes
    assert data["min_cosine_active"] >= 0.99
