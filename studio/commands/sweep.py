"""`studio sweep`: compression recipes over a grid, as Ray tasks, ranked by accuracy and NPU cost."""
from __future__ import annotations

from pathlib import Path

import typer

from studio.cli_support import fail, handles_errors, print_json, run_job, stdout


@handles_errors
def sweep_cmd(
    recipe: Path = typer.Option(..., help="The base recipe (see assets/recipes/); every candidate starts from it."),
    grid: list[str] = typer.Option(..., help="KEY=V1,V2; repeat for more axes. Keys: section.option "
                                               "(prune.target_flops=0.3,0.5), stage=on,off, quant=ptq,qat."),
    out: Path = typer.Option(Path("out/sweep"), help="Folder for candidates/<id>/ and sweep_report.*."),
    address: str | None = typer.Option(None, help="A Ray cluster to run on (default: a local instance on "
                                                  "127.0.0.1)."),
    workers: int = typer.Option(2, help="Candidates at once on the local instance (one CPU each)."),
    target: float | None = typer.Option(None, help="Cost target T of the score, in Mcycles (default: the median)."),
    weight: float = typer.Option(-0.07, help="Exponent w of the score ACC * (LAT / T) ** w (MnasNet)."),
    resume: bool = typer.Option(False, "--resume", help="Continue a sweep in --out (finished candidates are kept)."),
    force: bool = typer.Option(False, "--force", help="Start over in an --out that holds an earlier sweep (deleted)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Run many compression candidates at once on Ray and rank them; one failing candidate never stops the rest.

    Examples:\n
      studio sweep --recipe assets/recipes/demo.yaml --grid prune.target_flops=0.3,0.5 --grid quant=ptq,qat\n
      studio sweep --recipe r.yaml --grid prune.criterion=l1,taylor --address ray://head:10001 --resume
    """
    from studio.core.compress.sweep import SweepRequest, run_sweep

    req = SweepRequest(recipe, grid, out, address, workers, target, weight, resume, force)
    summary = run_job(lambda job: run_sweep(req, job), json_out)
    if json_out:
        print_json(summary)
    else:
        stdout.print((out / "sweep_report.md").read_text(), highlight=False)
    if summary["candidates"] and not summary["ranking"]:  # nothing to choose from: a failed sweep
        raise fail(f"every candidate failed ({len(summary['failed'])}); their errors are in "
                   f"{out / 'sweep_report.md'}")
