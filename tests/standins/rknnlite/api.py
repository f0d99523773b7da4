"""STAND-IN RKNNLite: same constants and method names as rknn-toolkit-lite2; records every call.

It returns zero-filled outputs of the shapes given by the test; it runs no model.
"""
import numpy as np

CALLS = []  # (instance id, method, kwargs) in call order
OUTPUT_SHAPES = []  # set by the test: shapes of the arrays inference() returns


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
        CALLS.append((id(self), "inference", {"shape": inputs[0].shape, "dtype": str(inputs[0].dtype),
                                              "data_format": data_format}))
        return [np.zeros(s, np.float32) for s in OUTPUT_SHAPES]

    def release(self):
        CALLS.append((id(self), "release", {}))
