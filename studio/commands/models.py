"""`studio models`: describe detectors."""
from __future__ import annotations

import typer
from rich.table import Table

from studio.cli_support import handles_errors, print_json, stdout


@handles_errors
def models_inspect(
    model: str = typer.Argument(..., help="A .pt checkpoint, a .yaml architecture (yolov8n.yaml) or a .onnx file."),
    imgsz: int = typer.Option(512, help="Input size for GFLOPs and output shapes."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Task, class names, parameters, GFLOPs and tensor shapes of a detector."""
    from studio.core.models import inspect_model

    info = inspect_model(model, imgsz)
    if json_out:
        print_json(info.to_dict())
        return
    table = Table(show_header=False, box=None)
    for key, value in info.to_dict().items():
        if key == "names":
            value = f"{len(value)}: {', '.join(value[:12])}{' ...' if len(value) > 12 else ''}"
        table.add_row(f"[bold]{key}[/]", str(value))
    stdout.print(table)
