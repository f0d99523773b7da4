"""`studio compress --recipe`: prune -> distill -> QAT -> export -> verify as one resumable run, one report.

Every stage writes into its own folder under --out and leaves a file that says it is
done (the stage's own report, an export's sidecar, a verification JSON); a run started
again with --resume skips what is done and continues the stage it was in, through that
stage's own resume. The report puts the float model, post-training int8 (one row per
calibration algorithm) and the QAT int8 model side by side: mAP on the val split (the
RKNN rows measured in rknn-toolkit2's simulator), file size, the share of convolutions
the toolkit compiled to int8, its static cycle estimate, and host ONNX Runtime latency
where a host model exists. Latencies are labelled for what they are: nothing here ran
on a board.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from deploy.errors import UserError
from deploy.runtime.atomic import write_json_atomic
from studio.core.compress.kd_config import KdConfig, parse_terms
from studio.core.compress.options import KD_WEIGHTS, QAT_TERMS
from studio.core.compress.recipe import Recipe
from studio.core.jobs import Job

REPORT_IMAGES = 8  # images the exporter compares ONNX Runtime and the simulator on
CHAIN = "chain"  # the progress stage name that announces each stage of the chain


def _kd(options: dict, default_terms: str) -> KdConfig:
    """The distillation settings of a distill or qat section (taken out of `options`)."""
    kd = options.pop("kd", default_terms)
    terms = parse_terms(kd) if isinstance(kd, str) else tuple(kd)
    weights = {field: options.pop(key) for key, field in KD_WEIGHTS.items() if key in options}
    return KdConfig(terms=terms, temperature=options.pop("temperature", KdConfig.temperature), **weights)


def _written() -> None:
    """Under torchrun, wait until rank 0 has written the stage's report before reading it."""
    from studio.core.compress import distributed

    distributed.barrier(distributed.context())


def _prune(recipe: Recipe, out: Path, model: Path, job: Job) -> tuple[Path, float]:
    from studio.core.compress.prune import PruneRequest, prune

    report = out / "prune_report.json"
    if not report.is_file():
        options = dict(recipe.prune)
        kd = options.pop("kd", "response,feature,relation")
        prune(PruneRequest(model=model, out=out, data=recipe.data, teacher=recipe.teacher, imgsz=recipe.imgsz,
                           kd=parse_terms(kd) if isinstance(kd, str) else tuple(kd),
                           resume=(out / "progress.json").is_file(), **options), job)
    _written()
    done = json.loads(report.read_text())
    return Path(done["model"]), done["seconds"]


def _distill(recipe: Recipe, out: Path, model: Path, job: Job) -> tuple[Path, float]:
    from studio.core.compress.distill import DistillRequest, distill

    report = out / "distill_report.json"
    if not report.is_file():
        options = dict(recipe.distill)
        kd = _kd(options, "response,feature,relation")
        distill(DistillRequest(teacher=recipe.teacher, student=str(model), data=recipe.data, out=out, kd=kd,
                               imgsz=recipe.imgsz, resume=(out / "state.pt").is_file(), **options), job)
    _written()
    done = json.loads(report.read_text())
    return Path(done["model"]), done["seconds"]


def _qat(recipe: Recipe, out: Path, model: Path, job: Job) -> tuple[Path, dict]:
    from studio.core.compress.qat import QatRequest, qat

    report = out / "qat_report.json"
    if not report.is_file():
        options = dict(recipe.qat)
        kd = _kd(options, ",".join(QAT_TERMS))
        bits = options.pop("bits", [8])
        teacher = options.pop("teacher", None)
        qat(QatRequest(model=model, data=recipe.data, out=out, teacher=teacher, kd=kd, imgsz=recipe.imgsz,
                       bits=tuple(bits) if isinstance(bits, (list, tuple)) else (int(bits),),
                       resume=out.is_dir(), **options), job)
    _written()
    done = json.loads(report.read_text())
    return Path(done["model"]), done


