"""`studio qat`: int8 for the NPU by quantization-aware training."""
from __future__ import annotations

from pathlib import Path

import typer

from studio.cli_support import (
    NPROC_HELP,
    handles_errors,
    launch_if_asked,
    print_json,
    run_job,
    speaks_for_the_run,
    stdout,
)
from studio.core.compress.kd_config import KdConfig, parse_terms


def _ints(text: str, flag: str) -> tuple[int, ...]:
    from deploy.errors import UserError

    try:
        return tuple(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected whole numbers like 16,8") from None


@handles_errors
def qat_cmd(
    model: Path = typer.Argument(..., help="Float .pt to quantize, e.g. a pruned and distilled student "
                                 "(a pickle: load only files you trust)."),
    data: Path = typer.Option(..., help="data.yaml in YOLO layout (training, calibration and val images)."),
    teacher: Path | None = typer.Option(None, help="Float teacher .pt; default: MODEL's own float self."),
    epochs: int = typer.Option(5, help="Training epochs over all bit-width stages."),
    bits: str = typer.Option("8", help="Bit-width schedule ending at 8, e.g. 16,8: train at each width in turn."),
    kd: str = typer.Option(",".join(("response", "feature")), help="Distillation terms: response, feature, "
                           "relation; 'none' trains on the labels alone."),
    temperature: float = typer.Option(KdConfig.temperature, help="Softening temperature of the response terms."),
    learn_scales: bool = typer.Option(True, "--learn-scales/--frozen-scales",
                                      help="Train the grids' scales (LSQ) or keep the calibrated ones."),
    tune_teacher: bool = typer.Option(False, "--tune-teacher", help="Fine-tune the teacher toward what the int8 "
                                      "student can learn (a MAML-style inner/outer loop; slower)."),
    tune_every: int = typer.Option(10, help="With --tune-teacher: training steps between teacher updates."),
    calib_batches: int = typer.Option(8, help="Training batches whose ranges place the initial grids."),
    imgsz: int = typer.Option(320, help="Training image size."),
    batch: int = typer.Option(16, help="Images per step."),
    lr: float = typer.Option(1e-4, help="Peak learning rate (AdamW, cosine decay)."),
    val_limit: int | None = typer.Option(None, help="Validate on the first N val images only (faster)."),
    out: Path = typer.Option(Path("out/qat"), help="Folder for qat.pt, each stage and qat_report.json."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
    nproc: int = typer.Option(1, help=NPROC_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Quantization-aware training: the model learns with RKNN's int8 rounding in place (BN folded,
    per-channel weights, asymmetric activations), distilled from a float teacher.

    The result exports with its learned grids kept:
      studio qat out/distill/best.pt --data data.yaml --epochs 5 --bits 16,8
      studio export out/qat/qat.pt --format rknn --quant qdq --calib IMAGES --report
    """
    from studio.core.compress.qat import QatRequest, qat

    launch_if_asked(nproc)
    req = QatRequest(model=model, data=data, out=out, teacher=teacher, epochs=epochs, bits=_ints(bits, "--bits"),
                     kd=KdConfig(terms=parse_terms(kd), temperature=temperature), learn_scales=learn_scales,
                     tune_teacher=tune_teacher, tune_every=tune_every,
                     calib_batches=calib_batches, imgsz=imgsz, batch=batch, lr=lr, val_limit=val_limit, resume=resume)
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
