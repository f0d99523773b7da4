"""`studio prune` and `studio distill`: make a detector smaller, then win its accuracy back."""
from __future__ import annotations

from pathlib import Path

import typer

from studio.cli_support import handles_errors, print_json, run_job, stdout


def _terms(kd: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in kd.split(",") if t.strip())


def _layers(protect: str) -> tuple[int, ...]:
    from deploy.errors import UserError

    try:
        return tuple(int(i) for i in protect.split(",") if i.strip())
    except ValueError:
        raise UserError(f"--protect {protect!r}: expected layer indices like 0,1,9") from None


@handles_errors
def prune_cmd(
    model: Path = typer.Argument(..., help="The .pt checkpoint to prune (a pickle: load only files you trust)."),
    data: Path | None = typer.Option(None, help="data.yaml for fine-tuning, Taylor ranking and mAP before/after."),
    target_flops: float | None = typer.Option(None, help="Share of the GFLOPs to keep, e.g. 0.5."),
    target_params: float | None = typer.Option(None, help="Share of the parameters to keep (instead of GFLOPs)."),
    criterion: str = typer.Option("l1", help="Channel ranking: l1 | l2 | bn | taylor | energy."),
    scope: str = typer.Option("global", help="global: rank channels across layers; layer: same ratio everywhere."),
    protect: str = typer.Option("", help="Layer indices never pruned, e.g. 0,1 (see `studio models inspect`)."),
    steps: int = typer.Option(1, help="Progressive pruning: prune in N steps, fine-tuning after each."),
    schedule_k: float = typer.Option(3.0, "--schedule-k", help="Schedule exponent k of p_i = p_f(1-(1-i/n)^k)."),
    finetune_epochs: int = typer.Option(0, help="Fine-tuning epochs after each step (needs --data)."),
    sparsity_epochs: int = typer.Option(0, help="bn criterion: epochs with an L1 penalty on BN gammas first."),
    bn_l1: float = typer.Option(1e-3, "--bn-l1", help="Weight of that L1 penalty."),
    teacher: Path | None = typer.Option(None, help="Distil from this teacher while fine-tuning."),
    kd: str = typer.Option("response,feature,relation", help="Distillation terms used with --teacher."),
    imgsz: int | None = typer.Option(None, help="Image size (default: the model's training size)."),
    batch: int = typer.Option(16, help="Images per fine-tuning step."),
    round_to: int = typer.Option(8, help="Keep channel counts multiples of this (0: any count)."),
    val_limit: int | None = typer.Option(None, help="Validate on the first N val images only (faster)."),
    out: Path = typer.Option(Path("out/prune"), help="Folder for pruned.pt, each step and the report."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Structured pruning (DepGraph) to a GFLOPs or parameter target, optionally in steps with fine-tuning.

    Example: studio prune assets/models/student.pt --data data.yaml --target-flops 0.5
    --criterion l1 --steps 3 --finetune-epochs 5 --teacher assets/models/teacher.pt
    """
    from studio.core.compress.prune import PruneRequest, prune

    req = PruneRequest(model=model, out=out, data=data, target_flops=target_flops, target_params=target_params,
                       criterion=criterion, scope=scope, protect=_layers(protect), steps=steps, schedule_k=schedule_k,
                       finetune_epochs=finetune_epochs, sparsity_epochs=sparsity_epochs, bn_l1=bn_l1,
                       teacher=teacher, kd=_terms(kd), imgsz=imgsz, batch=batch, round_to=round_to or None,
                       val_limit=val_limit, resume=resume)
    result = run_job(lambda job: prune(req, job), json_out)
    if json_out:
        print_json(result.to_dict())
        return
    g, p = result.gflops, result.params
    stdout.print(f"pruned model: {result.model}", highlight=False)
    stdout.print(f"GFLOPs {g['before']:.3f} -> {g['after']:.3f} ({g['ratio']:.0%}); "
                 f"parameters {p['before']:,} -> {p['after']:,} ({p['ratio']:.0%})", highlight=False)
    if result.map50_95:
        stdout.print(f"val mAP50-95 {result.map50_95['before']:.4f} -> {result.map50_95['after']:.4f}")
