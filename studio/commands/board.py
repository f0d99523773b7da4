"""`studio board ...`: profiles, check, push, run, stream and stop, all over SSH with checked host keys."""
from __future__ import annotations

import getpass
from pathlib import Path

import typer

from deploy.errors import UserError
from studio.cli_support import handles_errors, print_json, run_job, stdout

board_app = typer.Typer(help="RK3588 boards over SSH: add, check, push, run, stream; install a service.",
                        no_args_is_help=True)

TRUST = typer.Option(False, "--trust", help="Trust the board's host key if it is new (compare its fingerprint first).")
ASK = typer.Option(False, "--ask-password", help="Ask for the SSH password once (never stored); default: keys/agent.")
PROJECT = typer.Option("studio", help="Folder on the board for this project's runtime, models and runs.")
JSON = typer.Option(False, "--json", help="Print JSON.")


def board_access(name: str, trust: bool, ask_password: bool):
    from studio.core.board import Access

    password = getpass.getpass(f"SSH password for board {name}: ") if ask_password else None
    return Access(name, trust=trust, password=password)


@board_app.command("add")
@handles_errors
def add_cmd(
    name: str = typer.Argument(..., help="A short name for the board (used by every other board command)."),
    host: str = typer.Option(..., help="Host name or IP address."),
    user: str = typer.Option(..., help="Login user on the board."),
    port: int = typer.Option(22, help="SSH port."),
    key: Path | None = typer.Option(None, help="Private key file (default: ssh-agent and ~/.ssh keys)."),
    python: str = typer.Option("python3", help="The board's Python (a venv's python works)."),
    root: str = typer.Option("~/edge-deploy-studio", help="Folder on the board for everything the studio pushes."),
    replace: bool = typer.Option(False, "--replace", help="Change an existing board."),
):
    """Remember a board. No password is stored: use keys or ssh-agent (or --ask-password per run).

    Example:\n
      studio board add rock5b --host 192.168.1.42 --user radxa --key ~/.ssh/id_ed25519\n
      studio board check rock5b --trust      # first time: compare and trust its host key
    """
    from deploy.board.profiles import BoardProfile, BoardStore

    store = BoardStore()
    store.add(BoardProfile(name, host, user, port, str(key) if key else None, python, root), replace=replace)
    stdout.print(f"added board {name} ({user}@{host}:{port}); next: studio board check {name} --trust",
                 highlight=False)


@board_app.command("list")
@handles_errors
def list_cmd(json_out: bool = JSON):
    """The boards this studio knows.

    Example: studio board list --json
    """
    from dataclasses import asdict

    from deploy.board.profiles import BoardStore
    from studio.core.board_fleet import load_groups

    store = BoardStore()
    boards, groups = store.load(), load_groups(store)
    if json_out:
        print_json({"boards": {name: asdict(p) for name, p in boards.items()}, "groups": groups})
        return
    for p in boards.values():
        stdout.print(f"{p.name}\t{p.address}\tkey={p.key or 'agent/~/.ssh'}\tpython={p.python}", highlight=False)
    for group, members in groups.items():
        stdout.print(f"@{group}\t{', '.join(members)}", highlight=False)
    if not boards:
        stdout.print("no boards yet: studio board add NAME --host HOST --user USER", highlight=False)


@board_app.command("group")
@handles_errors
def group_cmd(name: str = typer.Argument(..., help="The group's name (use it as @name)."),
              boards: list[str] = typer.Argument(None, help="Its boards; none: show the group."),
              remove: bool = typer.Option(False, "--remove", help="Delete the group (its boards stay).")):
    """Name a set of boards, then push, run or bench them all at once as @name.

    Example:\n
      studio board group shelf rock5b-1 rock5b-2 rock5b-3\n
      studio board push @shelf out/compress/bundle
    """
    from deploy.board.profiles import BoardStore
    from studio.core.board_fleet import load_groups, save_group

    store = BoardStore()
    if remove or boards:
        save_group(store, name, [] if remove else boards)
        stdout.print(f"removed group @{name}" if remove else f"@{name}: {', '.join(boards)}", highlight=False)
        return
    groups = load_groups(store)
    if name not in groups:
        raise UserError(f"no group named @{name}; make one with: studio board group {name} BOARD BOARD ...")
    stdout.print(f"@{name}: {', '.join(groups[name])}", highlight=False)


