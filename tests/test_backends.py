"""Backends: core_mask plumbing on the board (through a recording stand-in), ONNX Runtime on the host."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from deploy.errors import UserError
from deploy.runtime.backends import RknnLiteBackend, worker_core_masks
from tests.standins.rknnlite import api as standin


@pytest.fixture
def rknnlite_standin(monkeypatch):
    """Make `import rknnlite.api` find the recording stand-in."""
    import tests.standins.rknnlite as package

    monkeypatch.setitem(sys.modules, "rknnlite", package)
    monkeypatch.setitem(sys.modules, "rknnlite.api", standin)
    standin.CALLS.clear()
    standin.OUTPUT_SHAPES[:] = [(1, 64, 8, 8), (1, 4, 8, 8)]
    return standin


def test_one_npu_core_per_worker():
    assert worker_core_masks(5) == ["0", "1", "2", "0", "1"]


@pytest.mark.parametrize("mask,value", [("0", 1), ("1", 2), ("2", 4), ("all", 0xFFFF), ("0_1_2", 7), ("auto", 0)])
def test_core_mask_reaches_init_runtime(rknnlite_standin, mask, value):
    backend = RknnLiteBackend("model.rknn", core_mask=mask)
    backend.infer(np.zeros((1, 64, 64, 3), np.uint8))
    backend.close()
    methods = [(name, kw) for _, name, kw in rknnlite_standin.CALLS]
    assert methods[1] == ("load_rknn", {"path": "model.rknn"})
    assert methods[2] == ("init_runtime", {"core_mask": value})
    assert methods[3][1] == {"shape": (1, 64, 64, 3), "dtype": "uint8", "data_format": "nhwc"}
    assert methods[-1][0] == "release"  # what inference returns is checked against ONNX Runtime below


def test_board_backend_detects_what_onnx_runtime_detects(rknnlite_standin, monkeypatch, tiny_onnx, calib_dir):
    """The stand-in NPU runs the real model on the tensor it is handed, as the NPU would (NHWC uint8 pixels,
    /255 inside the model): the board path must then find exactly what ONNX Runtime finds on the host."""
    import onnxruntime as ort

    from deploy.convert.calibration import list_images, read_rgb
    from deploy.runtime.backends import OrtBackend
    from deploy.runtime.frame import Frame
    from deploy.runtime.metadata import load_meta
    from deploy.runtime.pipeline import detect
    from deploy.runtime.postprocess import NmsConfig

    session = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])

    def npu(self, inputs, data_format=None):
        (x,) = inputs
        if data_format != "nhwc" or x.dtype != np.uint8:
            raise ValueError(f"the NPU takes nhwc uint8 here, got {data_format} {x.dtype}")
        return session.run(None, {"images": x.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)})

    monkeypatch.setattr(rknnlite_standin.RKNNLite, "inference", npu)
    meta, cfg = load_meta(tiny_onnx), NmsConfig(conf=0.05)
    board, host = RknnLiteBackend("model.rknn", core_mask="1"), OrtBackend(str(tiny_onnx))
    try:
        for path in list_images(calib_dir, 0):  # square and non-square images: the letterbox is the same
            frame = Frame(read_rgb(path))
            on_board, on_host = detect(board, meta, frame, cfg), detect(host, meta, frame, cfg)
            assert len(on_host) > 0
            np.testing.assert_allclose(on_board.boxes, on_host.boxes, atol=1e-3)
            np.testing.assert_array_equal(on_board.classes, on_host.classes)
            np.testing.assert_allclose(on_board.scores, on_host.scores, atol=1e-5)
    finally:
        board.close()


def test_unknown_core_mask(rknnlite_standin):
    with pytest.raises(UserError, match="core mask '3'"):
        RknnLiteBackend("model.rknn", core_mask="3")


def test_missing_rknnlite_says_where_it_runs(monkeypatch):
    monkeypatch.setitem(sys.modules, "rknnlite", None)
    with pytest.raises(UserError, match="runs on a Rockchip board"):
        RknnLiteBackend("model.rknn")
