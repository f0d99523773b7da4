"""Pick an inference backend by name and give each pipeline worker what it needs.

ort: ONNX Runtime on a float .onnx. rknnlite: the board's NPU, worker i on core i % 3.
rknn-sim: the rknn-toolkit2 simulator, one shared instance, one frame at a time.
The backends themselves live in deploy/runtime/backends.py (which runs on the board too)
and deploy/convert/rknn_sim.py; this host-side module only chooses and opens them.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from deploy.errors import UserError
from deploy.runtime.backends import Backend, worker_backends

BACKENDS = ("ort", "rknn-sim", "rknnlite")
SUFFIX = {"ort": ".onnx", "rknn-sim": ".rknn", "rknnlite": ".rknn"}


class _Shared(Backend):
    """A worker's handle on a backend shared by all workers; closing it leaves the shared one open."""

    def __init__(self, inner: Backend):
        self.inner, self.layout, self.name, self.int8_outputs = inner, inner.layout, inner.name, inner.int8_outputs

    def infer(self, tensor):
        return self.inner.infer(tensor)


class BackendPool:
    """Backends for N workers; `close()` releases anything shared."""

    def __init__(self, name: str, model: Path, workers: int, shared: Backend | None = None):
        """shared: a backend already open for this model (the caller's to close), used by every worker."""
        if name not in BACKENDS:
            raise UserError(f"--backend {name!r} is not one of: {', '.join(BACKENDS)}")
        if model.suffix != SUFFIX[name]:
            raise UserError(f"--backend {name} runs a {SUFFIX[name]} model, not {model.name}; "
                            f"export one with: studio export ... --format {SUFFIX[name][1:]}")
        self.name, self.model, self.workers = name, model, workers
        self.shared, self.owned = shared, shared is None
        if name == "rknn-sim" and shared is None:
            from deploy.convert.rknn_sim import RknnSimBackend

            self.shared = RknnSimBackend(model)

    def factory(self) -> Callable[[int], Backend]:
        if self.shared is None:
            return worker_backends(self.name, str(self.model), self.workers)
        return lambda i: _Shared(self.shared)

    def close(self) -> None:
        if self.shared is not None and self.owned:
            self.shared.close()
