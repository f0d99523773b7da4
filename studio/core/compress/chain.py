"""`studio compress --recipe`: prune -> distill -> QAT -> export -> verify as one resumable run, one report.

Every stage is a `Stage`: it writes into its own folder under --out and writes its report
there last; a run started again with --resume skips the stages whose report is there and
resumes the one it was in (through that stage's own resume, when its checkpoint is
there). Stages hand each other their reports, read back from disk for a finished stage,
so a resumed run and a fresh one take the same path. The report puts the float model, post-training int8 (one row per
calibration algorithm) and the QAT int8 model side by side: mAP on the val split (the
RKNN rows measured in rknn-toolkit2's simulator), file size, the share of convolutions
the toolkit compiled to int8, its static cycle estimate, and host ONNX Runtime latency
where a host model exists. Latencies are labelled for what they are: nothing here ran
on a board.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deploy.runtime.atomic import write_json_atomic
from deploy.runtime.output import claim_run
from studio.core.compress.kd_config import KD_TERMS, KdConfig
from studio.core.compress.options import KD_WEIGHTS, QAT_TERMS, SEED, terms
from studio.core.compress.recipe import Recipe
from studio.core.convergence import convergence
from studio.core.jobs import Job

REPORT_IMAGES = 8  # images the exporter compares ONNX Runtime and the simulator on


@dataclass(frozen=True)
class Stage:
    """One step of the chain, all alike: a folder under --out, the report it writes last (with it the stage
    is done and never runs again), the file that makes a started stage resume rather than start (None: any
    file in its folder), and `run(recipe, folder, reports so far, resume, job)` returning its report."""

    name: str
    folder: str
    report: str
    checkpoint: str | None
    run: Callable[[Recipe, Path, dict, bool, Job], dict]

    def done(self, out: Path) -> bool:
        return (out / self.folder / self.report).is_file()

    def started(self, out: Path) -> bool:
        folder = out / self.folder
        if self.checkpoint:
            return (folder / self.checkpoint).is_file()
        return folder.is_dir() and any(folder.iterdir())


def _kd(options: dict, default_terms: str) -> KdConfig:
    """The distillation settings of a distill or qat section (taken out of `options`)."""
    kd = options.pop("kd", default_terms)
    weights = {field: options.pop(key) for key, field in KD_WEIGHTS.items() if key in options}
    return KdConfig(terms=terms(kd), temperature=options.pop("temperature", KdConfig.temperature), **weights)


def _float_model(recipe: Recipe, reports: dict) -> Path:
    """The float model so far: the last training stage's, or the recipe's own."""
    made = [reports[name]["model"] for name in ("distill", "prune", "finetune") if name in reports]
    return Path(made[0]) if made else recipe.model


def _teacher(recipe: Recipe, reports: dict) -> Path | None:
    """The teacher: the one trained by the teacher stage, or the recipe's own."""
    return Path(reports["teacher"]["model"]) if "teacher" in reports else recipe.teacher


def _fit(model: Path, recipe: Recipe, folder: Path, resume: bool, job: Job) -> dict:
    """Train `model` (remade for the data's classes where they differ) on the data, without a teacher."""
    from studio.core.compress.distill import DistillRequest, distill

    return distill(DistillRequest(teacher=None, student=str(model), data=recipe.data, out=folder,
                                  kd=KdConfig(terms=()), imgsz=recipe.imgsz, resume=resume, force=not resume,
                                  **recipe.finetune), job).to_dict()


def _finetune(recipe: Recipe, folder: Path, reports: dict, resume: bool, job: Job) -> dict:
    return _fit(recipe.model, recipe, folder, resume, job)


def _train_teacher(recipe: Recipe, folder: Path, reports: dict, resume: bool, job: Job) -> dict:
    return _fit(recipe.teacher, recipe, folder, resume, job)


def _prune(recipe: Recipe, folder: Path, reports: dict, resume: bool, job: Job) -> dict:
    from studio.core.compress.prune import PruneRequest, prune

    options = dict(recipe.prune)
    kd = options.pop("kd", KD_TERMS)
    return prune(PruneRequest(model=_float_model(recipe, reports), out=folder, data=recipe.data,
                              teacher=_teacher(recipe, reports), imgsz=recipe.imgsz, kd=tuple(kd), resume=resume,
                              force=not resume, **options), job).to_dict()


def _distill(recipe: Recipe, folder: Path, reports: dict, resume: bool, job: Job) -> dict:
    from studio.core.compress.distill import DistillRequest, distill

    options = dict(recipe.distill)
    kd = _kd(options, ",".join(KD_TERMS))
    teacher = _teacher(recipe, reports) if kd.terms else None  # kd none: a fine-tune that names no teacher
    return distill(DistillRequest(teacher=teacher, student=str(_float_model(recipe, reports)),
                                  data=recipe.data, out=folder, kd=kd, imgsz=recipe.imgsz, resume=resume,
                                  force=not resume, **options), job).to_dict()


