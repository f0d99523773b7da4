"""STAND-IN RKNNLite (tests only; runs no model): the constants and methods of rknn-toolkit-lite2.

It records every call (CALLS). inference() returns what a test prepared: with a served/ folder
beside this file (on the stand-in board), the outputs the host's rknn-toolkit2 simulator computed
for that input, one <sha256 of the input tensor's bytes>.npz each (out0, out1, ...), and an input
nobody prepared is an error, so no test passes on made-up outputs; without it, zero-filled arrays
of OUTPUT_SHAPES (for tests of the calls themselves).
"""
import hashlib
import os

import numpy as np

CALLS = []  # (instance id, method, kwargs) in call order
OUTPUT_SHAPES = []  # set by a test: shapes of the arrays inference() returns when nothing is served
SERVED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "served")


class RKNNLite:
    NPU_CORE_AUTO = 0
    NPU_CORE_0 = 1
    NPU_CORE_1 = 2
    NPU_CORE_2 = 4
    NPU_CORE_0_1 = 3
    NPU_CORE_0_1_2 = 7
    NPU_CORE_ALL = 0xFFFF

    def __init__(self, verbose=False):
        CALLS.append((id(self), "__init__", {}))

    def load_rknn(self, path):
        CALLS.append((id(self), "load_rknn", {"path": path}))
        return 0

    def init_runtime(self, core_mask=NPU_CORE_AUTO):
        CALLS.append((id(self), "init_runtime", {"core_mask": core_mask}))
        return 0

    def inference(self, inputs, data_format=None):
        tensor = np.ascontiguousarray(inputs[0])
        CALLS.append((id(self), "inference", {"shape": tensor.shape, "dtype": str(tensor.dtype),
                                              "data_format": data_format}))
        if not os.path.isdir(SERVED):
            return [np.zeros(s, np.float32) for s in OUTPUT_SHAPES]
        key = hashlib.sha256(tensor.tobytes()).hexdigest()
        path = os.path.join(SERVED, key + ".npz")
        if not os.path.isfile(path):
            raise RuntimeError(f"rknnlite stand-in: no served outputs for an input of shape {tensor.shape} "
                               f"({key[:12]})")
        with np.load(path) as z:
            return [z[f"out{k}"] for k in range(len([n for n in z.files if n.startswith("out")]))]

    def release(self):
        CALLS.append((id(self), "release", {}))
