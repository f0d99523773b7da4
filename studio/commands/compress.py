"""`studio prune`, `distill`, `compare` and `compress`: make a detector smaller, win its accuracy back,
compare the results, or run the whole recipe (prune, distill, QAT, export, verify) in one go."""
from __future__ import annotations

from pathlib import Path

import typer

from deploy.errors import UserError
from deploy.runtime.options import Options
from studio.cli_options import checked, declared
from studio.cli_support import (
    NPROC_HELP,
    handles_errors,
    launch_if_asked,
    one_process_only,
    print_json,
    run_job,
    speaks_for_the_run,
    stdout,
)
from studio.core.compress.kd_config import KdConfig
from studio.core.compress.options import DISTILL, IMGSZ, PRUNE, SEED, whole_numbers


@handles_errors
@checked(PRUNE)
def prune_cmd(
    model: Path = typer.Argument(..., help="The .pt checkpoint to prune (a pickle: load only files you trust)."),
    data: Path | None = typer.Option(None, help="data.yaml for fine-tuning, Taylor ranking and mAP before/after."),
    target_flops: float | None = declared(PRUNE["target_flops"]),
    target_params: float | None = declared(PRUNE["target_params"]),
    criterion: str = declared(PRUNE["criterion"]),
    scope: str = declared(PRUNE["scope"]),
    protect: str = declared(PRUNE["protect"]),
    steps: int = declared(PRUNE["steps"]),
    schedule_k: float = declared(PRUNE["schedule_k"]),
    finetune_epochs: int = declared(PRUNE["finetune_epochs"]),
    sparsity_epochs: int = declared(PRUNE["sparsity_epochs"]),
    bn_l1: float = declared(PRUNE["bn_l1"]),
    teacher: Path | None = typer.Option(None, help="Distil from this teacher while fine-tuning."),
    kd: str = declared(PRUNE["kd"], help="Distillation terms used with --teacher."),
    imgsz: int | None = typer.Option(None, help="Image size (default: the model's training size)."),
    batch: int = declared(PRUNE["batch"]),
    round_to: int = declared(PRUNE["round_to"]),
    val_limit: int | None = declared(PRUNE["val_limit"]),
    out: Path = typer.Option(Path("out/prune"), help="Folder for pruned.pt, each step and the report."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
    force: bool = typer.Option(False, "--force", help="Start over in an --out that holds an earlier run (deleted)."),
    scan: bool = typer.Option(False, "--scan", help="Instead of pruning, measure each layer's sensitivity "
                              "(mAP vs share pruned, no fine-tuning): sensitivity.json and .png in --out."),
    scan_ratios: str = typer.Option("0.25,0.5,0.75", help="Shares of channels tried per layer by --scan."),
    nproc: int = typer.Option(1, help=NPROC_HELP + " Rank 0 prunes; all ranks fine-tune."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Structured pruning (DepGraph) to a GFLOPs or parameter target, optionally in steps with fine-tuning.

    Example: studio prune assets/models/student.pt --data data.yaml --target-flops 0.5
    --criterion l1 --steps 3 --finetune-epochs 5 --teacher assets/models/teacher.pt
    """
    from studio.core.compress.prune import PruneRequest, prune

    if scan:
        one_process_only(nproc, "--scan")
        return _scan(model, data, out, criterion, scan_ratios, imgsz, val_limit, json_out)
    launch_if_asked(nproc)
    req = PruneRequest(model=model, out=out, data=data, target_flops=target_flops, target_params=target_params,
                       criterion=criterion, scope=scope, protect=protect, steps=steps, schedule_k=schedule_k,
                       finetune_epochs=finetune_epochs, sparsity_epochs=sparsity_epochs, bn_l1=bn_l1,
                       teacher=teacher, kd=kd, imgsz=imgsz, batch=batch, round_to=round_to or None,
                       val_limit=val_limit, resume=resume, force=force)
    result = run_job(lambda job: prune(req, job), json_out)
    if not speaks_for_the_run():
        return
    if json_out:
        print_json(result.to_dict())
        return
    g, p = result.gflops, result.params
    stdout.print(f"pruned model: {result.model}", highlight=False)
    stdout.print(f"GFLOPs {g['before']:.3f} -> {g['after']:.3f} ({g['ratio']:.0%}); "
                 f"parameters {p['before']:,} -> {p['after']:,} ({p['ratio']:.0%})", highlight=False)
    if result.map50_95:
        stdout.print(f"val mAP50-95 {result.map50_95['before']:.4f} -> {result.map50_95['after']:.4f}")


def _scan(model: Path, data: Path | None, out: Path, criterion: str, ratios: str, imgsz: int | None,
          val_limit: int | None, json_out: bool) -> None:
    from studio.core.compress.sensitivity import scan

    if data is None:
        raise UserError("--scan needs --data (it measures mAP on the val split)")
    try:
        shares = tuple(float(r) for r in ratios.split(","))
    except ValueError:
        raise UserError(f"--scan-ratios {ratios!r}: expected numbers like 0.25,0.5") from None
    result = run_job(lambda job: scan(model, data, out, criterion, shares, imgsz, val_limit or 100, job), json_out)
    if json_out:
        print_json(result)
        return
    stdout.print(f"baseline val mAP50-95 {result['baseline']:.4f}; most sensitive layers first "
                 f"(drop at {shares[-1]:.0%} pruned):", highlight=False)
    for row in sorted(result["layers"], key=lambda r: -r["drop_at_max"]):
        stdout.print(f"  layer {row['layer']:>2} {row['type']:<10} {row['drop_at_max']:+.4f}", highlight=False)
    stdout.print(f"plot: {out / 'sensitivity.png'}", highlight=False)


@handles_errors
@checked(DISTILL, Options(IMGSZ))
def distill_cmd(
    student: str = typer.Option(..., help="Student: a .pt to fine-tune (e.g. a pruned model) or a .yaml to train."),
    teacher: Path | None = typer.Option(None, help="Teacher .pt (same classes and strides; any width)."),
    data: Path = typer.Option(..., help="data.yaml in YOLO layout."),
    epochs: int = declared(DISTILL["epochs"]),
    kd: str = declared(DISTILL["kd"]),
    temperature: float = declared(DISTILL["temperature"]),
    w_cls: float = declared(DISTILL["w_cls"]),
    w_box: float = declared(DISTILL["w_box"]),
    w_fg: float = declared(DISTILL["w_fg"]),
    w_bg: float = declared(DISTILL["w_bg"]),
    w_relation: float = declared(DISTILL["w_relation"]),
    w_angle: float = declared(DISTILL["w_angle"]),
    imgsz: int = declared(IMGSZ),
    batch: int = declared(DISTILL["batch"]),
    lr: float = declared(DISTILL["lr"]),
    val_limit: int | None = declared(DISTILL["val_limit"]),
    seed: int = declared(DISTILL["seed"]),
    until_flat: bool = declared(DISTILL["until_flat"]),
    ablation: bool = typer.Option(False, "--ablation", help="Train none / response / +feature / +relation and "
                                  "write ablation.json, .md and .png."),
    out: Path = typer.Option(Path("out/distill"), help="Folder for best.pt, last.pt, state and reports."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
    force: bool = typer.Option(False, "--force", help="Start over in an --out that holds an earlier run (deleted)."),
    nproc: int = typer.Option(1, help=NPROC_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Knowledge distillation teacher -> student: response, foreground/background features with attention,
    and relations; 1x1 adapters where widths differ.

    Examples:\n
      studio distill --student out/prune/pruned.pt --teacher assets/models/teacher.pt --data data.yaml --epochs 10\n
      studio distill --student yolov8n.yaml --data data.yaml --kd none --out out/plain   # no teacher: training
    """
    from studio.core.compress.distill import DistillRequest, distill
    from studio.core.compress.distill import ablation as run_ablation

    if ablation:
        one_process_only(nproc, "--ablation")
    launch_if_asked(nproc)
    config = KdConfig(terms=kd, temperature=temperature, cls=w_cls, box=w_box, foreground=w_fg, background=w_bg,
                      relation=w_relation, angle=w_angle)
    req = DistillRequest(teacher=teacher, student=student, data=data, out=out, epochs=epochs, kd=config, imgsz=imgsz,
                         batch=batch, lr=lr, val_limit=val_limit, seed=seed, until_flat=until_flat, resume=resume,
                         force=force)
    if ablation:
        summary = run_job(lambda job: run_ablation(req, job), json_out)
        if json_out:
            print_json(summary)
        else:
            stdout.print((out / "ablation.md").read_text(), highlight=False)
        return
    result = run_job(lambda job: distill(req, job), json_out)
    if not speaks_for_the_run():
        return
    if json_out:
        print_json(result.to_dict())
    else:
        stdout.print(f"best weights: {result.model}  val mAP50-95 {result.map50_95:.4f}  mAP50 {result.map50:.4f}  "
                     f"small {result.small if result.small is not None else '-'}", highlight=False)


@handles_errors
def compare_cmd(
    models: list[Path] = typer.Argument(..., help="Checkpoints to compare; the first is the baseline."),
    data: Path | None = typer.Option(None, help="data.yaml: adds val mAP (overall and small objects)."),
    imgsz: int = typer.Option(320, help="Image size for GFLOPs, latency and mAP."),
    val_limit: int | None = typer.Option(None, help="Evaluate on the first N val images only."),
    out: Path = typer.Option(Path("out/compare"), help="Folder for compare.json, .md and .png."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Models side by side: parameters, GFLOPs, mAP, torch and ONNX Runtime CPU latency (measured in one run).

    Example: studio compare assets/models/student.pt out/compress/distill/best.pt --data data.yaml
    """
    from studio.core.compress.report import compare

    missing = [str(m) for m in models if not m.is_file()]
    if missing:
        raise UserError(f"no such model file: {', '.join(missing)}")
    summary = run_job(lambda job: compare(models, data, imgsz, out, val_limit, job), json_out)
    if json_out:
        print_json(summary)
    else:
        stdout.print((out / "compare.md").read_text(), highlight=False)


@handles_errors
def compress_cmd(
    recipe: Path = typer.Option(..., help="Recipe YAML: model, data, teacher, and prune / distill / qat / export / "
                                "verify sections (see assets/recipes/)."),
    out: Path = typer.Option(Path("out/compress"), help="Folder for every stage and compress_report.*."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
    force: bool = typer.Option(False, "--force", help="Start over in an --out that holds an earlier run (deleted)."),
    seed: int | None = typer.Option(None, help="Seed of the distill and QAT stages instead of the recipe's: a "
                                    "second run with another seed shows the spread (give it again with --resume)."),
    seeds: str | None = typer.Option(None, help="Run once per seed, e.g. 0,1, into OUT/seed-N, and report them side "
                                     "by side (mean and spread); OUT/seed-N may also be run alone with --seed N."),
    nproc: int = typer.Option(1, help=NPROC_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """The whole chain from one recipe: prune -> distill -> QAT -> export (PTQ and QAT int8) -> verify
    in the RKNN simulator, resumable, with one report comparing float, PTQ and QAT.

    Examples:\n
      studio compress --recipe assets/recipes/int8.yaml --out out/compress\n
      studio compress --recipe assets/recipes/obb-int8.yaml --seeds 0,1 --out out/obb-int8   # and the spread
    """
    from studio.core.compress.chain import run_recipe
    from studio.core.compress.recipe import load_recipe

    plan = load_recipe(recipe)
    if seed is not None:
        plan = plan.seeded(seed)
    if seeds is not None:
        _run_seeds(plan, seed_list(seeds, seed), out, resume, force, nproc, json_out)
        return
    launch_if_asked(nproc)
    report = run_job(lambda job: run_recipe(plan, out, resume, job, force), json_out)
    if not speaks_for_the_run():
        return
    if json_out:
        print_json(report)
    else:
        stdout.print((out / "compress_report.md").read_text(), highlight=False)
        stdout.print(f"deploy bundle: {report['bundle']} (its README.md says how to run it)", highlight=False)


def seed_list(text: str, seed: int | None) -> list[int]:
    """--seeds 0,1 as distinct whole numbers (one line and exit 2 when not, or beside --seed)."""
    if seed is not None:
        raise UserError("--seed runs one seed and --seeds several; give one of them")
    try:
        found = list(dict.fromkeys(SEED.check(value) for value in whole_numbers(text)))
    except (ValueError, UserError):
        found = []
    if not found:
        raise UserError(f"--seeds {text!r} must list whole numbers >= 0, e.g. 0,1")
    return found


def _run_seeds(plan, seeds: list[int], out: Path, resume: bool, force: bool, nproc: int, json_out: bool) -> None:
    from studio.core.compress.seeds import run_seeds

    one_process_only(nproc, "--seeds")
    summary = run_job(lambda job: run_seeds(plan, out, seeds, resume, job, force), json_out)
    if json_out:
        print_json(summary)
    else:
        stdout.print((out / "compress_report.md").read_text(), highlight=False)
