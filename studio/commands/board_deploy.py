"""`studio board push|run|bench` on one board, several (a,b) or a group (@shelf), all at once."""
from __future__ import annotations

import getpass
import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import typer

from deploy.board.agent.options import AGENT_OPTIONS
from deploy.errors import UserError
from studio.cli_options import checked, declared
from studio.cli_support import fail, handles_errors, print_json, run_job, stdout
from studio.commands.board import ASK, JSON, PROJECT, TRUST

DETACHED_IDLE_EXIT_S = 300.0  # a detached agent waits longer for a host to come and watch
BOARDS = typer.Argument(..., help="A board, several (a,b) or a group (@shelf: studio board group).")
SOURCE = declared(AGENT_OPTIONS["source"], help="On the board: camera:N, a video, an image folder or glob.")
BACKEND = declared(AGENT_OPTIONS["backend"], help="rknnlite (the NPU) | ort (ONNX Runtime on the board's CPU).")


def _accesses(spec: str, trust: bool, ask_password: bool) -> list:
    """One Access per board; a password is asked once for all of them, before any progress display."""
    from deploy.board.profiles import BoardStore
    from studio.core.board import Access
    from studio.core.board_fleet import resolve_boards

    names = resolve_boards(spec, BoardStore())
    password = getpass.getpass(f"SSH password for {', '.join(names)}: ") if ask_password else None
    return [Access(name, trust=trust, password=password) for name in names]


def _on_boards(accesses: list, work: Callable, json_out: bool) -> list:
    from studio.core.board_fleet import on_each_board

    by_name = {a.board: a for a in accesses}
    return run_job(lambda job: on_each_board(list(by_name), lambda board, j: work(by_name[board], j), job),
                   json_out, parallel=len(accesses) > 1)


def _fail_if_any(outcomes: list) -> None:
    """One board: its error as the command's (exit 2 or 3). Several: a line per failed board, exit 2 or 3."""
    failed = [o for o in outcomes if o.error]
    if len(outcomes) == 1 and failed:
        raise fail(failed[0].error, failed[0].code)
    for outcome in failed:
        fail(outcome.error)
    if failed:
        raise typer.Exit(max(o.code for o in failed))


def _report(outcomes: list, json_out: bool, show: Callable, as_json: Callable = lambda r: r.to_dict()) -> None:
    """Each board's result (one board: as before, several: a list), then the failures."""
    ok = [o for o in outcomes if not o.error]
    if json_out and len(outcomes) == 1 and ok:
        print_json(as_json(ok[0].result))
    elif json_out and len(outcomes) > 1:
        print_json({"boards": [dict(o.to_dict(), result=as_json(o.result) if o.result is not None else None)
                               for o in outcomes]})
    elif not json_out:
        for outcome in ok:
            show(outcome.board, outcome.result)
    _fail_if_any(outcomes)


def check_model(model: Path, backend: str) -> Path:
    """The model file to run with `backend`: MODEL itself, or the right one of a deploy bundle folder."""
    from studio.core.bundle import bundle_model

    if backend not in ("rknnlite", "ort"):
        raise UserError(f"--backend {backend!r}: the board runs rknnlite or ort")
    model = bundle_model(model, backend)
    expected = ".rknn" if backend == "rknnlite" else ".onnx"
    if model.suffix != expected:
        other = "--backend ort" if model.suffix == ".onnx" else "--backend rknnlite" if model.suffix == ".rknn" \
            else "an exported .rknn or .onnx model"
        raise UserError(f"--backend {backend} runs a {expected} model, not {model.name}; use {other}")
    return model


@handles_errors
def push_cmd(boards: str = BOARDS,
             model: Path = typer.Argument(..., help="An exported model with its sidecar, or a deploy bundle folder."),
             project: str = PROJECT, trust: bool = TRUST, ask_password: bool = ASK, json_out: bool = JSON):
    """Copy the runtime, the agent and MODEL to the board(s); only what changed travels; an interrupted push resumes.

    Examples:\n
      studio board push rock5b out/compress/bundle\n
      studio board push @shelf out/compress/bundle      # every board of the group at once
    """
    from studio.core.board import push_model
    from studio.core.bundle import bundle_model

    model = bundle_model(model)
    outcomes = _on_boards(_accesses(boards, trust, ask_password),
                          lambda access, job: push_model(access, model, project, job), json_out)

    def show(board, r) -> None:
        stdout.print(f"pushed to {board}:{r.project_dir}: {len(r.sent)} file(s), {r.bytes_sent} bytes sent, "
                     f"{r.unchanged} unchanged; runtime {r.runtime_version}", highlight=False)

    _report(outcomes, json_out, show)


