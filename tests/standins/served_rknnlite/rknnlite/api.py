"""STAND-IN RKNNLite (tests only; runs no model): serves outputs the host's rknn-toolkit2 simulator computed.

A test puts, beside this file in served/, one <sha256 of the input tensor's bytes>.npz per input it
expects, holding the simulator's outputs for it (out0, out1, ...). inference() looks its input up
there; an input nobody prepared is an error, so a test cannot pass on made-up outputs. The same
constants and methods as rknn-toolkit-lite2, so the studio's agent runs its NPU path unchanged.
"""
import hashlib
import os

import numpy as np

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
        self.loaded = None

    def load_rknn(self, path):
        self.loaded = path if os.path.isfile(path) else None
        return 0 if self.loaded else -1

    def init_runtime(self, core_mask=NPU_CORE_AUTO):
        return 0 if self.loaded else -1

    def inference(self, inputs, data_format=None):
        tensor = np.ascontiguousarray(inputs[0])
        key = hashlib.sha256(tensor.tobytes()).hexdigest()
        path = os.path.join(SERVED, key + ".npz")
        if not os.path.isfile(path):
            raise RuntimeError(f"rknnlite stand-in: no served outputs for an input of shape {tensor.shape} "
                               f"({key[:12]})")
        with np.load(path) as z:
            return [z[f"out{k}"] for k in range(len([n for n in z.files if n.startswith("out")]))]

    def release(self):
        self.loaded = None
