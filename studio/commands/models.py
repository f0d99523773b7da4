"""`studio models`: describe detectors."""
from __future__ import annotations

import typer
from rich.table import Table

from deploy.errors import UserError
from studio.cli_support import handles_errors, print_json, stdout


@handles_errors
def models_inspect(
    model: str = typer.Argument(..., help="A .pt checkpoint, a .yaml architecture (yolov8n.yaml) or a .onnx file."),
    imgsz: int | None = typer.Option(None, help="Input size for GFLOPs and output shapes (default: the size it "
                                                "was trained at; an exported model has only its own)."),
    layers: bool = typer.Option(False, "--layers", help="Also list the layers with their indices (what "
                                                         "`studio prune --protect` takes); .pt and .yaml only."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Task, class names, parameters, GFLOPs and tensor shapes of a detector.

    Example: studio models inspect yolov8n.yaml --imgsz 512 --layers
    """
    from studio.core.models import inspect_model, layer_table, load_detector

    info = inspect_model(model, imgsz)
    if layers and info.kind not in ("checkpoint", "architecture"):
        raise UserError(f"{model}: --layers lists the layers of a .pt or .yaml model, not of a {info.kind} file")
    rows = layer_table(load_detector(model)[0]) if layers else []
    if json_out:
        print_json({**info.to_dict(), **({"layers": rows} if layers else {})})
        return
    table = Table(show_header=False, box=None)
    for key, value in info.to_dict().items():
        if key == "names":
            value = f"{len(value)}: {', '.join(value[:12])}{' ...' if len(value) > 12 else ''}"
        table.add_row(f"[bold]{key}[/]", str(value))
    stdout.print(table)
    if rows:
        listing = Table("#", "from", "module", "parameters", box=None)
        for row in rows:
            listing.add_row(str(row["index"]), str(row["from"]), row["type"], f"{row['parameters']:,}")
        stdout.print(listing)