def _export(recipe: Recipe, out: Path, float_model: Path, qat_model: Path | None, job: Job) -> list[dict]:
    """The float ONNX and every RKNN variant; an existing file (with its sidecar) is a finished export."""
    from deploy.convert.rknn_convert import RknnOptions
    from deploy.runtime.metadata import sidecar_path
    from studio.core.data.formats import read_yaml, split_dirs
    from studio.core.export import ExportRequest, export_model

    calib = split_dirs(read_yaml(recipe.data), recipe.data).get("train")
    platform, count = recipe.export["platform"], int(recipe.export["calib_count"])
    plan = [("float", ExportRequest(model=str(float_model), format="onnx", imgsz=recipe.imgsz,
                                    out=out / "float.onnx"))]
    for algorithm in recipe.export["ptq"]:
        plan.append((f"ptq-{algorithm}", ExportRequest(
            model=str(float_model), format="rknn", imgsz=recipe.imgsz, out=out / f"ptq-{algorithm}.rknn",
            rknn=RknnOptions(platform, "int8", algorithm), calib=calib, calib_count=count, report=True,
            report_count=REPORT_IMAGES)))
    if qat_model is not None:
        plan.append(("qat", ExportRequest(model=str(qat_model), format="rknn", imgsz=recipe.imgsz,
                                          out=out / "qat.rknn", rknn=RknnOptions(platform, "qdq"), calib=calib,
                                          calib_count=REPORT_IMAGES, report=True, report_count=REPORT_IMAGES)))
    variants = []
    for name, req in plan:
        if not (Path(req.out).is_file() and sidecar_path(Path(req.out)).is_file()):
            job.stage(f"export {name}")
            export_model(req, job)
        ptq = req.format == "rknn" and req.rknn.quant == "int8"
        variants.append({"variant": name, "path": str(req.out), "format": req.format,
                         "quant": "float32" if req.format == "onnx" else req.rknn.quant,
                         "algorithm": req.rknn.algorithm if ptq else None})
    return variants


def _verify(recipe: Recipe, out: Path, variants: list[dict], float_model: Path, job: Job) -> list[dict]:
    """mAP of each variant (torch for float, the simulator for RKNN), with size, int8 share and latency figures."""
    from deploy.convert import rknn_log
    from studio.core.evaluate import EvalRequest, evaluate

    out.mkdir(parents=True, exist_ok=True)
    limit = recipe.verify.get("limit")
    rows = []
    for variant in variants:
        done = out / f"{variant['variant']}.json"
        if not done.is_file():
            job.stage(f"verify {variant['variant']}")
            path = Path(variant["path"])
            if variant["format"] == "onnx":
                result = evaluate(EvalRequest(model=float_model, data=recipe.data, imgsz=recipe.imgsz, limit=limit))
                ort_ms, build = _ort_ms(path), None
            else:
                result = evaluate(EvalRequest(model=path, data=recipe.data, backend="rknn-sim", limit=limit))
                ort_ms = _ort_ms(path.with_suffix(".onnx")) if variant["quant"] == "qdq" else None
                build = rknn_log.summary(path.with_suffix(".rknn.log"))
            row = {**variant, "map50_95": result.map50_95, "map50": result.map50,
                   "small": result.per_size.get("small"), "images": result.images,
                   "bytes": path.stat().st_size, "host_ort_ms": ort_ms, "npu_build": build}
            if variant["format"] == "rknn":
                row["min_cosine"] = _report_cosine(path)
            write_json_atomic(done, row)
        rows.append(json.loads(done.read_text()))
    return rows


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


def run_recipe(recipe: Recipe, out: Path, resume: bool = False, job: Job | None = None) -> dict:
    """Run every stage of the recipe into `out` (resuming what is there) and write compress_report.*."""
    from studio.core.compress import distributed
    from studio.core.compress.int8_report import write_int8_report

    job = job or Job()
    started = time.monotonic()
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not resume:
        raise UserError(f"{out} already holds a compress run; add --resume to continue it, or choose another --out")
    ctx = distributed.context()  # under torchrun: every rank trains, rank 0 alone exports and verifies
    distributed.barrier(ctx)
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
    plan = recipe.stages()

    def begin(stage: str) -> None:  # "chain <stage>" announces each stage; the wizard shows one bar per stage
        job.stage(f"{CHAIN} {stage}", None, f"({plan.index(stage) + 1} of {len(plan)})")

    model, seconds = recipe.model, {}
    if recipe.prune is not None:
        begin("prune")
        model, seconds["prune"] = _prune(recipe, out / "prune", model, job)
    if recipe.distill is not None:
        begin("distill")
        model, seconds["distill"] = _distill(recipe, out / "distill", model, job)
    qat_model, qat_report = None, None
    if recipe.qat is not None:
        begin("qat")
        qat_model, qat_report = _qat(recipe, out / "qat", model, job)
        seconds["qat"] = qat_report["seconds"]
    if not ctx.main:
        return {}
    begin("export")
    variants = _export(recipe, out / "exports", model, qat_model, job)
    begin("verify")
    rows = _verify(recipe, out / "verify", variants, model, job)
    report = {"recipe": str(recipe.path), "stages": plan, "float_model": str(model),
              "qat_model": str(qat_model) if qat_model else None, "imgsz": recipe.imgsz, "data": str(recipe.data),
              "platform": recipe.export["platform"], "val_images": rows[0]["images"], "rows": rows,
              "qat": {k: qat_report[k] for k in ("float_map50_95", "calibrated_map50_95", "map50_95", "bits")}
              if qat_report else None,
              "training_seconds": seconds, "seconds_this_run": round(time.monotonic() - started, 1)}
    write_int8_report(report, out)
    job.stage(f"{CHAIN} done")
    return report

