"""`studio train` and `studio assets`: models that learn, and the bundled ones rebuilt."""
from __future__ import annotations

from pathlib import Path

import typer

from deploy.errors import UserError
from studio.cli_options import declared
from studio.cli_support import handles_errors, launch_if_asked, print_json, run_job, speaks_for_the_run, stdout
from studio.core.compress.options import UNTIL_FLAT


@handles_errors
def train_cmd(
    model: str = typer.Argument(..., help="An architecture (yolov8n.yaml) to train from scratch, or a .pt checkpoint."),
    data: Path = typer.Option(..., help="A data.yaml in YOLO layout (e.g. from studio data synth)."),
    epochs: int = typer.Option(10, help="Passes over the training split."),
    imgsz: int = typer.Option(320, help="Training image size."),
    batch: int = typer.Option(16, help="Images per step."),
    project: Path = typer.Option(Path("runs/train"), help="Folder for runs."),
    name: str = typer.Option("exp", help="Run name; weights go to PROJECT/NAME/weights/."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last.pt."),
    force: bool = typer.Option(False, "--force", help="Start over in a PROJECT/NAME that holds an earlier run "
                               "(it is deleted)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show ultralytics' own log."),
    devices: str = typer.Option("cpu", help="cpu, or GPU ids like 0,1 (ultralytics then trains with DDP itself)."),
    init: str = typer.Option(None, help="Start the architecture from this .pt's layers of matching shape (e.g. "
                             "a detector's backbone and neck for an -obb.yaml); the .pt is run as code, so only "
                             "give one you trust."),
    until_flat: bool = declared(UNTIL_FLAT),
    mosaic: bool = typer.Option(True, "--mosaic/--no-mosaic", help="Mosaic augmentation until the last 10 epochs; "
                                "--no-mosaic trains without it from the first (polishing a trained model)."),
    lr: float | None = typer.Option(None, help="Peak learning rate, with AdamW and no warm-up (default: ultralytics' "
                             "automatic choice); a small one, e.g. 0.0001, polishes a trained model."),
    nproc: int = typer.Option(1, help="CPU processes (torchrun + DDP with gloo, the studio's training loop); "
                                      "for several machines: docs/scale-out.md."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Train a detector with ultralytics (CPU, or GPUs with --devices); checkpoints every epoch, resumable.

    With --nproc N it trains on N CPU processes with the studio's own loop (DDP, gloo). With --init, an
    architecture starts from another model's weights where the layers match: an oriented-box model learns
    faster from a trained detector's backbone than from nothing.

    Example: studio train yolov8n.pt --data data/mine/data.yaml --epochs 30 --imgsz 320 --name mine
    """
    from studio.core.train import TrainRequest, train

    if nproc > 1 and devices != "cpu":
        raise UserError("--nproc is for CPU processes; with GPUs give --devices 0,1 and ultralytics runs DDP")
    launch_if_asked(nproc)
    req = TrainRequest(model=model, data=data, epochs=epochs, imgsz=imgsz, batch=batch, project=project,
                       name=name, resume=resume, force=force, verbose=verbose, devices=devices, init=init,
                       until_flat=until_flat, mosaic=mosaic, lr=lr)
    result = run_job(lambda job: train(req, job), json_out)
    if not speaks_for_the_run():
        return
    if json_out:
        print_json(result.to_dict())
    else:
        stdout.print(f"best weights: {result.best}  mAP50-95 {result.map50_95:.3f}  mAP50 {result.map50:.3f}")


@handles_errors
def assets_cmd(
    only: str | None = typer.Option(None, help="One step: data | student | teacher | data-obb | student-obb | "
                                    "teacher-obb | bundle | samples"),
    epochs: int = typer.Option(60, help="Training epochs of the upright student and teacher (the oriented-box pair "
                               "has its own: 40 + 40 and 24)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Rebuild the bundled demo models, samples and video (hours on a CPU; every step resumes).

    Example: studio assets --only data
    """
    from studio.core.assets import AssetsRequest, build_assets

    done = run_job(lambda job: build_assets(AssetsRequest(epochs=epochs, only=only), job), json_out)
    if json_out:
        print_json(done)
    else:
        for step, what in done.items():
            stdout.print(f"[bold]{step:<8}[/] {what}", highlight=False)