@handles_errors
@checked(AGENT_OPTIONS, skip=("model",))
def run_cmd(
    boards: str = BOARDS,
    model: Path = typer.Argument(..., help="The exported model (.rknn for the NPU; .onnx with --backend ort), or a "
                                           "deploy bundle folder (studio compress writes OUT/bundle)."),
    source: str = SOURCE,
    workers: int = declared(AGENT_OPTIONS["workers"]),
    backend: str = BACKEND,
    conf: float = declared(AGENT_OPTIONS["conf"]),
    iou: float = declared(AGENT_OPTIONS["iou"]),
    max_frames: int | None = declared(AGENT_OPTIONS["max_frames"], "--frames"),
    jpeg_quality: int = declared(AGENT_OPTIONS["jpeg_quality"], "--jpeg",
                                 help="Also send each frame home as JPEG of this quality (0: detections only)."),
    loop: bool = declared(AGENT_OPTIONS["loop"]),
    tile: int | None = declared(AGENT_OPTIONS["tile"], help="Cut large images (a GeoTIFF on the board: read by "
                                "windows where rasterio is installed there) into tiles of this size."),
    overlap: float = declared(AGENT_OPTIONS["overlap"]),
    features: Path | None = typer.Option(None, help="With --tile, one board: folder for each scene's map features "
                                         "(.gpkg and .geojson, georeferenced on the board; see studio predict)."),
    detach: bool = typer.Option(False, "--detach", help="Start it and return; watch with studio board stream."),
    project: str = PROJECT, trust: bool = TRUST, ask_password: bool = ASK,
    json_out: bool = typer.Option(False, "--json", help="JSON lines: one per frame (with its board when several), "
                                                        "then a summary."),
):
    """Push if needed, start the agent on the board(s) and stream detections home; Ctrl-C stops them there too.

    Examples:\n
      studio board run rock5b out/compress/bundle --source camera:0 --workers 3\n
      studio board run rock5b out/compress/bundle --source /data/scenes --frames 200 --json\n
      studio board run @shelf out/compress/bundle --source /data/scenes --frames 500\n
      studio board run rock5b obb.rknn --source /data/scene.tif --tile 640 --features out/map
    """
    from deploy.board.remote_run import RunOptions
    from studio.core.board import push_model, start_run, stream_run

    model = check_model(model, backend)
    accesses = _accesses(boards, trust, ask_password)
    several = len(accesses) > 1
    if features and (several or detach or not tile):
        raise UserError("--features writes the scenes of a tiled run streamed from one board: give --tile and one "
                        "board, without --detach")
    idle_exit = DETACHED_IDLE_EXIT_S if detach else AGENT_OPTIONS.default("idle_exit")
    opts = RunOptions(source=source, backend=backend, workers=workers, conf=conf, iou=iou, jpeg_quality=jpeg_quality,
                      max_frames=max_frames, loop=loop, idle_exit=idle_exit, tile=tile, overlap=overlap)
    lock = threading.Lock()

    def printer(board: str):
        def show(dets, hello: dict) -> None:
            if json_out:
                line = dets.to_dict(hello.get("names"))
                with lock:
                    sys.stdout.write(json.dumps({"board": board, **line} if several else line) + "\n")
                    sys.stdout.flush()
        return show

    def work(access, job):
        run = start_run(access, push_model(access, model, project, job), opts)
        if detach:
            return run
        if features:
            return _stream_features(access, run, features, printer(access.board), job)
        return stream_run(access, run, printer(access.board), job)  # with --frames the agent ends by itself

    outcomes = _on_boards(accesses, work, json_out)
    if detach:
        _report(outcomes, json_out, lambda board, run: stdout.print(
            f"agent {run.run_id} running on {board} (pid {run.pid}); watch: studio board stream {board}; "
            f"stop: studio board stop {board}", highlight=False))
        return
    if not json_out:
        _report(outcomes, False, _show_summary)
        return
    if several:  # the frames went out as JSON lines: the summary is the last line
        print_json({"summaries": [o.to_dict() for o in outcomes]}, one_line=True)
    elif not outcomes[0].error:
        print_json({"summary": outcomes[0].result.to_dict()}, one_line=True)
    _fail_if_any(outcomes)


