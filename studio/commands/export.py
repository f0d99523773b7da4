"""`studio export`: ONNX and RKNN with sidecars and a verification report."""
from __future__ import annotations

from pathlib import Path

import typer

from studio.cli_support import handles_errors, print_json, run_job, stdout


@handles_errors
def export(
    model: str = typer.Argument(..., help="A .pt or .yaml detector; or, for --format rknn, an rknn-split .onnx."),
    format: str = typer.Option("onnx", "--format", "-f", help="onnx | rknn"),
    layout: str = typer.Option("rknn-split", help="rknn-split (per-scale box + class outputs) | standard"),
    scores: str = typer.Option("logits", help="rknn-split class outputs: logits (keeps low scores in int8) | sigmoid"),
    imgsz: int = typer.Option(512, help="Square input size, a multiple of 32."),
    out: Path | None = typer.Option(None, help="File to write (default exports/<model>.<format>)."),
    platform: str = typer.Option("rk3588", help="rk3588 | rk3576 | rk3568 | rk3566 | rk3562 | rv1106"),
    quant: str = typer.Option("int8", help="int8 (calibrated PTQ) | fp16 | qdq (keep an ONNX's QDQ scales)"),
    algorithm: str = typer.Option("normal", help="int8 calibration: normal | kl_divergence | mmse (slow)"),
    calib: Path | None = typer.Option(None, help="Folder of calibration images (needed for int8 and --report)."),
    calib_count: int = typer.Option(100, help="How many calibration images to use (0: all)."),
    report: bool = typer.Option(False, "--report", help="Compare ONNX Runtime and the RKNN simulator per output."),
    report_count: int = typer.Option(8, help="Images used by --report."),
    doctor: bool = typer.Option(False, "--doctor", help="int8 losing accuracy? Analyse each layer's int8 error, "
                                "name the worst, and build <out>.hybrid.rknn with them in float16."),
    doctor_layers: int = typer.Option(3, help="How many of the worst layers --doctor keeps in float16."),
    force: bool = typer.Option(False, "--force", help="Replace existing outputs."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show rknn-toolkit2's log live."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object with the written paths."),
):
    """Export to ONNX, or convert to RKNN for a Rockchip NPU (with sidecar JSON and a report).

    Examples:\n
      studio export best.pt --format onnx --imgsz 512\n
      studio export best.pt --format rknn --platform rk3588 --quant int8 --calib data/images/val --report\n
      studio export best.pt --format rknn --calib data/images/val --doctor   # int8 lost accuracy: why, and a fix\n
      studio export qat.pt --format rknn --quant qdq --calib data/images/val   # keeps QAT's learned grids
    """
    from deploy.convert.rknn_convert import RknnOptions
    from studio.core.export import ExportRequest, export_model

    req = ExportRequest(
        model=model, format=format, layout=layout, class_scores=scores, imgsz=imgsz, out=out,
        rknn=RknnOptions(platform=platform, quant=quant, algorithm=algorithm),
        calib=calib, calib_count=calib_count, report=report, report_count=report_count,
        force=force, verbose=verbose, doctor=doctor, doctor_layers=doctor_layers,
    )
    result = run_job(lambda job: export_model(req, job), json_out)
    if json_out:
        print_json(result.to_dict())
        return
    fields = {k: v for k, v in result.to_dict().items() if v is not None}
    width = max(map(len, fields))
    for key, value in fields.items():
        stdout.print(f"[bold]{key:>{width}}[/] {value}", highlight=False)
