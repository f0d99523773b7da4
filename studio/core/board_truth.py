"""The board's raw outputs against the host's twin on the same inputs, and the likely cause when they differ.

The agent keeps the input tensor and raw outputs of its first inferences (agent/raw.py). The
host runs its twin of the board's backend (the simulator for an .rknn, ONNX Runtime for an
.onnx) on exactly those inputs and compares output by output. When an .rknn disagrees, each
input-side cause the studio can check is re-simulated: the board's input as the model would
see it with channels swapped, normalised with other mean/std, or laid out NCHW instead of
NHWC. A cause whose re-simulation agrees with the board (cosine >= AGREE) is named with its fix;
a disagreement on one worker only points at that worker's NPU core.
"""
from __future__ import annotations

import posixpath
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy.board.agent.raw import raw_folder
from deploy.board.remote_run import AgentRun
from deploy.convert.verify import compare_sets, cosine
from deploy.runtime.backends import Backend
from deploy.runtime.metadata import ModelMeta

AGREE = 0.99  # min cosine over outputs for the board to count as agreeing with its twin
IMAGENET_MEAN, IMAGENET_STD = 127.5, 127.5  # the other normalisation re-simulated (to [-1, 1] instead of [0, 1])


@dataclass(frozen=True)
class Cause:
    name: str
    says: str
    fix: str
    seen: Callable[[np.ndarray], np.ndarray]  # (1, H, W, 3) uint8 as the board fed it -> as the model took it


def _swapped(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x[..., ::-1])


def _normalised_apart(x: np.ndarray) -> np.ndarray:
    """What a model built with mean/std 127.5 makes of an image meant for 0/255, on the uint8 grid it reads."""
    return np.clip((x.astype(np.float32) - IMAGENET_MEAN) / IMAGENET_STD * 255.0, 0, 255).round().astype(np.uint8)


def _nchw_bytes(x: np.ndarray) -> np.ndarray:
    """NCHW bytes read as NHWC: the image's planes laid one after another, then cut into pixels."""
    n, h, w, c = x.shape
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(n, h, w, c)


CAUSES = (
    Cause("colour order", "the board's model sees the image with red and blue swapped (BGR where it was built "
          "for RGB)", "feed RGB as the sidecar's channel_order says (OpenCV reads BGR: convert with "
                      "cv2.cvtColor(img, cv2.COLOR_BGR2RGB)), or export again with the order the board feeds",
          _swapped),
    Cause("mean/std", "the board's model normalises the input with other mean/std values than the sidecar "
          "records (mean 127.5, std 127.5 instead of 0 and 255)", "export the model again: the mean_values and "
          "std_values built into the .rknn must be the sidecar's (studio export writes both together)",
          _normalised_apart),
    Cause("layout", "the board's model reads the input as NCHW bytes where it takes NHWC", "pass "
          "data_format='nhwc' to RKNNLite.inference with an (1, H, W, 3) uint8 image, as the studio's agent does",
          _nchw_bytes),
)


def fetch_samples(board, run: AgentRun, dest: Path) -> list[dict]:
    """Download the run's raw samples: [{"input", "worker", "outputs"}] in sample order."""
    folder = raw_folder(run.run_file)
    try:
        names = sorted(n for n in board.sftp.listdir(folder) if n.endswith(".npz"))
    except OSError:
        return []
    samples = []
    for name in names:
        local = dest / name
        board.sftp.get(posixpath.join(folder, name), str(local))
        with np.load(local) as z:
            count = len([k for k in z.files if k.startswith("out")])
            samples.append({"input": z["input"], "worker": int(z["worker"]),
                            "outputs": [z[f"out{k}"] for k in range(count)]})
    return samples


def _min_cosine(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return min(cosine(x, y.reshape(x.shape)) for x, y in zip(a, b))


def compare_raw(samples: list[dict], twin: Backend, meta: ModelMeta, twin_name: str) -> dict:
    """Cosine per output and detection agreement of the board against its twin on the board's own inputs; when
    they disagree, which causes re-simulate the board's outputs and whether one worker alone disagrees."""
    logits = meta.class_scores == "logits"
    twin_outputs = [twin.infer(s["input"]) for s in samples]
    found = compare_sets(twin_outputs, [s["outputs"] for s in samples], meta.outputs, logits=logits, task=meta.task)
    found.update({"with": twin_name, "samples": len(samples), "agrees": found["min_cosine"] >= AGREE})
    per_worker: dict[int, list[float]] = {}
    for s, ref in zip(samples, twin_outputs):
        per_worker.setdefault(s["worker"], []).append(_min_cosine(ref, s["outputs"]))
    found["min_cosine_by_worker"] = {str(w): round(min(v), 6) for w, v in sorted(per_worker.items())}
    found["causes"] = [] if found["agrees"] else _causes(samples, twin, per_worker)
    return found


def _causes(samples: list[dict], twin: Backend, per_worker: dict[int, list[float]]) -> list[dict]:
    """Each checkable cause with the min cosine its re-simulation reaches against the board; likely ones first."""
    rows = []
    if twin.layout == "nhwc-uint8":
        for cause in CAUSES:
            reached = min(_min_cosine(twin.infer(cause.seen(s["input"])), s["outputs"]) for s in samples)
            rows.append({"cause": cause.name, "likely": reached >= AGREE, "min_cosine": round(reached, 6),
                         "says": cause.says, "fix": cause.fix})
    bad = [w for w, v in per_worker.items() if min(v) < AGREE]
    if 0 < len(bad) < len(per_worker):
        rows.append({"cause": "core mask", "likely": True, "min_cosine": None,
                     "says": f"only worker(s) {', '.join(map(str, bad))} disagree (NPU core(s) "
                             f"{', '.join(str(w % 3) for w in bad)}); the others agree",
                     "fix": "run with fewer workers, or check that core with: studio board doctor"})
    return sorted(rows, key=lambda r: not r["likely"])


def quantization_differences(deployed: list, rebuilt: list[dict] | None) -> list[dict] | None:
    """Outputs whose int8 grid in the deployed file differs from the simulator's rebuild (None: not known)."""
    if not rebuilt:
        return None
    by_name = {q["name"]: q for q in rebuilt}
    return [{"output": q.name, "deployed": [q.scale, q.zero_point],
             "rebuilt": [by_name[q.name]["scale"], by_name[q.name]["zero_point"]]}
            for q in deployed if q.name in by_name and (
                abs(by_name[q.name]["scale"] - q.scale) > 1e-6 * abs(q.scale) or
                by_name[q.name]["zero_point"] != q.zero_point)]


def samples_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="studio-board-raw-")
