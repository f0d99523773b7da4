"""The `studio` command: every subcommand is a thin wrapper around one core function.

    studio models inspect yolov8n.yaml --imgsz 512
    studio data synth --out data/synth --images 1500 --size 320
    studio train yolov8n.yaml --data data/synth/data.yaml --epochs 60 --imgsz 320
    studio export best.pt --format rknn --platform rk3588 --quant int8 --calib images/ --report
    studio predict student.onnx scene.png --tile 320
    studio eval best.pt --data data/synth/data.yaml
    studio prune best.pt --data data/synth/data.yaml --target-flops 0.5 --finetune-epochs 5
    studio demo
"""
from __future__ import annotations

import typer

from studio.cli_support import OneLineErrors
from studio.commands import (
    bench,
    board,
    board_deploy,
    board_service,
    compress,
    data,
    demo,
    export,
    gui,
    models,
    quantize,
    running,
    sweep,
    training,
)

app = typer.Typer(
    help="Edge Deploy Studio: take a YOLO detector from training to a Rockchip NPU board.\n\n"
    "Typical flow: data synth -> train -> export (ONNX + RKNN with a verification report) -> predict / eval.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    cls=OneLineErrors,
)
models_app = typer.Typer(help="Load and describe detectors (.pt, .yaml, .onnx).", no_args_is_help=True)
data_app = typer.Typer(help="Datasets: synthesize, import, check and tile.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks, as ratios measured in one run (--json for scripts).", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")
app.add_typer(board.board_app, name="board")

models_app.command("inspect")(models.models_inspect)
data_app.command("synth")(data.data_synth)
data_app.command("import")(data.data_import)
data_app.command("stats")(data.data_stats)
data_app.command("tile")(data.data_tile)
app.command("train")(training.train_cmd)
app.command("export")(export.export)
app.command("prune")(compress.prune_cmd)
app.command("distill")(compress.distill_cmd)
app.command("compare")(compress.compare_cmd)
app.command("qat")(quantize.qat_cmd)
app.command("compress")(compress.compress_cmd)
app.command("sweep")(sweep.sweep_cmd)
app.command("predict")(running.predict_cmd)
app.command("eval")(running.eval_cmd)
app.command("demo")(demo.demo)
app.command("assets")(training.assets_cmd)
bench_app.command("postprocess")(bench.bench_postprocess_cmd)
bench_app.command("pipeline")(bench.bench_pipeline_cmd)
bench_app.command("import")(bench.bench_import_cmd)
bench_app.command("merge")(bench.bench_merge_cmd)
bench_app.command("gui-startup")(bench.bench_gui_startup_cmd)
board.board_app.command("push")(board_deploy.push_cmd)
board.board_app.command("run")(board_deploy.run_cmd)
board.board_app.command("bench")(board_deploy.bench_cmd)
board.board_app.command("install")(board_service.install_cmd)
board.board_app.command("status")(board_service.status_cmd)
board.board_app.command("logs")(board_service.logs_cmd)
board.board_app.command("uninstall")(board_service.uninstall_cmd)
app.command("gui")(gui.gui)


def _check_every_command(*apps: typer.Typer) -> None:
    """Every command's numeric values are checked against the one range table before it starts work
    (a bad value is one line and exit code 2, never a traceback or an ignored nan)."""
    from studio.cli_options import checked
    from studio.cli_support import handles_errors
    from studio.core.ranges import RANGES

    for typer_app in apps:
        for info in typer_app.registered_commands:
            info.callback = handles_errors(checked(RANGES)(info.callback))


_check_every_command(app, models_app, data_app, bench_app, board.board_app)


def _quiet_ultralytics_first_run() -> None:
    """With --json, stdout must hold only the JSON: ultralytics announces, on stdout, the settings file
    it creates the first time it is imported on a machine; import it now with stdout sent to stderr."""
    import contextlib
    import sys

    with contextlib.redirect_stdout(sys.stderr):
        import ultralytics.utils  # noqa: F401


def main() -> None:
    import sys

    if "--json" in sys.argv[1:]:
        _quiet_ultralytics_first_run()
    app()


if __name__ == "__main__":
    main()
