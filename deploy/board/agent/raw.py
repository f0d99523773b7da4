"""Keep what the first N inferences saw and gave: the input tensor and the raw outputs, one .npz each.

`studio board eval` compares them on the host with the simulator run on the very same input,
so a difference is the model's (or the runtime's), not the decoding's or the resizing's.
Any worker may take a sample; its index is kept, since worker i runs on NPU core i % 3.
"""
import os
import threading
from typing import Callable

import numpy as np

from deploy.runtime.backends import Backend


class RawRecorder:
    """Hands out sample numbers 0..count-1 to the first inferences, across workers."""

    def __init__(self, folder: str, count: int):
        self.folder, self.count, self.taken = folder, count, 0
        self.lock = threading.Lock()
        os.makedirs(folder, exist_ok=True)

    def claim(self):
        with self.lock:
            if self.taken >= self.count:
                return None
            self.taken += 1
            return self.taken - 1

    def save(self, number: int, worker: int, tensor: np.ndarray, outputs: list) -> None:
        """Write sample `number` whole or not at all (a .part renamed when complete)."""
        path = os.path.join(self.folder, f"{number:04d}.npz")
        arrays = {f"out{k}": np.asarray(o) for k, o in enumerate(outputs)}
        with open(path + ".part", "wb") as f:
            np.savez(f, input=tensor, worker=np.int64(worker), **arrays)
        os.replace(path + ".part", path)

    def wrap(self, factory: Callable[[int], Backend]) -> Callable[[int], Backend]:
        return lambda i: _Recording(factory(i), self, i)


class _Recording(Backend):
    """A worker's backend that also keeps the samples it is handed."""

    def __init__(self, inner: Backend, recorder: RawRecorder, worker: int):
        self.inner, self.recorder, self.worker = inner, recorder, worker
        self.name, self.layout, self.int8_outputs = inner.name, inner.layout, inner.int8_outputs

    def infer(self, tensor: np.ndarray) -> list:
        outputs = self.inner.infer(tensor)
        number = self.recorder.claim()
        if number is not None:
            self.recorder.save(number, self.worker, tensor, outputs)
        return outputs

    def close(self) -> None:
        self.inner.close()


def raw_folder(run_file: str) -> str:
    """Where a run's samples go: beside its run file (runs/<id>.json -> runs/<id>.raw/)."""
    return os.path.splitext(run_file)[0] + ".raw"
