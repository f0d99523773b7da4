"""Export a detector: torch -> ONNX (rknn-split or standard) -> RKNN, with sidecars and a report.

`studio export` and the GUI's export page both call `export_model`. Every check that can
fail on bad input runs before the slow work starts; every file is staged and renamed
into place only when the whole export succeeded.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deploy.convert import onnx_graph
from deploy.convert.calibration import list_images, prepare_calibration
from deploy.convert.rknn_convert import RknnOptions, build_rknn
from deploy.convert.verify import compare_outputs, mark_below_resolution, write_report
from deploy.errors import UserError
from deploy.runtime.digest import sha256_of
from deploy.runtime.metadata import (
    CLASS_SCORES,
    LAYOUTS,
    BuildOptions,
    ModelMeta,
    OutputQuant,
    sidecar_path,
    write_json_atomic,
)
from deploy.runtime.output import clear_dead, writing
from studio.core.artifacts import Staging, ensure_writable_dir, refuse_overwrite
from studio.core.int8_doctor import DOCTOR_IMAGES, doctor_paths, write_doctor
from studio.core.jobs import Job
from studio.core.models import class_names, load_detector, resolve_model_path
from studio.core.provenance import provenance

FORMATS = ("onnx", "rknn")
RKNN_WORK_PREFIX = "studio-rknn-"  # + the pid: a killed build's work folder is found and removed next time


@dataclass
class ExportRequest:
    """Everything `studio export` takes; defaults are the RK3588 int8 path."""

    model: str  # .pt checkpoint, .yaml architecture, or .onnx (for --format rknn)
    format: str = "onnx"  # onnx | rknn
    layout: str = "rknn-split"  # rknn-split | standard
    class_scores: str = "logits"  # rknn-split class outputs: logits (int8 keeps low scores) | sigmoid
    imgsz: int = 512  # square input size, a multiple of 32
    out: Path | None = None  # the .onnx or .rknn to write; default exports/<model stem>.<format>
    rknn: RknnOptions = field(default_factory=RknnOptions)
    calib: Path | None = None  # folder of calibration images (int8, and the report)
    calib_count: int = 100  # how many calibration images to use (0: all)
    report: bool = False  # compare ONNX Runtime and the simulator on report_count images
    report_count: int = 8
    force: bool = False  # replace existing outputs
    verbose: bool = False  # show rknn-toolkit2's log live
    doctor: bool = False  # int8: per-layer accuracy analysis and a hybrid build with the worst layers in float16
    doctor_layers: int = 3  # how many layers the hybrid build keeps in float16


@dataclass
class ExportResult:
    """What was written; the keys of `studio export --json`."""

    onnx: str | None
    rknn: str | None
    metadata: str
    report: str | None
    min_cosine: float | None
    seconds: float
    min_cosine_active: float | None = None  # over outputs not flagged as below one int8 step
    detection_agreement: float | None = None  # float vs converted detections after post-processing
    log: str | None = None
    hybrid: str | None = None  # --doctor: the hybrid-quantized .rknn
    doctor: str | None = None  # --doctor: its report (layers that lose most; int8 vs hybrid)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Source:
    """The model to export, once loaded: a torch model, or an existing ONNX file."""

    path: Path
    torch_model: object | None = None
    onnx_layout: str | None = None
    onnx_qdq: bool = False  # carries its own int8 grids: QDQ nodes, or a fake-quantized (QAT) torch model
    names: list[str] = field(default_factory=list)
    imgsz: int = 0
    strides: list[int] = field(default_factory=list)
    reg_max: int = 16
    class_scores: str = "sigmoid"
    task: str = "detect"  # detect | obb (oriented boxes)


def _validate(req: ExportRequest) -> None:
    if req.format not in FORMATS:
        raise UserError(f"--format {req.format!r} is not supported; choose one of: {', '.join(FORMATS)}")
    if req.layout not in LAYOUTS:
        raise UserError(f"--layout {req.layout!r} is not supported; choose one of: {', '.join(LAYOUTS)}")
    if req.class_scores not in CLASS_SCORES:
        raise UserError(f"--scores {req.class_scores!r} is not supported; choose one of: {', '.join(CLASS_SCORES)}")
    if req.imgsz <= 0 or req.imgsz % 32:
        raise UserError(f"--imgsz {req.imgsz} must be a positive multiple of 32 (the largest detection stride)")
    if req.doctor and (req.format != "rknn" or req.rknn.quant != "int8"):
        raise UserError("--doctor analyses post-training int8: use it with --format rknn --quant int8")
    if req.doctor and req.doctor_layers < 1:
        raise UserError(f"--doctor-layers must be at least 1, got {req.doctor_layers}")
    if req.format == "rknn":
        req.rknn.validate()
        if req.layout == "standard":
            raise UserError(
                "the standard layout does not build in rknn-toolkit2 for Rockchip NPUs (its fused decode "
                "breaks the converter); try: studio export MODEL --format rknn --layout rknn-split"
            )


def _load_source(req: ExportRequest) -> _Source:
    path = resolve_model_path(req.model)
    if path.suffix.lower() == ".onnx":
        if req.format == "onnx":
            raise UserError(f"{path} is already ONNX; to convert it use --format rknn")
        model = onnx_graph.load_onnx(path)
        shapes = onnx_graph.tensor_shapes(model.graph.output)
        layout, nc, _ = onnx_graph.detector_layout(shapes)
        if layout != "rknn-split":
            raise UserError(f"{path} has the standard layout, which rknn-toolkit2 cannot build; re-export it "
                            f"with: studio export MODEL.pt --format onnx --layout rknn-split")
        inputs = onnx_graph.tensor_shapes(model.graph.input)
        imgsz = next(iter(inputs.values()))[-1]
        task = onnx_graph.output_task(shapes)
        boxes = list(shapes.values())[:: 3 if task == "obb" else 2]  # (1, 4*reg_max, h, w) per scale
        return _Source(path, onnx_layout=layout, onnx_qdq=onnx_graph.has_qdq(model), imgsz=imgsz,
                       names=_onnx_names(path, model, nc), strides=[imgsz // b[2] for b in boxes],
                       reg_max=boxes[0][1] // 4, class_scores=onnx_graph.class_scores_kind(model), task=task)
    from deploy.convert.onnx_export import head_task
    from studio.core.compress.fakequant import EXPORT_BITS, is_quantized, model_bits

    model, path = load_detector(req.model)
    head = model.model[-1]
    qat = is_quantized(model)
    if qat and model_bits(model) != EXPORT_BITS:
        raise UserError(f"{path} was trained at {model_bits(model)} bits; only int8 ({EXPORT_BITS} bits) "
                        f"exports: finish its bit-width schedule at 8")
    return _Source(path, torch_model=model, onnx_qdq=qat, names=class_names(model), imgsz=req.imgsz,
                   strides=[int(s) for s in head.stride.tolist()], reg_max=int(head.reg_max),
                   class_scores=req.class_scores if req.layout == "rknn-split" else "sigmoid", task=head_task(head))


def _onnx_names(path: Path, model, nc: int) -> list[str]:
    """Class names of an ONNX source: its sidecar if present, else its metadata_props."""
    side = sidecar_path(path)
    if side.is_file():
        names = json.loads(side.read_text()).get("names", [])
        if len(names) == nc:
            return names
    return onnx_graph.class_names(model, nc)


def _check_quant_matches(req: ExportRequest, src: _Source) -> None:
    if req.format != "rknn":
        return
    if req.rknn.quant == "qdq" and not src.onnx_qdq:
        raise UserError(f"{src.path} holds no int8 grids of its own (QDQ nodes, or a `studio qat` checkpoint), so "
                        f"--quant qdq has no scales to keep; use --quant int8 --calib DIR for post-training "
                        f"quantization")
    if req.rknn.quant != "qdq" and src.onnx_qdq:
        kind = "was trained for int8 (quantization-aware)" if src.torch_model is not None else "already holds QDQ nodes"
        raise UserError(f"{src.path} {kind}; convert it with --quant qdq to keep its scales")


def _plan_paths(req: ExportRequest, src: _Source) -> dict[str, Path]:
    out = Path(req.out) if req.out else Path("exports") / f"{src.path.stem}.{req.format}"
    if out.suffix != f".{req.format}":
        raise UserError(f"--out {out}: a --format {req.format} file must end in .{req.format}")
    paths = {"main": out, "meta": sidecar_path(out)}
    if req.format == "rknn":
        paths["log"] = out.with_suffix(".rknn.log")
        if src.torch_model is not None:
            paths["onnx"] = out.with_suffix(".onnx")
            paths["onnx_meta"] = sidecar_path(paths["onnx"])
        if req.report or req.doctor:
            paths["report"] = out.with_suffix(".report.json")
            paths["report_md"] = out.with_suffix(".report.md")
        if req.doctor:
            paths.update(doctor_paths(out))
    return paths


def export_model(req: ExportRequest, job: Job | None = None) -> ExportResult:
    """Run one export; see ExportRequest for the options. Raises UserError for bad input."""
    job = job or Job()
    started = time.monotonic()
    _validate(req)
    job.stage("load model")
    src = _load_source(req)
    _check_quant_matches(req, src)
    paths = _plan_paths(req, src)
    ensure_writable_dir(paths["main"].parent)
    refuse_overwrite(list(paths.values()), req.force)  # the build log too: a failed build publishes it alone
    needs_images = req.format == "rknn" and (req.rknn.quant == "int8" or req.report or req.doctor)
    if needs_images and req.calib is None:
        raise UserError("--quant int8 and --report need images: add --calib DIR (training or validation images)")
    images = list_images(req.calib, req.calib_count) if needs_images else []

    with writing(paths["main"]), Staging(paths["main"].parent) as staging:  # a full disk: one line, nothing left
        onnx_path = _stage_onnx(req, src, paths, staging, job)
        final_onnx = paths.get("onnx") or (paths["main"] if req.format == "onnx" else src.path)
        result = ExportResult(onnx=str(final_onnx),
                              rknn=None, metadata=str(paths["meta"]), report=None, min_cosine=None, seconds=0.0)
        if req.format == "rknn":
            _stage_rknn(req, src, onnx_path, images, paths, staging, job, result)
        job.stage("write")
        staging.commit(overwrite=req.force)
    result.seconds = round(time.monotonic() - started, 2)
    return result


def _meta(req: ExportRequest, src: _Source, fmt: str, outputs: list[str]) -> ModelMeta:
    return ModelMeta(format=fmt, names=src.names, imgsz=src.imgsz, layout=src.onnx_layout or req.layout,
                     outputs=outputs, task=src.task, strides=src.strides, reg_max=src.reg_max,
                     class_scores=src.class_scores, provenance=provenance(src.path, imgsz=src.imgsz))


def _stage_onnx(req: ExportRequest, src: _Source, paths: dict, staging: Staging, job: Job) -> Path:
    """Export the torch model to a staged ONNX (with its sidecar); an ONNX source is used as is."""
    if src.torch_model is None:
        return src.path
    from deploy.convert.onnx_export import export_onnx

    dest = paths["onnx"] if req.format == "rknn" else paths["main"]
    staged = staging.path(dest)
    job.stage("export onnx")
    outputs = export_onnx(src.torch_model, staged, req.imgsz, req.layout, src.class_scores)
    onnx_graph.set_metadata(staged, {onnx_graph.NAMES_KEY: json.dumps(src.names)})
    meta = _meta(req, src, "onnx", outputs)
    write_json_atomic(staging.path(sidecar_path(dest)), meta.to_dict())
    return staged


def _output_quant(quant: str, outcome, onnx_path: Path, outputs: list[str]) -> list[dict]:
    """How each output of the built model is quantized (its dtype, and for int8 its scale and zero point)."""
    if quant == "int8":
        return outcome.quantization
    if quant == "qdq":  # as the built file records them; else as the QDQ graph says
        return outcome.quantization or onnx_graph.qdq_output_quant(onnx_graph.load_onnx(onnx_path))
    return [{"name": n, "dtype": "float16"} for n in outputs]


def _stage_rknn(req, src: _Source, onnx_path: Path, images, paths, staging: Staging, job: Job, result) -> None:
    """Build the RKNN from the staged ONNX in rknn-toolkit2; record its output quantization; verify it."""
    opts = req.rknn
    result.log = str(paths["log"])
    outputs = [o.name for o in onnx_graph.load_onnx(onnx_path).graph.output]
    clear_dead(Path(tempfile.gettempdir()), RKNN_WORK_PREFIX)  # a killed build's work folder (tens of MB)
    with tempfile.TemporaryDirectory(prefix=f"{RKNN_WORK_PREFIX}{os.getpid()}-") as work:
        work = Path(work)
        dataset, inputs = None, []
        if images:
            job.stage("calibration images", len(images))
            dataset, inputs = prepare_calibration(images, src.imgsz, work, job.stepper("calibration images"))
        simulate = inputs[: min(req.report_count, len(inputs))] if req.report or req.doctor else []
        job.stage("build rknn", None, f"{opts.platform} {opts.quant}" + (" + doctor" if req.doctor else ""))
        log = staging.path(paths["log"])  # published with the model; alone when the toolkit fails
        try:
            outcome = build_rknn(
                onnx_path, staging.path(paths["main"]), opts, outputs, work, log,
                dataset=dataset if opts.quant == "int8" else None, simulate=simulate, verbose=req.verbose,
                poll=lambda n: job.step("build rknn", 0, None),
                doctor={"inputs": inputs[:DOCTOR_IMAGES], "layers": req.doctor_layers,
                        "hybrid_out": staging.path(paths["hybrid"])} if req.doctor else None,
                log_shown=paths["log"],
            )
        except UserError:
            if log.is_file():  # the failed build's log is what the user reads next
                log.replace(paths["log"])
            raise
        quant = _output_quant(opts.quant, outcome, onnx_path, outputs)
        if req.report or req.doctor:
            job.stage("verify", len(simulate))
            report = compare_outputs(onnx_path, simulate, outcome.simulated, job.stepper("verify"),
                                     logits=src.class_scores == "logits")
            report.update(rknn=str(paths["main"]), imgsz=src.imgsz, images=[str(p) for p in images[: len(simulate)]],
                          reference="onnxruntime fp32 (CPU)",
                          converted=f"rknn-toolkit2 simulator, {opts.platform} {opts.quant}")
            mark_below_resolution(report, quant)
            write_report(report, staging.path(paths["report"]), staging.path(paths["report_md"]))
            result.report, result.min_cosine = str(paths["report"]), report["min_cosine"]
            result.min_cosine_active = report["min_cosine_active"]
            result.detection_agreement = report["detections"]["agreement"]
        if req.doctor:
            write_doctor(outcome.doctor, report, onnx_path, simulate, min(DOCTOR_IMAGES, len(inputs)),
                         src.class_scores == "logits", paths, staging)
            result.hybrid, result.doctor = str(paths["hybrid"]), str(paths["doctor"])
    meta = _meta(req, src, "rknn", outputs)
    final_onnx = Path(result.onnx)
    recorded = final_onnx.name if final_onnx.parent.resolve() == paths["main"].parent.resolve() \
        else str(final_onnx.resolve())
    meta.build = BuildOptions(opts.platform, opts.quant, opts.algorithm if opts.quant == "int8" else None,
                              [str(p.resolve()) for p in images] if opts.quant == "int8" else [], recorded)
    meta.quantization = [OutputQuant(**q) for q in quant]
    meta.sha256 = sha256_of(staging.path(paths["main"]))
    write_json_atomic(staging.path(paths["meta"]), meta.to_dict())
    result.rknn = str(paths["main"])
    if req.doctor:  # the hybrid model's sidecar: the same model, its own output grids
        meta.quantization = [OutputQuant(**q) for q in outcome.doctor["quantization"] or quant]
        meta.sha256 = sha256_of(staging.path(paths["hybrid"]))
        write_json_atomic(staging.path(paths["hybrid_meta"]), meta.to_dict())