@board_app.command("remove")
@handles_errors
def remove_cmd(name: str = typer.Argument(...)):
    """Forget a board's profile (its trusted host key stays until forget-key).

    Example: studio board remove rock5b
    """
    from deploy.board.profiles import BoardStore

    BoardStore().remove(name)
    stdout.print(f"removed board {name}", highlight=False)


@board_app.command("forget-key")
@handles_errors
def forget_key_cmd(name: str = typer.Argument(...)):
    """Forget a board's trusted host key (after it was reinstalled); the next check asks to trust the new one.

    Example: studio board forget-key rock5b
    """
    from deploy.board.profiles import BoardStore
    from deploy.board.ssh import forget_host_key

    store = BoardStore()
    found = forget_host_key(store.get(name), store.known_hosts)
    stdout.print(f"{'forgot' if found else 'there was no'} trusted host key for {name}", highlight=False)


@board_app.command("check")
@handles_errors
def check_cmd(name: str = typer.Argument(...), trust: bool = TRUST, ask_password: bool = ASK, json_out: bool = JSON):
    """OS, CPU, memory, disk, Python, NPU driver and load, runtime versions; and how to fix what is missing.

    Example: studio board check rock5b --trust
    """
    from deploy.board.check import check_board

    access = board_access(name, trust, ask_password)
    with access.open() as board:
        report = check_board(board)
    if json_out:
        print_json(report.to_dict())
        return
    for key, value in [("board", f"{report.board} ({report.address})")] + report.rows():
        stdout.print(f"{key:>19}  {value}", highlight=False)
    stdout.print(report.verdict(), highlight=False)


@board_app.command("doctor")
@handles_errors
def doctor_cmd(name: str = typer.Argument(...),
               model: Path | None = typer.Argument(None, help="The .rknn (or .onnx) you mean to run; its sidecar says "
                                                              "which toolkit and platform built it."),
               trust: bool = TRUST, ask_password: bool = ASK, json_out: bool = JSON):
    """Will this model run right on this board? Versions and NPU facts against a shipped compatibility table.

    One line per finding with its fix and its public source. Exit codes: 0 nothing blocks (warnings
    may remain), 4 a finding blocks running the model, 2 a bad input, 3 the board is unreachable.

    Examples:\n
      studio board doctor rock5b exports/best.rknn     # after "Invalid RKNN model version" or odd results\n
      studio board doctor rock5b --json                # the NPU path in general, for scripts
    """
    from deploy.board.check import check_board
    from deploy.board.doctor import EXIT_BLOCKED, diagnose, model_facts

    facts = model_facts(model) if model else None
    with board_access(name, trust, ask_password).open() as board:
        report = check_board(board)
    findings = diagnose(report, facts)
    blocked = any(f.blocks for f in findings)
    if json_out:
        print_json({"board": report.to_dict(), "model": facts.__dict__ if facts else None,
                    "findings": [f.to_dict() for f in findings], "blocked": blocked})
    else:
        _print_doctor(report, facts, findings)
    if blocked:
        raise typer.Exit(EXIT_BLOCKED)


def _print_doctor(report, facts, findings) -> None:
    rows = [("board", f"{report.board} ({report.address})")] + [r for r in report.rows()
                                                                 if not r[0].startswith("missing")]
    if facts:
        rows.append(("model", f"{facts.name}: rknn-toolkit2 {facts.toolkit or '-'}, {facts.platform or '-'}"
                     if facts.backend == "rknnlite" else f"{facts.name}: ONNX Runtime"))
    for key, value in rows:
        stdout.print(f"{key:>19}  {value}", highlight=False)
    for f in findings:
        stdout.print(f"{'BLOCKS' if f.blocks else 'warns'}  {f.rule}: {f.says}", highlight=False)
        stdout.print(f"        fix: {f.fix}", highlight=False)
        for source in f.sources:
            stdout.print(f"        source: {source}", highlight=False)
    what = facts.name if facts else "the NPU path"
    blocking = sum(f.blocks for f in findings)
    stdout.print(f"{blocking} finding(s) block {what} on {report.board}" if blocking else
                 f"nothing blocks {what} on {report.board}" + (f" ({len(findings)} warning(s))" if findings else ""),
                 highlight=False)


