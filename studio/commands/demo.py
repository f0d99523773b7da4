"""`studio demo`: the whole chain headless with short budgets, or (--remote-sensing) the live scene demo."""
from __future__ import annotations

from pathlib import Path

import typer

from studio.cli_support import handles_errors, print_json, run_job, stdout


@handles_errors
def demo(
    out: Path = typer.Option(Path("out/demo"), help="Where data, the chain's runs, exports and the report go."),
    model: Path | None = typer.Option(None, help="A .pt to compress (default: assets/models/student.pt). "
                                                 "A .pt is code: give only files you trust."),
    teacher: Path | None = typer.Option(None, help="The distillation teacher (default: assets/models/teacher.pt)."),
    images: int = typer.Option(300, help="Synthetic images (70% train, 20% val, 10% test)."),
    imgsz: int = typer.Option(320, help="Training and export size (the bundled models were trained at 320)."),
    fresh: bool = typer.Option(False, "--fresh", help="Start the chain again instead of resuming it."),
    remote_sensing: bool = typer.Option(False, "--remote-sensing",
                                        help="Open the live remote-sensing demo instead: a large scene tiled "
                                             "over several workers, with pan and zoom, and a simulated flight. "
                                             "It runs the float model a `studio demo` left in --out; the other "
                                             "options do not apply (choose another model in its window)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """The main job on bundled defaults: prune -> distill -> QAT -> export -> verify -> pipeline, one report.

    Budgets are cut so the whole chain takes minutes on a laptop CPU; out/demo/report.html
    puts its figures (labelled short-budget) beside the bundled full-budget run. Rerunning
    resumes an interrupted demo.

    Examples:

      studio demo                      # about 6 minutes on 2 cores; then open out/demo/report.html

      studio demo --remote-sensing     # the live window (needs a display)
    """
    if remote_sensing:
        from studio.gui.remote_sensing import open_remote_sensing_demo

        open_remote_sensing_demo(out)
        return
    from studio.core.demo import DemoRequest, run_demo

    req = DemoRequest(out=out, model=model, teacher=teacher, images=images, imgsz=imgsz, fresh=fresh)
    result = run_job(lambda job: run_demo(req, job), json_out)
    if json_out:
        print_json(result.to_dict())
        return
    float_map = result.chain["rows"][0]["map50_95"]
    stdout.print("[bold]short-budget run[/] (figures show the chain works, not what it reaches):")
    for row in result.chain["rows"]:
        delta = 100 * (row["map50_95"] - float_map)
        stdout.print(f"  {row['variant']:<12} mAP50-95 {row['map50_95']:.4f} ({delta:+.2f})"
                     f"  {row['bytes'] / 1e6:.2f} MB", highlight=False)
    for run in result.pipeline["runs"]:
        stdout.print(f"  pipeline, {run['workers']} worker(s): {run['fps']:.1f} frames/s", highlight=False)
    stdout.print(f"[bold]report[/] {result.html}  ({result.report}); {result.seconds['total'] / 60:.1f} min",
                 highlight=False)
