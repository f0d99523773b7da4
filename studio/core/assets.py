"""`make assets`: rebuild the bundled demo models, samples, scene and video from nothing.

Every step is skipped when its result exists and resumes when it was interrupted
(training continues from last.pt), so the hours of CPU training can span sessions:

    studio assets                 # all steps
    studio assets --only student  # one step

Budget on 2 CPU cores at 320 px: data 1 minute; student (yolov8n, 60 epochs on 1,050
images) about 70 minutes; teacher (yolov8s, 60 epochs) about 2 hours.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy.errors import UserError
from deploy.runtime.atomic import staged, write_json_atomic
from deploy.runtime.digest import sha256_of
from deploy.runtime.output import Output, write_image
from studio.core.data.synth import SynthConfig, generate
from studio.core.jobs import Job
from studio.core.provenance import tool_versions
from studio.core.train import TrainRequest, is_finished, train

STEPS = ("data", "student", "teacher", "bundle", "samples")
MODELS = {"student": "yolov8n.yaml", "teacher": "yolov8s.yaml"}


@dataclass
class AssetsRequest:
    out: Path = Path("assets")  # what is committed
    work: Path = Path("out/assets")  # data and training runs (not committed)
    images: int = 1500
    size: int = 320  # training size: 512 would take 2.5x longer on this CPU budget
    seed: int = 0
    scenes: int = 3
    epochs: int = 60
    only: str | None = None

    @property
    def data_yaml(self) -> Path:
        return self.work / "data" / "data.yaml"

    def run_dir(self, role: str) -> Path:
        return self.work / "runs" / role

    def generator(self) -> dict:
        return {"command": f"studio data synth --out {self.work / 'data'} --images {self.images} --size {self.size} "
                           f"--seed {self.seed} --scenes {self.scenes}",
                "images": self.images, "size": self.size, "seed": self.seed, "scenes": self.scenes}


def build_assets(req: AssetsRequest, job: Job | None = None) -> dict:
    """Run the steps (or one of them); returns what each step did."""
    job = job or Job()
    if req.only and req.only not in STEPS:
        raise UserError(f"--only {req.only!r} is not one of: {', '.join(STEPS)}")
    done = {}
    for step in STEPS:
        if req.only and step != req.only:
            continue
        if step == "data":
            done[step] = _data(req, job)
        elif step in MODELS:
            done[step] = _train(req, step, job)
        elif step == "bundle":
            done[step] = [_bundle(req, role, job) if _finished(req, role) else f"{role}: not trained yet"
                          for role in MODELS]
        else:
            done[step] = _samples(req, job)
    return done


def _data(req: AssetsRequest, job: Job) -> str:
    if req.data_yaml.is_file():
        return f"kept {req.data_yaml}"
    job.stage("synthetic data", req.images + req.scenes)
    cfg = SynthConfig(req.work / "data", images=req.images, size=req.size, seed=req.seed, scenes=req.scenes,
                      force=True)  # no data.yaml: whatever the folder holds is no dataset
    return f"wrote {generate(cfg, job.stepper('synthetic data'))}"


def _train(req: AssetsRequest, role: str, job: Job) -> str:
    if not req.data_yaml.is_file():
        raise UserError(f"{req.data_yaml} is missing: run the data step first")
    last = req.run_dir(role) / "weights" / "last.pt"
    if last.is_file() and is_finished(last):
        return f"kept {req.run_dir(role)}"
    result = train(TrainRequest(model=MODELS[role], data=req.data_yaml, epochs=req.epochs, imgsz=req.size,
                                project=req.work / "runs", name=role, seed=req.seed, resume=last.is_file()), job)
    return f"trained {result.best}: val mAP50-95 {result.map50_95}"


def _finished(req: AssetsRequest, role: str) -> bool:
    last = req.run_dir(role) / "weights" / "last.pt"
    return last.is_file() and is_finished(last)


def _bundle(req: AssetsRequest, role: str, job: Job) -> str:
    """Copy the best weights into assets/models with a provenance JSON holding our own evaluation."""
    from studio.core.evaluate import EvalRequest, evaluate

    best = req.run_dir(role) / "weights" / "best.pt"
    models = req.out / "models"
    models.mkdir(parents=True, exist_ok=True)
    dest = models / f"{role}.pt"
    with staged(dest) as tmp:
        shutil.copyfile(best, tmp)
    metrics = {}
    for split in ("val", "test"):
        result = evaluate(EvalRequest(model=dest, data=req.data_yaml, split=split, imgsz=req.size), job)
        metrics[split] = {k: getattr(result, k) for k in ("map50_95", "map50", "per_class", "per_size", "images")}
    run = json.loads((req.run_dir(role) / "provenance.json").read_text())
    write_json_atomic(models / f"{role}.json", {
        "role": role, "architecture": MODELS[role], "file": dest.name, "sha256": sha256_of(dest),
        "imgsz": req.size, "generator": req.generator(), "training": run,
        "evaluation": {"tool": "studio eval (faster-coco-eval), torch backend", "conf": 0.001, "iou": 0.7, **metrics},
        "tools": tool_versions(),
    })
    return f"{dest}: val mAP50-95 {metrics['val']['map50_95']}"


def _samples(req: AssetsRequest, job: Job) -> list[str]:
    """A few test images, one large scene (with labels) and a short flight video over it, published together
    (a run stopped half-way leaves the earlier samples as they were)."""
    import cv2

    data = req.work / "data"
    scene = data / "images" / "scenes" / "scene_000.png"
    if not scene.is_file():
        raise UserError(f"{scene} is missing: run the data step with scenes")
    samples = req.out / "samples"
    with Output(samples, force=True, inputs=[data]) as staging:
        for image in sorted((data / "images" / "test").glob("*.png"))[:8]:
            shutil.copyfile(image, staging / image.name)
        image = cv2.imread(str(scene))
        write_image(staging / "scene_000.jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        shutil.copyfile(data / "labels" / "scenes" / "scene_000.txt", staging / "scene_000.txt")
        job.stage("flight video")
        flight_video(image, staging / "flight.avi")
    return sorted(str(p) for p in samples.iterdir())


def flight_video(scene: np.ndarray, path: Path, size: int = 320, frames: int = 150, fps: int = 15) -> Path:
    """A camera window gliding over a large scene along a gentle S-curve (MJPG in .avi)."""
    import cv2

    h, w = scene.shape[:2]
    t = np.linspace(0, 1, frames)
    xs = (w - size) * t
    ys = (h - size) * (0.5 + 0.35 * np.sin(2 * np.pi * t))
    with staged(path, ".avi") as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size, size))
        for x, y in zip(xs.astype(int), ys.astype(int)):
            writer.write(scene[y : y + size, x : x + size])
        writer.release()
    return path