@board_app.command("setup")
@handles_errors
def setup_cmd(name: str = typer.Argument(...),
              wheels: Path = typer.Option(..., help="Folder with .whl files for the board (rknn-toolkit-lite2, "
                                                    "numpy, ...) and optionally librknnrt.so."),
              trust: bool = TRUST, ask_password: bool = ASK, json_out: bool = JSON):
    """Provision an offline board from files you bring: wheels unpacked for the agent, librknnrt.so beside them.

    Needs no root, pip or network on the board; a wheel for another Python or CPU is refused.
    Examples:\n
      studio board setup rock5b --wheels ~/rk3588-wheels\n
      studio board check rock5b           # then: what is still missing
    """
    from deploy.board.check import check_board
    from deploy.board.setup import setup_board

    access = board_access(name, trust, ask_password)

    def work(job):
        job.stage("setup", None, f"on {name}")
        with access.open() as board:
            result = setup_board(board, wheels, lambda done, total, _: job.step("setup", done, total),
                                 job.cancel.check)
            return result, check_board(board)

    result, report = run_job(work, json_out)
    if json_out:
        print_json({"setup": result.to_dict(), "check": report.to_dict()})
        return
    stdout.print(f"unpacked {len(result.installed)} wheel(s) into {result.site}"
                 + (f"; librknnrt.so at {result.library}" if result.library else ""), highlight=False)
    for gap in report.missing:
        stdout.print(f"still missing {gap['part']}: {gap['fix']}", highlight=False)


def _stream(access, run, frames: int | None, json_out: bool, stop: bool = True) -> None:
    import json
    import sys

    from studio.core.board import stream_run

    def show(dets, hello: dict) -> None:
        if json_out:
            sys.stdout.write(json.dumps(dets.to_dict(hello.get("names"))) + "\n")
            sys.stdout.flush()

    summary = run_job(lambda job: stream_run(access, run, show, job, frames, stop_when_done=stop), json_out)
    if json_out:
        print_json({"summary": summary.to_dict()}, one_line=True)
        return
    agent = summary.agent or {}
    stdout.print(f"{summary.frames} frame(s), {summary.detections} detections, {summary.fps:.1f} frames/s received"
                 + (f"; on the board {agent.get('fps')} frames/s, stages ms {agent.get('stage_ms')}" if agent else "")
                 + (f"; {summary.reconnects} reconnect(s)" if summary.reconnects else ""), highlight=False)


@board_app.command("stream")
@handles_errors
def stream_cmd(name: str = typer.Argument(...), frames: int | None = typer.Option(None, help="Stop after this many."),
               stop: bool = typer.Option(False, "--stop", help="End the agent when the stream ends."),
               service: bool = typer.Option(False, "--service", help="Watch the board's service (studio board "
                                                                      "install) instead; it keeps running."),
               project: str = PROJECT, trust: bool = TRUST, ask_password: bool = ASK,
               json_out: bool = typer.Option(False, "--json", help="JSON lines: one per frame, then a summary.")):
    """Attach to the agent last started on the board (studio board run --detach), or to its service, and show
    its results.

    The agent keeps running after the stream ends (until `studio board stop`, or --stop), and stops by
    itself after five minutes without a host; a service runs on.

    Examples:\n
      studio board stream rock5b --frames 100 --json\n
      studio board stream rock5b --service
    """
    from deploy.board.profiles import BoardStore
    from studio.core.board import last_run, on_service

    access = board_access(name, trust, ask_password)
    if service:
        from deploy.board.service import service_run

        if stop:
            raise UserError("--stop ends a run, not a service: studio board uninstall ends a service")
        _stream(access, on_service(access, project, service_run), frames, json_out, stop=False)
        return
    _stream(access, last_run(BoardStore(), name), frames, json_out, stop)


@board_app.command("stop")
@handles_errors
def stop_cmd(name: str = typer.Argument(...), trust: bool = TRUST, ask_password: bool = ASK):
    """End the agent last started on the board (no process is left behind).

    Example: studio board stop rock5b
    """
    from deploy.board.profiles import BoardStore
    from studio.core.board import last_run, stop_run

    run = last_run(BoardStore(), name)
    stop_run(board_access(name, trust, ask_password), run)
    stdout.print(f"stopped agent {run.run_id} on {name}", highlight=False)
