"""The main job on bundled defaults: a trained student -> ONNX + RKNN int8 + report -> tiled scene.

With the bundled student (assets/models/student.pt) the demo only generates a little
calibration data. Without it (a checkout before `make assets`), it first trains a small
model briefly, because an untrained model's class scores quantize to zero in int8 and
its report would mean nothing; that run is reused by the next demo.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from deploy.convert.rknn_convert import RknnOptions
from studio.core.data.synth import SynthConfig, generate
from studio.core.export import ExportRequest, export_model
from studio.core.jobs import Job
from studio.core.train import TrainRequest, TrainResult, train

ASSETS = Path(__file__).resolve().parents[2] / "assets"
BUNDLED_STUDENT = ASSETS / "models" / "student.pt"
SAMPLE_SCENE = ASSETS / "samples" / "scene_000.jpg"
DATA_VERSION = 3  # bump when the synthetic generator changes, so a trained fallback is not reused


@dataclass
class DemoRequest:
    """Sizes chosen so the whole demo takes minutes on 2 CPU cores."""

    out: Path = Path("out/demo")
    model: Path | None = None  # default: the bundled student, else a briefly trained one
    images: int = 300  # synthetic images (calibration, and training for the fallback)
    imgsz: int = 320  # training and export size
    epochs: int = 12  # fallback training only
    platform: str = "rk3588"
    seed: int = 0
    fresh: bool = False  # retrain the fallback even if a finished run exists


@dataclass
class DemoResult:
    data: str
    model: dict
    export: dict
    scene: dict | None

    def to_dict(self) -> dict:
        return asdict(self)


def _fallback_model(req: DemoRequest, data_yaml: Path, job: Job) -> dict:
    """Train briefly, resume an interrupted run, or reuse a finished one recorded in train.json."""
    record = req.out / "train.json"
    settings = {"images": req.images, "imgsz": req.imgsz, "epochs": req.epochs, "seed": req.seed,
                "data_version": DATA_VERSION}
    if record.is_file() and not req.fresh:
        saved = json.loads(record.read_text())
        if saved.get("settings") == settings and Path(saved["result"]["best"]).is_file():
            job.stage("train", None, "(reusing the finished run)")
            return saved["result"]
    last = req.out / "runs" / "student" / "weights" / "last.pt"
    result: TrainResult = train(TrainRequest(
        model="yolov8n.yaml", data=data_yaml, epochs=req.epochs, imgsz=req.imgsz, project=req.out / "runs",
        name="student", seed=req.seed, resume=last.is_file() and not req.fresh and not record.is_file()), job)
    record.write_text(json.dumps({"settings": settings, "result": result.to_dict()}, indent=2))
    return result.to_dict()


def _bundled_model(path: Path) -> dict:
    info = json.loads(path.with_suffix(".json").read_text())
    return {"best": str(path), "map50_95": info["evaluation"]["val"]["map50_95"],
            "map50": info["evaluation"]["val"]["map50"], "imgsz": info["imgsz"], "bundled": True}


def run_demo(req: DemoRequest, job: Job | None = None) -> DemoResult:
    """Run the whole demo; every artifact lands under req.out."""
    from studio.core.predict import PredictRequest, predict

    job = job or Job()
    req.out.mkdir(parents=True, exist_ok=True)
    model_path = req.model or (BUNDLED_STUDENT if BUNDLED_STUDENT.is_file() else None)
    job.stage("synthetic data", req.images)
    data_yaml = generate(SynthConfig(req.out / "data", images=req.images, size=req.imgsz, seed=req.seed),
                         job.stepper("synthetic data"))
    if model_path is None:
        model = _fallback_model(req, data_yaml, job)
    elif model_path.with_suffix(".json").is_file():
        model = _bundled_model(model_path)
    else:
        model = {"best": str(model_path)}
    exported = export_model(ExportRequest(
        model=model["best"], format="rknn", imgsz=req.imgsz, out=req.out / "exports" / "student.rknn",
        rknn=RknnOptions(platform=req.platform, quant="int8"), calib=req.out / "data" / "images" / "train",
        calib_count=64, report=True, report_count=8, force=True), job)
    scene = None
    if SAMPLE_SCENE.is_file():
        summary = predict(PredictRequest(model=Path(exported.onnx), source=str(SAMPLE_SCENE), tile=req.imgsz,
                                         overlap=0.2, workers=2, save=req.out / "scene"), job=job)
        scene = summary.to_dict()
    return DemoResult(data=str(data_yaml), model=model, export=exported.to_dict(), scene=scene)