def _qat(recipe: Recipe, folder: Path, reports: dict, resume: bool, job: Job) -> dict:
    from studio.core.compress.qat import QatRequest, qat

    options = dict(recipe.qat)
    kd = _kd(options, ",".join(QAT_TERMS))
    bits = options.pop("bits", [8])
    return qat(QatRequest(model=_float_model(recipe, reports), data=recipe.data, out=folder, kd=kd,
                          imgsz=recipe.imgsz, bits=tuple(bits), resume=resume, force=not resume, **options),
               job).to_dict()


def _export(recipe: Recipe, folder: Path, reports: dict, resume: bool, job: Job) -> dict:
    """The float ONNX and every RKNN variant; an existing file (with its sidecar) is a finished export."""
    from deploy.convert.rknn_convert import RknnOptions
    from deploy.runtime.metadata import sidecar_path
    from studio.core.data.formats import read_yaml, split_dirs
    from studio.core.export import ExportRequest, export_model

    calib = split_dirs(read_yaml(recipe.data), recipe.data).get("train")
    platform, count, float_model = recipe.export["platform"], int(recipe.export["calib_count"]), _float_model(
        recipe, reports)
    plan = [(name, ExportRequest(model=str(model), format="onnx", imgsz=recipe.imgsz, out=folder / f"{name}.onnx"))
            for name, model in _float_rows(recipe, float_model)]
    for algorithm in recipe.export["ptq"]:
        plan.append((f"ptq-{algorithm}", ExportRequest(
            model=str(float_model), format="rknn", imgsz=recipe.imgsz, out=folder / f"ptq-{algorithm}.rknn",
            rknn=RknnOptions(platform, "int8", algorithm), calib=calib, calib_count=count, report=True,
            report_count=REPORT_IMAGES)))
    if "qat" in reports:
        plan.append(("qat", ExportRequest(model=reports["qat"]["model"], format="rknn", imgsz=recipe.imgsz,
                                          out=folder / "qat.rknn", rknn=RknnOptions(platform, "qdq"), calib=calib,
                                          calib_count=REPORT_IMAGES, report=True, report_count=REPORT_IMAGES)))
    variants = []
    for name, req in plan:
        if not (Path(req.out).is_file() and sidecar_path(Path(req.out)).is_file()):
            job.stage(f"export {name}")
            export_model(req, job)
        ptq = req.format == "rknn" and req.rknn.quant == "int8"
        variants.append({"variant": name, "path": str(req.out), "format": req.format,
                         "quant": "float32" if req.format == "onnx" else req.rknn.quant,
                         "algorithm": req.rknn.algorithm if ptq else None,
                         **({"source": req.model} if req.format == "onnx" else {})})
    return {"model": str(float_model), "variants": variants}


def _float_rows(recipe: Recipe, float_model: Path) -> list[tuple[str, Path]]:
    """The float variants: the recipe's model as it came in (when verify asks for it and the chain changed it),
    then the float model the int8 variants are made from."""
    rows = [("float", Path(float_model))]
    if recipe.verify.get("original") and Path(float_model) != Path(recipe.model):
        rows.insert(0, ("original", Path(recipe.model)))
    return rows


def _verify(recipe: Recipe, folder: Path, reports: dict, resume: bool, job: Job) -> dict:
    """mAP of each variant (torch for float, the simulator for RKNN), with size, int8 share and latency figures."""
    from deploy.convert import rknn_log
    from studio.core.evaluate import EvalRequest, evaluate
    from studio.core.models import inspect_model

    folder.mkdir(parents=True, exist_ok=True)
    limit, split = recipe.verify.get("limit"), recipe.verify["split"]
    float_model = Path(reports["export"]["model"])
    rows = []
    for variant in reports["export"]["variants"]:
        done = folder / f"{variant['variant']}.json"
        if not done.is_file():
            job.stage(f"verify {variant['variant']}")
            path = Path(variant["path"])
            if variant["format"] == "onnx":
                result = evaluate(EvalRequest(model=Path(variant.get("source", float_model)), data=recipe.data,
                                              imgsz=recipe.imgsz, limit=limit, split=split))
                ort_ms, build = _ort_ms(path), None
            else:
                result = evaluate(EvalRequest(model=path, data=recipe.data, backend="rknn-sim", limit=limit,
                                              split=split))
                ort_ms = _ort_ms(path.with_suffix(".onnx")) if variant["quant"] == "qdq" else None
                build = rknn_log.summary(path.with_suffix(".rknn.log"))
            row = {**variant, "map50_95": result.map50_95, "map50": result.map50, "metric": result.settings["metric"],
                   "small": result.per_size.get("small"), "images": result.images, "split": split,
                   "bytes": path.stat().st_size, "gflops": inspect_model(str(path)).gflops, "host_ort_ms": ort_ms,
                   "npu_build": build}
            if variant["format"] == "rknn":
                row["min_cosine"] = _report_cosine(path)
            write_json_atomic(done, row)
        rows.append(json.loads(done.read_text()))
    return {"rows": rows}


