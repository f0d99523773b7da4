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
    outputs = backend.infer(np.zeros((1, 64, 64, 3), np.uint8))
    backend.close()
    methods = [(name, kw) for _, name, kw in rknnlite_standin.CALLS]
    assert methods[1] == ("load_rknn", {"path": "model.rknn"})
    assert methods[2] == ("init_runtime", {"core_mask": value})
    assert methods[3][1] == {"shape": (1, 64, 64, 3), "dtype": "uint8", "data_format": "nhwc"}
    assert methods[-1][0] == "release" and [o.shape for o in outputs] == [(1, 64, 8, 8), (1, 4, 8, 8)]


def test_unknown_core_mask(rknnlite_standin):
    with pytest.raises(UserError, match="core mask '3'"):
        RknnLiteBackend("model.rknn", core_mask="3")


def test_missing_rknnlite_says_where_it_runs(monkeypatch):
    monkeypatch.setitem(sys.modules, "rknnlite", None)
    with pytest.raises(UserError, match="runs on a Rockchip board"):
        RknnLiteBackend("model.rknn")
