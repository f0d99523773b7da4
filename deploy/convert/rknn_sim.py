"""The rknn-toolkit2 simulator as an inference backend (host only).

The simulator cannot load a .rknn file; it runs only a model built in the same process.
So this backend rebuilds the model from the ONNX and build options recorded in the
sidecar, in a child process that then serves frames over a pipe. One child serves all
workers, one frame at a time (the toolkit is not known to be safe to share otherwise).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from deploy.convert.calibration import prepare_calibration
from deploy.convert.rknn_convert import RknnOptions
from deploy.errors import UserError
from deploy.runtime.backends import Backend
from deploy.runtime.metadata import build_onnx_path, load_meta


def _serve(conn: Connection, req: dict) -> None:
    """Child: build, start the simulator, answer frames until told to stop."""
    os.chdir(req["workdir"])
    try:
        from deploy.convert.rknn_worker import _check, _configured, output_grids

        rknn = _configured(req)
        quantize = req["quant"] == "int8"
        _check(rknn.build(do_quantization=quantize, dataset=req["dataset"] if quantize else None), "build")
        _check(rknn.init_runtime(), "init_runtime (simulator)")
        grids = output_grids(req, req["outputs"]) if req.get("verify") and quantize else None
        conn.send(("ready", grids))
    except Exception as exc:
        conn.send(("error", _said(exc)))
        return
    while True:
        tensor = conn.recv()
        if tensor is None:
            break
        try:
            outputs = rknn.inference(inputs=[tensor], data_format="nhwc")
            conn.send(("ok", [np.asarray(o, dtype=np.float32) for o in outputs]))
        except Exception as exc:
            conn.send(("error", _said(exc)))
    rknn.release()


def _said(exc: Exception) -> str:
    """One line for an exception: the toolkit puts a whole traceback in its messages; its last line says it."""
    lines = str(exc).strip().splitlines()
    last = lines[-1].strip() if lines else ""
    name = type(exc).__name__
    return last if last.startswith(name) else f"{name}: {last}"


class RknnSimBackend(Backend):
    """Rebuild `model.rknn` from its sidecar in a child process and run frames in the simulator."""

    name = "rknn-sim"
    layout = "nhwc-uint8"

    def __init__(self, model_path: str | Path, verify: bool = False):
        model_path = Path(model_path)
        try:
            meta = load_meta(model_path)
            onnx_path = build_onnx_path(model_path, meta)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if not onnx_path.is_file():
            raise UserError(f"{onnx_path}: the ONNX that {model_path.name} was built from is missing")
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="studio-rknn-sim-")
        try:  # a start that fails leaves no child, socket or temp folder behind
            self._start(model_path, meta, onnx_path, verify)
        except BaseException:
            self._shutdown()
            raise
        self.meta = meta

    def _start(self, model_path: Path, meta, onnx_path: Path, verify: bool) -> None:
        """Rebuild the model in a child process and wait until it serves frames."""
        options = RknnOptions(meta.build.platform, meta.build.quant, meta.build.algorithm or "normal")
        work = Path(self._tmp.name)
        dataset = None
        if options.quant == "int8":
            images = [Path(p) for p in meta.build.calibration]
            missing = [str(p) for p in images if not p.is_file()]
            if missing:
                raise UserError(f"calibration images recorded in the sidecar are missing: {missing[0]} ...")
            dataset, _ = prepare_calibration(images, meta.imgsz, work)
        req = {"onnx": str(onnx_path.resolve()), "config": options.config(), "quant": options.quant,
               "dataset": str(dataset) if dataset else None, "outputs": meta.outputs, "workdir": str(work),
               "verify": verify, "verbose": True}
        request_path = work / "request.json"
        request_path.write_text(json.dumps(req))
        log_path = work / "rknn-sim.log"
        parent, child = socket.socketpair()
        try:
            with open(log_path, "wb") as log:  # the child's stdout/stderr: all toolkit noise
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "deploy.convert.rknn_sim", str(child.fileno()), str(request_path)],
                    pass_fds=[child.fileno()], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        self._conn = Connection(parent.detach())
        status, payload = self._receive()
        if status != "ready":
            raise UserError(f"the rknn-toolkit2 simulator could not rebuild {model_path.name}: {payload}"
                            f"{_last_error(log_path)}")
        self.rebuilt_quantization = payload  # int8 grids of the rebuild (verify=True), else None

    def _receive(self):
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            return "error", f"the simulator process exited (code {self._proc.poll()})"

    def infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        with self._lock:  # one frame at a time through the one simulator
            try:
                self._conn.send(np.ascontiguousarray(tensor))
            except OSError:
                pass  # the child is gone; _receive reports it with its log
            status, payload = self._receive()
        if status != "ok":
            raise RuntimeError(f"rknn-toolkit2 simulator: {payload}")
        return payload

    def close(self) -> None:
        with self._lock:  # never while a worker is between send and receive
            self._shutdown()

    def _shutdown(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            try:
                if self._conn is None:
                    raise OSError("no connection to the child")
                self._conn.send(None)
                self._proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.terminate()
                self._proc.wait()
        if self._conn is not None:
            self._conn.close()
        self._tmp.cleanup()


def _last_error(log_path: Path) -> str:
    """The toolkit's last error line from the child's log (which goes with the temp folder), or nothing."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line.strip() for line in lines if line.lstrip().startswith(("E ", "ERROR"))]
    return f" (the toolkit said: {errors[-1]})" if errors else ""


if __name__ == "__main__":  # the child: python -m deploy.convert.rknn_sim FD REQUEST.json
    _serve(Connection(int(sys.argv[1])), json.loads(Path(sys.argv[2]).read_text()))
