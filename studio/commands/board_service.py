"""`studio board install|status|logs|uninstall`: a model kept running on the board as a service."""
from __future__ import annotations

from pathlib import Path

import typer

from deploy.board.agent.options import AGENT_OPTIONS
from studio.cli_options import checked, declared
from studio.cli_support import handles_errors, print_json, run_job, stdout
from studio.commands.board import ASK, JSON, PROJECT, TRUST, board_access
from studio.commands.board_deploy import BACKEND, SOURCE, check_model


@handles_errors
@checked(AGENT_OPTIONS, skip=("model",))
def install_cmd(
    name: str = typer.Argument(..., help="The board."),
    model: Path = typer.Argument(..., help="A deploy bundle folder (studio compress writes OUT/bundle) or an "
                                           "exported model with its sidecar."),
    source: str = SOURCE,
    workers: int = declared(AGENT_OPTIONS["workers"]),
    backend: str = BACKEND,
    conf: float = declared(AGENT_OPTIONS["conf"]),
    iou: float = declared(AGENT_OPTIONS["iou"]),
    loop: bool = declared(AGENT_OPTIONS["loop"]),
    project: str = PROJECT, trust: bool = TRUST, ask_password: bool = ASK, json_out: bool = JSON,
):
    """Keep MODEL running on the board as a service: it survives the host's disconnect and the board's reboot,
    restarts when it fails, and appends every result to PROJECT/service/results.jsonl on the board.

    Kept by systemd where the board runs it, else by the studio's supervisor (it says what restarts it at boot).
    Installing again replaces the service.

    Examples:\n
      studio board install rock5b out/compress/bundle --source camera:0 --workers 3\n
      studio board status rock5b                # running? how many results so far?\n
      studio board stream rock5b --service      # watch it from here (it keeps running after)\n
      studio board uninstall rock5b
    """
    from deploy.board.remote_run import RunOptions
    from studio.core.board import install_service

    model = check_model(model, backend)
    opts = RunOptions(source=source, backend=backend, workers=workers, conf=conf, iou=iou, loop=loop)
    access = board_access(name, trust, ask_password)
    status = run_job(lambda job: install_service(access, model, opts, project, job), json_out)
    if json_out:
        print_json(status)
        return
    _show_status(name, status)


def _show_status(name: str, status: dict) -> None:
    if not status["installed"]:
        stdout.print(f"no service is installed on {name} (studio board install {name} BUNDLE --source ...)",
                     highlight=False)
        return
    kept = {"supervisor": "the studio's supervisor", "systemd-user": f"systemd user unit {status['unit']}"}.get(
        status["manager"], f"systemd unit {status['unit']}")
    state = "running" if status["running"] else f"not running ({status['error'] or status['agent_state']})"
    stdout.print(f"{name}: {Path(status['model']).name} on {status['source']}: {state}, kept by {kept}; "
                 f"{status['results_written']} result(s) in {status['results']}"
                 + (f", restarted {status['restarts']} time(s)" if status.get("restarts") else ""), highlight=False)
    for note in status.get("notes", []):
        stdout.print(f"note: {note}", highlight=False)


@handles_errors
def status_cmd(name: str = typer.Argument(..., help="The board."), project: str = PROJECT, trust: bool = TRUST,
               ask_password: bool = ASK, json_out: bool = JSON):
    """Whether the board's service runs, how it is kept, and how many results it has written.

    Example: studio board status rock5b --json
    """
    from deploy.board.service import service_status
    from studio.core.board import on_service

    status = on_service(board_access(name, trust, ask_password), project, service_status)
    if json_out:
        print_json(status)
    else:
        _show_status(name, status)


@handles_errors
def logs_cmd(name: str = typer.Argument(..., help="The board."),
             lines: int = typer.Option(40, min=1, help="How many of the last lines."),
             project: str = PROJECT, trust: bool = TRUST, ask_password: bool = ASK):
    """The last lines of the service's log on the board (the agent's and its supervisor's output).

    Example: studio board logs rock5b --lines 100
    """
    from deploy.board.service import service_logs
    from studio.core.board import on_service

    text = on_service(board_access(name, trust, ask_password), project,
                      lambda board, folder: service_logs(board, folder, lines))
    stdout.print(text.rstrip(), highlight=False, markup=False)


@handles_errors
def uninstall_cmd(name: str = typer.Argument(..., help="The board."), project: str = PROJECT, trust: bool = TRUST,
                  ask_password: bool = ASK, json_out: bool = JSON):
    """Stop the board's service and remove it (its unit or cron line, and PROJECT/service with its results).

    Example: studio board uninstall rock5b
    """
    from deploy.board.service import uninstall_service
    from studio.core.board import on_service

    removed = on_service(board_access(name, trust, ask_password), project, uninstall_service)
    if json_out:
        print_json(removed)
    else:
        stdout.print(f"removed the service from {name} ({removed['removed']})", highlight=False)
