"""The main job on bundled defaults: synthetic data -> brief training -> ONNX + RKNN int8 + report.

Until trained demo models are bundled in assets/, the demo trains its own small model
(an untrained model's class scores quantize to zero in int8, so its report would mean
nothing). A finished training run is reused on the next `make demo`; an interrupted one
resumes from its last checkpoint.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from deploy.convert.rknn_convert import RknnOptions
from studio.core.data.synth import SynthConfig, generate
from studio.core.export import ExportRequest, ExportResult, export_model
from studio.core.jobs import Job
from studio.core.train import TrainRequest, TrainResult, train


@dataclass
class DemoRequest:
    """Sizes chosen so the whole demo takes a few minutes on 2 CPU cores."""

    out: Path = Path("out/demo")
    images: int = 300  # synthetic images (80% train, 20% val)
    imgsz: int = 320  # training and export size
    epochs: int = 12  # reaches mAP50-95 ~0.35-0.4 on this data
    model: str = "yolov8n.yaml"
    platform: str = "rk3588"
    seed: int = 0
    fresh: bool = False  # retrain even if a finished run exists


@dataclass
class DemoResult:
    data: str
    training: dict
    export: dict

    def to_dict(self) -> dict:
        return asdict(self)


def _train_once(req: DemoRequest, data_yaml: Path, job: Job) -> TrainResult:
    """Train, resume an interrupted run, or reuse a finished one recorded in train.json."""
    record = req.out / "train.json"
    settings = {"images": req.images, "imgsz": req.imgsz, "epochs": req.epochs, "model": req.model, "seed": req.seed}
    if record.is_file() and not req.fresh:
        saved = json.loads(record.read_text())
        if saved.get("settings") == settings and Path(saved["result"]["best"]).is_file():
            job.stage("train", None, "(reusing the finished run)")
            return TrainResult(**saved["result"])
    last = req.out / "runs" / "student" / "weights" / "last.pt"
    train_req = TrainRequest(model=req.model, data=data_yaml, epochs=req.epochs, imgsz=req.imgsz,
                             project=req.out / "runs", name="student", seed=req.seed,
                             resume=last.is_file() and not req.fresh and not record.is_file())
    result = train(train_req, job)
    record.write_text(json.dumps({"settings": settings, "result": result.to_dict()}, indent=2))
    return result


def run_demo(req: DemoRequest, job: Job | None = None) -> DemoResult:
    """Run the whole demo; every artifact lands under req.out."""
    job = job or Job()
    req.out.mkdir(parents=True, exist_ok=True)
    job.stage("synthetic data", req.images)
    data_yaml = generate(SynthConfig(req.out / "data", images=req.images, size=req.imgsz, seed=req.seed),
                         job.stepper("synthetic data"))
    trained = _train_once(req, data_yaml, job)
    exported: ExportResult = export_model(
        ExportRequest(
            model=trained.best, format="rknn", imgsz=req.imgsz, out=req.out / "exports" / "student.rknn",
            rknn=RknnOptions(platform=req.platform, quant="int8"), calib=req.out / "data" / "images" / "train",
            calib_count=64, report=True, report_count=8, force=True,
        ),
        job,
    )
    return DemoResult(data=str(data_yaml), training=trained.to_dict(), export=exported.to_dict())