def _stream_features(access, run, folder: Path, show: Callable, job):
    """stream_run, each scene also written as map features into `folder` (whole at the end, or not at all)."""
    from deploy.runtime.output import Output
    from studio.core.board import stream_run
    from studio.core.map_features import FeatureSink

    with Output(folder) as staging:
        sink: list = []

        def on_result(dets, hello: dict) -> None:
            if not sink:  # the class names come with the agent's hello
                sink.append(FeatureSink(staging, list(hello.get("names") or [])))
            sink[0].write(dets)
            show(dets, hello)
        summary = stream_run(access, run, on_result, job)
    summary.features = [{**f, **{k: str(folder / Path(f[k]).name) for k in ("gpkg", "geojson")}}
                        for f in (sink[0].written if sink else [])]
    return summary


def _show_summary(board: str, summary) -> None:
    agent = summary.agent or {}
    stdout.print(f"{board}: {summary.frames} frame(s), {summary.detections} detections, {summary.fps:.1f} frames/s "
                 "received" + (f"; on the board {agent.get('fps')} frames/s, stages ms {agent.get('stage_ms')}"
                               if agent else "")
                 + (f"; {summary.reconnects} reconnect(s)" if summary.reconnects else ""), highlight=False)
    for written in summary.features:
        stdout.print(f"{written['objects']} objects as map features: {written['geojson']}, {written['gpkg']} "
                     f"({written['coordinates']})", highlight=False)


@handles_errors
def bench_cmd(
    boards: str = BOARDS,
    model: Path = typer.Argument(..., help="The exported model (.rknn for the NPU; .onnx with --backend ort), or a "
                                           "deploy bundle folder (studio compress writes OUT/bundle)."),
    source: str = typer.Option(..., help="Images or a video on the board (read in a loop until --frames)."),
    workers: str = typer.Option("1,2,3", help="Worker counts to measure, comma-separated (NPU core i % 3 each)."),
    frames: int = typer.Option(200, help="Frames per worker count."),
    backend: str = typer.Option("rknnlite", help="rknnlite (the NPU) | ort (the board's CPU)."),
    report: Path | None = typer.Option(None, help="Also write bench.json, bench.md and latency.png (latency "
                                                  "against throughput) into this folder."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --report folder."),
    project: str = PROJECT, trust: bool = TRUST, ask_password: bool = ASK, json_out: bool = JSON,
):
    """Frames/s with latency (p50/p95/p99, read to result) and per-stage ms on the board(s) for 1, 2, 3 workers.

    Published RK3588 speeds time inference alone; here each frame is timed from reading it to its
    result, with the wait in the queue and inference per worker (NPU core i % 3) apart.

    Example:\n
      studio board bench rock5b out/compress/bundle --source /data/scenes --workers 1,2,3 --report out/bench
    """
    from deploy.runtime.output import Output
    from studio.core.board import BenchRequest, bench_board
    from studio.core.throughput_report import HEADERS, rows, write_report

    try:
        counts = tuple(int(w) for w in workers.split(","))
    except ValueError:
        raise UserError(f"--workers {workers!r}: comma-separated counts, e.g. 1,2,3") from None
    model = check_model(model, backend)
    written = Output(report, force=force) if report else None
    if written:
        written.check()  # before the boards work, not after
    outcomes = _on_boards(_accesses(boards, trust, ask_password), lambda access, job: bench_board(
        access, BenchRequest(access.board, model, source, counts, frames, backend, project), job), json_out)
    finished = {o.board: o.result for o in outcomes if not o.error}
    if written and finished:
        with written as staging:
            write_report(finished, staging)

    def show(board, result) -> None:
        stdout.print(f"{result['model']} on {board}, {result['measured']}, {frames} frames each:", highlight=False)
        stdout.print("  " + " | ".join(HEADERS), highlight=False)
        for row, run in zip(rows(result["runs"]), result["runs"]):
            stdout.print("  " + " | ".join(str(v) for v in row), highlight=False)
            stages = ", ".join(f"{k} {v:.2f}" for k, v in (run["stage_ms"] or {}).items())
            stdout.print(f"    ms per frame: {stages}", highlight=False)
        if report:
            stdout.print(f"  report: {report / 'bench.md'}", highlight=False)

    _report(outcomes, json_out, show, as_json=lambda result: result)
