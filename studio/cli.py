"""The `studio` command: every subcommand is a thin wrapper around one core function.

`studio --help` leads with the main job (demo -> compress -> board); the other commands are the
steps it is made of, for scripts and for people who want one step at a time.
"""
from __future__ import annotations

import typer

from studio.cli_support import OneLineErrors
from studio.commands import (
    bench,
    board,
    board_deploy,
    board_eval,
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

MAIN, STEPS, DATA, MORE = "The main job", "Compression, one step at a time", "Data and models", "More"
app = typer.Typer(
    help="Edge Deploy Studio: take a YOLO detector from training to a Rockchip NPU board.\n\n"
    "Start here:\n\n"
    "  studio demo                          # the whole job on bundled data and models (about 6 min)\n\n"
    "  studio compress --recipe my.yaml --out out/compress   # your model compressed to int8, in OUT/bundle\n\n"
    "  studio board add rock5b --host 192.168.1.50 --user rock --key ~/.ssh/id_ed25519\n\n"
    "  studio board install rock5b out/compress/bundle --source camera:0   # keeps running on the board\n\n"
    "  studio gui                           # the same in windows: the compress-and-deploy wizard\n\n"
    "Your own dataset and model, step by step: docs/your-own-model.md. Every command has --help with examples.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    cls=OneLineErrors,
)
models_app = typer.Typer(help="Load and describe detectors (.pt, .yaml, .onnx, .rknn).", no_args_is_help=True)
data_app = typer.Typer(help="Datasets: import (COCO, VOC, DOTA, YOLO), check, tile, synthesize.",
                       no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks, as ratios measured in one run (--json for scripts).", no_args_is_help=True)

app.command("demo", rich_help_panel=MAIN)(demo.demo)
app.command("compress", rich_help_panel=MAIN)(compress.compress_cmd)
app.add_typer(board.board_app, name="board", rich_help_panel=MAIN)
app.command("gui", rich_help_panel=MAIN)(gui.gui)
app.add_typer(data_app, name="data", rich_help_panel=DATA)
app.add_typer(models_app, name="models", rich_help_panel=DATA)
app.command("train", rich_help_panel=DATA)(training.train_cmd)
app.command("export", rich_help_panel=DATA)(export.export)
app.command("predict", rich_help_panel=DATA)(running.predict_cmd)
app.command("eval", rich_help_panel=DATA)(running.eval_cmd)
app.command("prune", rich_help_panel=STEPS)(compress.prune_cmd)
app.command("distill", rich_help_panel=STEPS)(compress.distill_cmd)
app.command("qat", rich_help_panel=STEPS)(quantize.qat_cmd)
app.command("compare", rich_help_panel=STEPS)(compress.compare_cmd)
app.command("sweep", rich_help_panel=STEPS)(sweep.sweep_cmd)
app.add_typer(bench_app, name="bench", rich_help_panel=MORE)
app.command("assets", rich_help_panel=MORE)(training.assets_cmd)

models_app.command("inspect")(models.models_inspect)
data_app.command("import")(data.data_import)
data_app.command("stats")(data.data_stats)
data_app.command("tile")(data.data_tile)
data_app.command("synth")(data.data_synth)
bench_app.command("postprocess")(bench.bench_postprocess_cmd)
bench_app.command("pipeline")(bench.bench_pipeline_cmd)
bench_app.command("import")(bench.bench_import_cmd)
bench_app.command("merge")(bench.bench_merge_cmd)
bench_app.command("why-obb")(bench.bench_why_obb_cmd)
bench_app.command("scene")(bench.bench_scene_cmd)
bench_app.command("gui-startup")(bench.bench_gui_startup_cmd)
board.board_app.command("push")(board_deploy.push_cmd)
board.board_app.command("run")(board_deploy.run_cmd)
board.board_app.command("bench")(board_deploy.bench_cmd)
board.board_app.command("eval")(board_eval.eval_cmd)
board.board_app.command("install")(board_service.install_cmd)
board.board_app.command("status")(board_service.status_cmd)
board.board_app.command("logs")(board_service.logs_cmd)
board.board_app.command("uninstall")(board_service.uninstall_cmd)


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


def _ultralytics_settings_exist() -> bool:
    """Whether ultralytics has written its settings file on this machine already (where it looks first)."""
    import os
    import sys
    import tempfile
    from pathlib import Path

    if os.getenv("YOLO_CONFIG_DIR"):
        base = Path(os.environ["YOLO_CONFIG_DIR"]).expanduser()
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif sys.platform == "win32":
        base = Path.home() / "AppData" / "Roaming"
    else:
        base = Path(os.getenv("XDG_CONFIG_HOME", Path.home() / ".config"))
    fallback = Path(tempfile.gettempdir()) / f"Ultralytics-{os.getuid()}" if hasattr(os, "getuid") else None
    return any(p is not None and (p / "settings.json").is_file() for p in (base / "Ultralytics", fallback))


def _quiet_ultralytics_first_run() -> None:
    """With --json, stdout must hold only the JSON: ultralytics announces, on stdout, the settings file
    it creates the first time it is imported on a machine; import it now with stdout sent to stderr. Only
    then: importing it (and torch) costs a second and about 600 MB, which a command that never uses it
    (predict, a board, a bench) should not pay."""
    import contextlib
    import sys

    if _ultralytics_settings_exist():
        return
    with contextlib.redirect_stdout(sys.stderr):
        import ultralytics.utils  # noqa: F401


def main() -> None:
    import sys

    if "--json" in sys.argv[1:]:
        _quiet_ultralytics_first_run()
    app()


if __name__ == "__main__":
    main()
