"""ONNX -> RKNN with rknn-toolkit2: int8 post-training quantization, fp16, or a QDQ model as is.

The toolkit runs in a child process (see rknn_worker): its log goes to a file beside the
output (and to stderr with `verbose`), and cancelling the job terminates the child.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy.errors import UserError
from deploy.runtime.metadata import Preprocess

PLATFORMS = ("rk3588", "rk3576", "rk3568", "rk3566", "rk3562", "rv1106")
QUANTS = ("int8", "fp16", "qdq")
ALGORITHMS = ("normal", "kl_divergence", "mmse")


@dataclass(frozen=True)
class RknnOptions:
    """How to build: target chip, quantization mode and (for int8) the calibration algorithm."""

    platform: str = "rk3588"
    quant: str = "int8"  # int8: PTQ with calibration images; fp16: no quantization; qdq: keep the ONNX's scales
    algorithm: str = "normal"  # normal | kl_divergence | mmse (mmse is slow: minutes)

    def validate(self) -> None:
        """UserError for an unknown platform, quantization or algorithm (checked before any work)."""
        for value, allowed, flag in (
            (self.platform, PLATFORMS, "--platform"),
            (self.quant, QUANTS, "--quant"),
            (self.algorithm, ALGORITHMS, "--algorithm"),
        ):
            if value not in allowed:
                raise UserError(f"{flag} {value!r} is not supported; choose one of: {', '.join(allowed)}")
        if self.platform == "rv1106" and self.quant == "fp16":
            raise UserError("--platform rv1106 runs int8 models only; use --quant int8 or --quant qdq")

    def config(self) -> dict:
        """rknn.config() arguments: the studio's pre-processing (RGB, 0..255 -> 0..1) and these options."""
        preprocess = Preprocess()
        kwargs = {"mean_values": [preprocess.mean], "std_values": [preprocess.std], "target_platform": self.platform}
        if self.quant == "int8":
            kwargs["quantized_algorithm"] = self.algorithm
        return kwargs


@dataclass
class BuildOutcome:
    """What the child process produced."""

    quantization: list[dict] | None  # int8 grids per output: calibrated (int8), from the built file (qdq); fp16: None
    simulated: list[list[np.ndarray]]  # per simulated image, the float32 outputs
    doctor: dict | None = None  # per-layer errors, the layers kept in float16, and the hybrid model's outputs


def build_rknn(
    onnx_path: Path,
    rknn_out: Path,
    options: RknnOptions,
    outputs: list[str],
    workdir: Path,
    log_path: Path,
    dataset: Path | None = None,
    simulate: list[Path] = (),
    verbose: bool = False,
    poll: Callable[[int], None] | None = None,
    doctor: dict | None = None,
    log_shown: Path | None = None,
) -> BuildOutcome:
    """Build `onnx_path` into `rknn_out`; simulate the given (1, 3, H, W) uint8 .npy inputs.

    `poll(n_simulated)` is called a few times a second while the child works; raising
    from it (a cancelled job) terminates the child. `doctor` ({'inputs': .npy paths to
    analyse, 'layers': how many to keep in float16, 'hybrid_out': .rknn path}) adds the
    per-layer accuracy analysis and a hybrid build (int8 only). `log_shown`: where errors tell the
    user to read the log, when the caller moves it there from `log_path` (default: `log_path`).
    """
    options.validate()
    if doctor and options.quant != "int8":
        raise UserError("the int8 doctor analyses post-training quantization: use it with --quant int8")
    if options.quant == "int8" and dataset is None:
        raise UserError("--quant int8 needs calibration images: add --calib DIR")
    sim_dir = workdir / "simulated"
    sim_dir.mkdir(exist_ok=True)
    request = {
        "onnx": str(Path(onnx_path).resolve()),
        "rknn_out": str(Path(rknn_out).resolve()),
        "config": options.config(),
        "quant": options.quant,
        "dataset": str(Path(dataset).resolve()) if dataset else None,
        "outputs": outputs,
        "workdir": str(workdir.resolve()),
        "simulate": [str(Path(p).resolve()) for p in simulate],
        "sim_dir": str(sim_dir.resolve()),
        "result": str((workdir / "result.json").resolve()),
        "verbose": True,
        "doctor": {**doctor, "inputs": [str(Path(p).resolve()) for p in doctor["inputs"]],
                   "hybrid_out": str(Path(doctor["hybrid_out"]).resolve())} if doctor else None,
    }
    request_path = workdir / "request.json"
    request_path.write_text(json.dumps(request))
    log_shown = log_shown or log_path
    _run_child(request_path, log_path, log_shown, verbose, sim_dir, poll)
    result = json.loads((workdir / "result.json").read_text())
    if not result["ok"]:
        raise UserError(f"rknn-toolkit2 could not convert {Path(onnx_path).name}: {result['error']} (log: {log_shown})")
    found = result.get("doctor")
    if found:
        found["simulated"] = _load_outputs(found["simulated"])
    return BuildOutcome(result.get("quantization"), _load_outputs(result["simulated"]), found)


def _load_outputs(files: list[str]) -> list[list[np.ndarray]]:
    simulated = []
    for npz in files:
        with np.load(npz) as data:
            simulated.append([data[f"arr_{i}"] for i in range(len(data.files))])
    return simulated


def _run_child(request_path: Path, log_path: Path, log_shown: Path, verbose: bool, sim_dir: Path, poll) -> None:
    """Run the worker, copying its output to the log (and stderr when verbose); terminate it on cancel."""
    cmd = [sys.executable, "-m", "deploy.convert.rknn_worker", str(request_path)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        pump = threading.Thread(target=_pump, args=(proc.stdout, log, verbose), daemon=True)
        pump.start()
        try:
            while True:
                try:
                    proc.wait(timeout=0.25)
                    break
                except subprocess.TimeoutExpired:
                    if poll:
                        poll(len(list(sim_dir.glob("sim_*.npz"))))
        except BaseException:
            proc.terminate()
            proc.wait()
            raise
        finally:
            pump.join(timeout=5)
    if not (request_path.parent / "result.json").exists():
        raise UserError(f"rknn-toolkit2 stopped unexpectedly (exit code {proc.returncode}); log: {log_shown}")


def _pump(stream, log, verbose: bool) -> None:
    """Copy the child's output to the log file as it comes (and to stderr when verbose)."""
    for chunk in iter(lambda: stream.read1(4096), b""):
        log.write(chunk)
        log.flush()
        if verbose:
            sys.stderr.write(chunk.decode(errors="replace"))
            sys.stderr.flush()
