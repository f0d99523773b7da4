"""Inference backends behind one interface: ONNX Runtime (host) and rknn-toolkit-lite2 (board).

Each pipeline worker owns one backend instance. Imports of onnxruntime and rknnlite
happen when a backend is opened, never at module import, so the board needs neither
package until it uses it. (The rknn-toolkit2 simulator, host-only, lives in
deploy.convert.rknn_sim and implements the same interface.)
"""

from typing import Callable

import numpy as np

from deploy.errors import UserError

CORE_MASKS = ("auto", "0", "1", "2", "0_1", "0_1_2", "all")  # RK3588 has three NPU cores


class Backend:
    """Run one preprocessed frame: `infer(tensor)` returns the model outputs as numpy arrays."""

    name = "backend"
    layout = "nchw-float"  # the input the backend expects: nchw-float (1, 3, H, W) or nhwc-uint8 (1, H, W, 3)
    int8_outputs = False  # True when outputs are raw int8 (then the sidecar's scales apply)

    def infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class OrtBackend(Backend):
    """ONNX Runtime on the CPU, one intra-op thread by default so workers scale by process cores."""

    name = "ort"
    layout = "nchw-float"

    def __init__(self, model_path: str, threads: int = 1):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("the ort backend needs onnxruntime: pip install onnxruntime") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise UserError(f"{model_path}: ONNX Runtime cannot load it ({type(exc).__name__})") from None
        self.input_name = self.session.get_inputs()[0].name

    def infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: tensor})


def _core_mask_value(api, core_mask: str) -> int:
    """The RKNNLite constant for a core mask name (0, 1, 2, 0_1, 0_1_2, all, auto)."""
    names = {"auto": "NPU_CORE_AUTO", "0": "NPU_CORE_0", "1": "NPU_CORE_1", "2": "NPU_CORE_2",
             "0_1": "NPU_CORE_0_1", "0_1_2": "NPU_CORE_0_1_2", "all": "NPU_CORE_ALL"}
    if core_mask not in names:
        raise UserError(f"core mask {core_mask!r} is not one of: {', '.join(CORE_MASKS)}")
    return getattr(api, names[core_mask])


class RknnLiteBackend(Backend):
    """rknn-toolkit-lite2 on the board's NPU, pinned to one core (or several) through core_mask."""

    name = "rknnlite"
    layout = "nhwc-uint8"

    def __init__(self, model_path: str, core_mask: str = "auto"):
        try:
            from rknnlite.api import RKNNLite
        except ImportError:
            raise UserError("the rknnlite backend runs on a Rockchip board with rknn-toolkit-lite2 installed; "
                            "on the host use --backend ort or --backend rknn-sim") from None
        self.rknn = RKNNLite()
        if self.rknn.load_rknn(str(model_path)) != 0:
            raise UserError(f"{model_path}: rknn-toolkit-lite2 cannot load it")
        mask = _core_mask_value(RKNNLite, core_mask)
        if self.rknn.init_runtime(core_mask=mask) != 0:
            raise UserError(f"rknn-toolkit-lite2 could not start the NPU runtime (core_mask {core_mask})")
        self.core_mask = core_mask

    def infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        return self.rknn.inference(inputs=[tensor], data_format="nhwc")

    def close(self) -> None:
        self.rknn.release()


def worker_core_masks(workers: int) -> list[str]:
    """One NPU core per worker (0, 1, 2, 0, ...), as the RK3588's three cores run independently."""
    return [str(i % 3) for i in range(workers)]


def worker_backends(name: str, model_path: str, workers: int) -> Callable[[int], Backend]:
    """The backend factory of a pipeline: worker i gets its own ONNX Runtime session (one thread: the
    workers are the parallelism) or its own NPU context on core i % 3."""
    if name == "ort":
        return lambda i: OrtBackend(str(model_path), threads=1)
    if name == "rknnlite":
        masks = worker_core_masks(workers)
        return lambda i: RknnLiteBackend(str(model_path), core_mask=masks[i])
    raise ValueError(f"unknown backend {name!r} (rknnlite or ort)")