def _bundle(recipe: Recipe, folder: Path, reports: dict, resume: bool, job: Job) -> dict:
    """The deploy bundle of the variant to deploy: the most accurate int8 one."""
    from studio.core.bundle import manifest, suggested, variant_files, write_bundle

    rows = reports["verify"]["rows"]
    row = next(r for r in rows if r["variant"] == suggested(rows))
    run = {"platform": recipe.export["platform"], "imgsz": recipe.imgsz, "data": str(recipe.data),
           "recipe": str(recipe.path)}
    write_bundle(run, row, folder)
    return manifest(run, row, variant_files(row))


STAGES = (Stage("finetune", "finetune", "distill_report.json", "state.pt", _finetune),
          Stage("teacher", "teacher", "distill_report.json", "state.pt", _train_teacher),
          Stage("prune", "prune", "prune_report.json", "progress.json", _prune),
          Stage("distill", "distill", "distill_report.json", "state.pt", _distill),
          Stage("qat", "qat", "qat_report.json", None, _qat),
          Stage("export", "exports", "export_report.json", None, _export),
          Stage("verify", "verify", "verify_report.json", None, _verify),
          Stage("bundle", "bundle", "bundle.json", None, _bundle))
TRAINING = ("finetune", "teacher", "prune", "distill", "qat")  # under torchrun every rank trains; rank 0
# alone exports and verifies


def _widths(qat_report: dict) -> list[dict]:
    """Each bit width's mAP50-95 as it started (calibrated at that width) and as its training left it."""
    starts = [qat_report["calibrated_map50_95"]] + [s.get("calibrated_map50_95") for s in qat_report["stages"][1:]]
    return [{"bits": s["bits"], "calibrated": start, "trained": s["map50_95"]}
            for s, start in zip(qat_report["stages"], starts)]


def _report_cosine(rknn: Path) -> float | None:
    report = rknn.with_suffix(".report.json")
    return json.loads(report.read_text()).get("min_cosine_active") if report.is_file() else None


def _ort_ms(onnx_path: Path) -> float | None:
    """Median host ONNX Runtime ms per image (CPU, batch 1) of an ONNX file, or None without one."""
    if not onnx_path.is_file():
        return None
    import numpy as np
    import onnxruntime as ort

    from studio.core.compress.report import LATENCY_RUNS, median_ms

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    feed = {inp.name: np.random.default_rng(0).random(inp.shape, dtype=np.float32)}
    return median_ms(lambda: session.run(None, feed), LATENCY_RUNS)


def _run_stage(stage: Stage, recipe: Recipe, out: Path, reports: dict, job: Job) -> dict:
    """A stage's report: read back when it is done, else from running (resuming) it; rank 0 writes it."""
    from studio.core.compress import distributed

    path = out / stage.folder / stage.report
    if not stage.done(out):
        report = stage.run(recipe, out / stage.folder, reports, stage.started(out), job)
        if stage.name not in TRAINING:  # the training stages write their own, as their commands do
            write_json_atomic(path, report)
    if stage.name in TRAINING:  # every rank trains, then reads what rank 0 wrote; rank 0 alone goes on
        distributed.barrier(distributed.context())
    return json.loads(path.read_text())


def run_recipe(recipe: Recipe, out: Path, resume: bool = False, job: Job | None = None, force: bool = False) -> dict:
    """Run every stage of the recipe into `out` (resuming what is there) and write compress_report.*.

    Each stage's events carry its name as their `part`; its first event announces it ("1 of 5")."""
    from studio.core.compress import distributed
    from studio.core.compress.int8_report import write_int8_report

    job = job or Job()
    started = time.monotonic()
    out = Path(out)
    ctx = distributed.context()  # under torchrun: every rank trains, rank 0 alone exports and verifies
    claim_run(out, resume, force, "compress run", remove=ctx.main)
    distributed.barrier(ctx)
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
    plan = [stage for stage in STAGES if stage.name in recipe.stages()]
    reports: dict[str, dict] = {}
    for number, stage in enumerate(plan, start=1):
        if not ctx.main and stage.name not in TRAINING:
            return {}
        part = job.within(stage.name)
        part.stage(stage.name, None, f"({number} of {len(plan)})")
        reports[stage.name] = _run_stage(stage, recipe, out, reports, part)
    qat_report = reports.get("qat")
    rows = reports["verify"]["rows"]
    report = {"recipe": str(recipe.path), "stages": [stage.name for stage in plan],
              "float_model": reports["export"]["model"], "qat_model": qat_report["model"] if qat_report else None,
              "imgsz": recipe.imgsz, "data": str(recipe.data), "platform": recipe.export["platform"],
              "seeds": {name: getattr(recipe, name).get("seed", SEED.default) for name in ("distill", "qat")
                        if getattr(recipe, name) is not None},
              "val_images": rows[0]["images"], "rows": rows, "bundle": str(out / "bundle"),
              "qat": {**{k: qat_report[k] for k in ("float_map50_95", "calibrated_map50_95", "map50_95", "bits")},
                      "widths": _widths(qat_report)} if qat_report else None,
              "training_seconds": {name: reports[name]["seconds"] for name in TRAINING if name in reports},
              "convergence": {name: convergence([h["map50_95"] for h in reports[name]["history"]])
                              for name in TRAINING if reports.get(name, {}).get("history")},
              "seconds_this_run": round(time.monotonic() - started, 1)}
    write_int8_report(report, out)
    return report
