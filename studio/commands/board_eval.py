"""`studio board eval`: accuracy measured on the board, side by side with the host's float and simulator."""
from __future__ import annotations

from pathlib import Path

import typer

from studio.cli_support import handles_errors, print_json, run_job, stdout
from studio.commands.board import ASK, JSON, PROJECT, TRUST, board_access


@handles_errors
def eval_cmd(
    board: str = typer.Argument(..., help="The board (studio board add)."),
    model: Path = typer.Argument(..., help="The exported .rknn (NPU) or .onnx (--backend ort), or a deploy bundle."),
    data: Path = typer.Option(..., help="The data.yaml whose labelled images are scored."),
    split: str = typer.Option("val", help="Which split of --data."),
    backend: str = typer.Option("rknnlite", help="rknnlite (the NPU) | ort (ONNX Runtime on the board's CPU)."),
    workers: int = typer.Option(3, min=1, help="Agent workers (NPU core i % 3 each)."),
    conf: float = typer.Option(0.001, min=0, max=1, help="Minimum score (an evaluation's default)."),
    iou: float = typer.Option(0.7, min=0, max=1, help="NMS IoU."),
    max_det: int = typer.Option(300, min=1, help="Most detections per image."),
    limit: int | None = typer.Option(None, min=1, help="Only the first N images of the split."),
    host: bool = typer.Option(True, "--host/--board-only", help="Also measure the host's columns (float ONNX; the "
                                                               "simulator for an .rknn)."),
    compare: int = typer.Option(4, min=0, help="Raw outputs of the first N images, compared with the host's twin "
                                               "(the simulator for an .rknn) on the board's own inputs."),
    report: Path | None = typer.Option(None, help="Also write board-eval.json and board-eval.md into this folder."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --report folder."),
    project: str = PROJECT, trust: bool = TRUST, ask_password: bool = ASK, json_out: bool = JSON,
):
    """mAP measured on the board, beside float on the host and int8 in the simulator: is int8 right on the board?

    The split's images go to the board once (a repeat run sends none) and run through the agent with
    every worker; the host scores them with the code of `studio eval`. Where the board and the
    simulator disagree, the report says on which images.

    Examples:\n
      studio board eval rock5b exports/best.rknn --data data/aerial/data.yaml --report out/board-eval\n
      studio board eval rock5b exports/best.onnx --backend ort --data data/aerial/data.yaml --limit 50
    """
    import json

    from deploy.runtime.output import Output
    from studio.commands.board_deploy import check_model
    from studio.core.board_eval import BoardEvalRequest, board_eval
    from studio.core.board_eval_report import HEADERS, class_rows, lines, markdown, summary_rows

    model = check_model(model, backend)
    written = Output(report, force=force) if report else None
    if written:
        written.check()
    req = BoardEvalRequest(board, model, data, split, backend, workers, conf, iou, max_det, limit, host, compare,
                           project)
    access = board_access(board, trust, ask_password)
    result = run_job(lambda job: board_eval(access, req, job), json_out)
    if written:
        with written as staging:
            (staging / "board-eval.json").write_text(json.dumps(result, indent=1) + "\n")
            (staging / "board-eval.md").write_text(markdown(result))
    if json_out:
        print_json(result)
        return
    stdout.print(f"{result['model']} on {board}: {result['split']} split, {result['images']} images", highlight=False)
    for row in [tuple(HEADERS)] + summary_rows(result):
        stdout.print("  " + " | ".join(f"{v:>10}" if i > 1 else f"{v:<16}" for i, v in enumerate(row)),
                     highlight=False)
    heads, rows = class_rows(result)
    stdout.print("  AP50-95 per class: " + "; ".join(f"{r[0]} " + " / ".join(r[1:]) for r in rows), highlight=False)
    for line in lines(result):
        stdout.print(f"  {line}", highlight=False)
