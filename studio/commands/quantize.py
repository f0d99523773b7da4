"""`studio qat`: int8 for the NPU by quantization-aware training."""
from __future__ import annotations

from pathlib import Path

import typer

from deploy.runtime.options import Options
from studio.cli_options import checked, declared
from studio.cli_support import (
    NPROC_HELP,
    handles_errors,
    launch_if_asked,
    print_json,
    run_job,
    speaks_for_the_run,
    stdout,
)
from studio.core.compress.kd_config import KdConfig
from studio.core.compress.options import IMGSZ, QAT


@handles_errors
@checked(QAT, Options(IMGSZ))
def qat_cmd(
    model: Path = typer.Argument(..., help="Float .pt to quantize, e.g. a pruned and distilled student "
                                 "(a pickle: load only files you trust)."),
    data: Path = typer.Option(..., help="data.yaml in YOLO layout (training, calibration and val images)."),
    teacher: Path | None = declared(QAT["teacher"], help="Float teacher .pt; default: MODEL's own float self."),
    epochs: int = declared(QAT["epochs"]),
    bits: str = declared(QAT["bits"]),
    kd: str = declared(QAT["kd"], help="Distillation terms: response, feature, relation; 'none' trains on the "
                                        "labels alone."),
    temperature: float = declared(QAT["temperature"]),
    w_cls: float = declared(QAT["w_cls"]),
    w_box: float = declared(QAT["w_box"]),
    w_fg: float = declared(QAT["w_fg"]),
    w_bg: float = declared(QAT["w_bg"]),
    w_relation: float = declared(QAT["w_relation"]),
    w_angle: float = declared(QAT["w_angle"]),
    learn_scales: bool = declared(QAT["learn_scales"]),
    inner_grids: bool = declared(QAT["inner_grids"]),
    tune_teacher: bool = declared(QAT["tune_teacher"]),
    tune_every: int = declared(QAT["tune_every"]),
    calib_batches: int = declared(QAT["calib_batches"]),
    imgsz: int = declared(IMGSZ),
    batch: int = declared(QAT["batch"]),
    lr: float = declared(QAT["lr"]),
    val_limit: int | None = declared(QAT["val_limit"]),
    seed: int = declared(QAT["seed"]),
    until_flat: bool = declared(QAT["until_flat"], help="Stop each bit width's stage early once the best val "
                                                       "mAP50-95 rose by under 0.3 points over its last 10 epochs."),
    out: Path = typer.Option(Path("out/qat"), help="Folder for qat.pt, each stage and qat_report.json."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
    force: bool = typer.Option(False, "--force", help="Start over in an --out that holds an earlier run (deleted)."),
    nproc: int = typer.Option(1, help=NPROC_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Quantization-aware training: the model learns with RKNN's int8 rounding in place (BN folded,
    per-channel weights, asymmetric activations), distilled from a float teacher.

    Examples (the result exports with its learned grids kept):\n
      studio qat out/distill/best.pt --data data.yaml --epochs 5 --bits 16,8 --out out/qat\n
      studio export out/qat/qat.pt --format rknn --quant qdq --calib IMAGES --report
    """
    from studio.core.compress.qat import QatRequest, qat

    launch_if_asked(nproc)
    kd_config = KdConfig(terms=kd, temperature=temperature, cls=w_cls, box=w_box, foreground=w_fg, background=w_bg,
                         relation=w_relation, angle=w_angle)
    req = QatRequest(model=model, data=data, out=out, teacher=teacher, epochs=epochs, bits=tuple(bits), kd=kd_config,
                     learn_scales=learn_scales, inner_grids=inner_grids, tune_teacher=tune_teacher,
                     tune_every=tune_every, calib_batches=calib_batches, imgsz=imgsz, batch=batch, lr=lr,
                     val_limit=val_limit, seed=seed, until_flat=until_flat, resume=resume, force=force)
    result = run_job(lambda job: qat(req, job), json_out)
    if not speaks_for_the_run():
        return
    if json_out:
        print_json(result.to_dict())
        return
    stdout.print(f"int8 model: {result.model}\n"
                 f"val mAP50-95: float {result.float_map50_95:.4f} -> calibrated int8 "
                 f"{result.calibrated_map50_95:.4f} -> QAT int8 {result.map50_95:.4f}\n"
                 f"next: studio export {result.model} --format rknn --quant qdq --calib IMAGES --report",
                 highlight=False)
