"""`make assets`: rebuild the bundled demo models, samples, scene and video from nothing.

Every step is skipped when its result exists and resumes when it was interrupted
(training continues from last.pt), so the hours of CPU training can span sessions:

    studio assets                 # all steps
    studio assets --only student  # one step

Budget on 2 CPU cores at 320 px: data 1 minute; student (yolov8n, 60 epochs on 1,050
images) about 70 minutes; teacher (yolov8s, 60 epochs) about 2 hours. The oriented-box pair
trains on the dense benchmark (generator dense-1, 700 training images of about 34 objects):
student-obb (yolov8n-obb, 40 epochs, then 40 more from its last weights, then at most 30 more at a small rate
without mosaic until its val mAP50-95 is flat) about 3 hours;
teacher-obb (yolov8s-obb started from the bundled upright teacher's backbone and neck, 24 epochs, then 24
more from its last weights, then a polish like the student's) about 6 hours. Each stage of it fits in one
3-hour sitting, so a machine that does not keep its files loses one stage at most.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from deploy.errors import UserError
from deploy.runtime.atomic import staged, write_json_atomic
from deploy.runtime.digest import sha256_of
from deploy.runtime.output import Output, write_image
from studio.core.checkpoint_pack import pack_checkpoint
from studio.core.data.synth import SynthConfig, generate
from studio.core.jobs import Job
from studio.core.provenance import tool_versions
from studio.core.train import TrainRequest, is_finished, train


@dataclass(frozen=True)
class Then:
    """A further stage of a role: a run from the previous stage's last weights with a fresh schedule, of `epochs`
    (with until_flat the most: it stops once its val mAP50-95 is flat by the full-budget rule); mosaic False: a
    polish without mosaic from its first epoch, so the gain of its last epochs is convergence, not the
    switch that ends mosaic; lr: a rate of its own."""

    epochs: int
    until_flat: bool = False
    mosaic: bool = True
    lr: float | None = None  # AdamW at this rate without warm-up (None: ultralytics' automatic choice)


POLISH = Then(30, until_flat=True, mosaic=False, lr=1e-4)  # a trained model's last stage: small steps, no mosaic,
# and no warm-up (whose bias rate of 0.1 knocks a trained model back for epochs)


@dataclass(frozen=True)
class Role:
    """A bundled model: its architecture, the data it learns (demo: sparse-1 upright boxes; dense-obb: the dense
    oriented-box benchmark), epochs (None: the request's), the further stages it then trains in, and the bundled
    role whose matching layers start it (None: from nothing)."""

    architecture: str
    data: str = "demo"
    epochs: int | None = None
    more: tuple[Then, ...] = ()
    init: str | None = None


class StageRun(NamedTuple):
    """One training run of a role: its run name, the model it starts from (None: bundled, not trained here) and
    how it trains (the first stage's as a Then too)."""

    name: str
    model: str | None
    then: Then


ROLES = {"student": Role("yolov8n.yaml"), "teacher": Role("yolov8s.yaml"),
         "student-obb": Role("yolov8n-obb.yaml", "dense-obb", 40,
                             more=(Then(40), POLISH)),
         "teacher-obb": Role("yolov8s-obb.yaml", "dense-obb", 24,
                             more=(Then(24), POLISH), init="teacher")}
STEPS = ("data", "student", "teacher", "data-obb", "student-obb", "teacher-obb", "bundle", "samples", "dense-scene")
DENSE = {"images": 1000, "size": 320, "seed": 0}  # the dense oriented-box benchmark the OBB models learn
DENSE_SCENE = {"size": 1536, "seed": 7}  # the remote-sensing demo's dense scene (not an image the models learnt)


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

    @property
    def dense_yaml(self) -> Path:
        return self.work / "dense-obb" / "data.yaml"

    def role_data(self, role: str) -> Path:
        return self.dense_yaml if ROLES[role].data == "dense-obb" else self.data_yaml

    def generator(self, role: str = "student") -> dict:
        if ROLES[role].data == "dense-obb":
            return {"command": f"studio data synth --out {self.work / 'dense-obb'} --generator dense-1 --task obb "
                               f"--images {DENSE['images']} --size {DENSE['size']} --seed {DENSE['seed']}",
                    "generator": "dense-1", "task": "obb", **DENSE}
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
        elif step == "data-obb":
            done[step] = _dense_data(req, job)
        elif step in ROLES:
            done[step] = _train(req, step, job)
        elif step == "bundle":
            done[step] = [_bundle(req, role, count, job) if (count := bundle_stages(req, role))
                          else f"{role}: not trained yet" for role in ROLES]
        elif step == "samples":
            done[step] = _samples(req, job)
        else:
            done[step] = _dense_scene(req, job)
    return done


def _data(req: AssetsRequest, job: Job) -> str:
    if req.data_yaml.is_file():
        return f"kept {req.data_yaml}"
    job.stage("synthetic data", req.images + req.scenes)
    cfg = SynthConfig(req.work / "data", images=req.images, size=req.size, seed=req.seed, scenes=req.scenes,
                      force=True)  # no data.yaml: whatever the folder holds is no dataset
    return f"wrote {generate(cfg, job.stepper('synthetic data'))}"


def _dense_data(req: AssetsRequest, job: Job) -> str:
    if req.dense_yaml.is_file():
        return f"kept {req.dense_yaml}"
    job.stage("dense oriented-box data", DENSE["images"])
    cfg = SynthConfig(req.dense_yaml.parent, images=DENSE["images"], size=DENSE["size"], seed=DENSE["seed"],
                      generator="dense-1", task="obb", force=True)
    return f"wrote {generate(cfg, job.stepper('dense oriented-box data'))}"


def _train(req: AssetsRequest, role: str, job: Job) -> str:
    spec, data = ROLES[role], req.role_data(role)
    if not data.is_file():
        raise UserError(f"{data} is missing: run its data step first (studio assets --only "
                        f"{'data-obb' if spec.data == 'dense-obb' else 'data'})")
    said = []
    if _held(req, role) == len(run_names(role)) and not (req.work / "runs" / role).exists():
        job.stage(role, None, f"{req.out / 'models' / role}.json holds every stage of {role}: training it again "
                              "from nothing, as `make assets` rebuilds it (hours); stop now to keep the bundled model")
    for name, model, then in stage_plan(req, role):
        last = req.work / "runs" / name / "weights" / "last.pt"
        if model is None:
            said.append(f"kept the bundled stage {name}, in {req.out / 'models' / role}.pt")
            continue
        if last.is_file() and is_finished(last):
            said.append(f"kept {last.parent.parent}")
            continue
        init = str(req.out / "models" / f"{spec.init}.pt") if spec.init and name == role else None
        result = train(TrainRequest(model=model, data=data, epochs=then.epochs, imgsz=req.size,
                                    project=req.work / "runs", name=name, seed=req.seed, resume=last.is_file(),
                                    init=init, until_flat=then.until_flat, mosaic=then.mosaic, lr=then.lr), job)
        said.append(f"trained {result.best}: val mAP50-95 {result.map50_95}")
    return "; ".join(said)


def run_names(role: str) -> list[str]:
    """The runs of a role's stages under runs/: role, role-more, role-more2, ..."""
    return [role] + [f"{role}-more{'' if i == 1 else i}" for i in range(1, len(ROLES[role].more) + 1)]


def stage_plan(req: AssetsRequest, role: str) -> list[StageRun]:
    """Each stage's run. The stages a partly bundled card already holds, and whose runs are not here, are not
    trained again (model None: a machine lost between sessions does not cost their hours); the next stage starts
    from the bundled weights then."""
    spec = ROLES[role]
    bundled = _bundled_stages(req, role)
    plan, start = [], spec.architecture
    for index, (name, then) in enumerate(zip(run_names(role), (Then(spec.epochs or req.epochs), *spec.more))):
        last = req.work / "runs" / name / "weights" / "last.pt"
        here = last.is_file()
        plan.append(StageRun(name, None if index < bundled and not here else start, then))
        start = str(req.out / "models" / f"{role}.pt" if index == bundled - 1 and not here else last)
    return plan


def _held(req: AssetsRequest, role: str) -> int:
    """How many of a role's stages its bundled card holds (0 without a card)."""
    card = req.out / "models" / f"{role}.json"
    return len(json.loads(card.read_text()).get("stages", [])) if card.is_file() else 0


def _bundled_stages(req: AssetsRequest, role: str) -> int:
    """How many of a role's stages its bundled card holds, when it holds some but not all (else 0: a card of
    every stage is a finished model, and a rebuild starts over)."""
    held = _held(req, role)
    return held if held < len(run_names(role)) else 0


def bundle_stages(req: AssetsRequest, role: str) -> int:
    """How many stages the bundle step publishes: those up to the furthest whose run has finished here, so a
    machine lost before the last stage keeps the others (0: none finished, or fewer than the card holds)."""
    names = run_names(role)
    for count in range(len(names), 0, -1):
        last = req.work / "runs" / names[count - 1] / "weights" / "last.pt"
        if last.is_file() and is_finished(last):
            return count if count >= _held(req, role) else 0
    return 0


def _stage_records(req: AssetsRequest, role: str, count: int) -> list[dict]:
    """The first `count` stages' provenance: from each run, or, for a stage bundled alone, from the card."""
    bundled = _bundled_stages(req, role)
    card = json.loads((req.out / "models" / f"{role}.json").read_text())["stages"] if bundled else []
    records = []
    for index, name in enumerate(run_names(role)[:count]):
        run = req.work / "runs" / name / "provenance.json"
        records.append(json.loads(run.read_text()) if run.is_file() or index >= bundled else card[index])
    return records


def _bundle(req: AssetsRequest, role: str, count: int, job: Job) -> str:
    """Copy the best weights of the role's `count`-th stage into assets/models with a provenance JSON holding
    our own evaluation and every stage so far."""
    from studio.core.evaluate import EvalRequest, evaluate

    spec = ROLES[role]
    best = req.work / "runs" / run_names(role)[count - 1] / "weights" / "best.pt"
    models = req.out / "models"
    models.mkdir(parents=True, exist_ok=True)
    dest = models / f"{role}.pt"
    stages = _stage_records(req, role, count)
    card = models / f"{role}.json"
    if dest.is_file() and card.is_file() and json.loads(card.read_text()).get("stages") == stages:
        return f"kept {dest}: already the bundle of those {count} stage(s)"
    with staged(dest) as tmp:
        pack_checkpoint(best, tmp)
    metrics, metric = {}, ""
    for split in ("val", "test"):
        result = evaluate(EvalRequest(model=dest, data=req.role_data(role), split=split, imgsz=req.size), job)
        metric = result.settings["metric"]
        metrics[split] = {k: getattr(result, k) for k in ("map50_95", "map50", "per_class", "per_size", "images")}
    write_json_atomic(models / f"{role}.json", {
        "role": role, "architecture": spec.architecture, "file": dest.name, "sha256": sha256_of(dest),
        "bytes": dest.stat().st_size, "imgsz": req.size, "generator": req.generator(role), "training": stages[-1],
        "stages": stages, "cpu_hours": round(sum(s.get("train_seconds", 0.0) for s in stages) / 3600, 2),
        "evaluation": {"tool": f"studio eval ({metric}), torch backend", "conf": 0.001, "iou": 0.7, **metrics},
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


def _dense_scene(req: AssetsRequest, job: Job) -> list[str]:
    """A dense-1 scene with its oriented labels for the oriented-box demos: samples/dense_scene.jpg and .txt."""
    import cv2

    from studio.core.data.synth import label_text, render_image

    job.stage("dense scene")
    cfg = SynthConfig(req.work / "dense-scene", size=DENSE_SCENE["size"], seed=DENSE_SCENE["seed"],
                      generator="dense-1", task="obb")
    image, labels = render_image(cfg, 0)
    samples = req.out / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    write_image(samples / "dense_scene.jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    with staged(samples / "dense_scene.txt") as tmp:
        tmp.write_text(label_text(labels))
    return [str(samples / "dense_scene.jpg"), str(samples / "dense_scene.txt")]


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
