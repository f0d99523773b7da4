"""A model that keeps running on the board: `studio board install|status|logs|uninstall`.

Where systemd runs (it owns /run/systemd/system) the agent becomes a unit that starts at boot and
restarts on failure: a system unit when the board user is root or may use sudo without a password,
else a user unit, which starts at boot only where lingering is on (install says so). Elsewhere the
studio's supervisor (deploy/board/agent/supervisor.py) keeps it running, started at boot by cron's
@reboot where the board has a crontab; install says when nothing would start it after a reboot.
The service's agent never stops for want of a host, appends every result to results.jsonl, and
serves the token-protected 127.0.0.1 port of a run, so `studio board stream BOARD --service` (and
the live panel) can watch it. Everything lives in PROJECT/service on the board.
"""
from __future__ import annotations

import dataclasses
import json
import posixpath
import re
import time
from dataclasses import dataclass

from deploy.board.agent.options import AGENT_OPTIONS, RunOptions
from deploy.board.push import PushResult
from deploy.board.remote_run import AgentRun, agent_env, log_tail, shell_env
from deploy.board.session import BoardError, BoardSession, quote

START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10


@dataclass(frozen=True)
class ServicePaths:
    """Where an installed service keeps its files on the board."""

    folder: str
    run_file: str  # the agent's port, pid, token and state (as for a run)
    results: str  # every result as a JSON line
    log: str  # the agent's (and the supervisor's) output
    status: str  # the supervisor's state
    start: str  # the script that starts the supervisor (cron's @reboot runs it too)
    manifest: str  # install.json: how the service is kept, its model and source
    unit_copy: str  # the systemd unit as installed


def paths_of(project_dir: str) -> ServicePaths:
    folder = posixpath.join(project_dir, "service")
    names = ("run.json", "results.jsonl", "service.log", "supervisor.json", "start.sh", "install.json", "unit.service")
    return ServicePaths(folder, *(posixpath.join(folder, name) for name in names))


def _pattern(path: str) -> str:
    """An extended regex matching `path` in a command line but not the pgrep/pkill command that holds it."""
    escaped = re.sub(r"([.\[\](){}*+?|^$\\])", r"\\\1", path[1:])
    return f"[{path[0]}]{escaped}"


def unit_name(project: str) -> str:
    return "edge-studio-" + re.sub(r"[^A-Za-z0-9_.-]", "-", project) + ".service"


def _systemd_word(word: str) -> str:
    """One ExecStart argument: specifiers (%) and variables ($) kept literal, quoted."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def unit_text(command: list[str], runtime_dir: str, env: dict[str, str], log: str, description: str,
              user: str | None) -> str:
    """The systemd unit: the agent in the runtime folder, its output appended to the log, restarted on failure.

    user: the board user for a system unit (started at boot by multi-user.target); None for a user unit."""
    description, runtime_dir, log = (text.replace("%", "%%") for text in (description, runtime_dir, log))
    lines = ["# written by studio board install", "[Unit]", f"Description={description}", "After=network.target", "",
             "[Service]", "Type=simple", *([f"User={user}"] if user else []), f"WorkingDirectory={runtime_dir}",
             "Environment=" + " ".join(_systemd_word(f"{k}={v}") for k, v in env.items()),
             "ExecStart=" + " ".join(_systemd_word(word) for word in command),
             f"StandardOutput=append:{log}", f"StandardError=append:{log}",
             "Restart=on-failure", "RestartSec=2", "TimeoutStopSec=10", "",
             "[Install]", f"WantedBy={'multi-user.target' if user else 'default.target'}", ""]
    return "\n".join(lines)


def manager(board: BoardSession) -> str:
    """How this board keeps a service: systemd (as root, or through sudo), systemd-user, or supervisor."""
    if board.run("test -d /run/systemd/system", check=False).code != 0:
        return "supervisor"
    if board.run("id -u").out.strip() == "0":
        return "systemd"
    if board.run("sudo -n true", check=False).code == 0:
        return "systemd-sudo"
    return "systemd-user"


def _systemctl(how: str) -> str:
    return {"systemd": "systemctl", "systemd-sudo": "sudo -n systemctl", "systemd-user": "systemctl --user"}[how]


def _unit_path(board: BoardSession, how: str, name: str) -> str:
    if how == "systemd-user":
        return posixpath.join(board.home, ".config", "systemd", "user", name)
    return posixpath.join("/etc/systemd/system", name)


def _write(board: BoardSession, path: str, text: str, mode: int = 0o644) -> None:
    with board.sftp.open(path + ".part", "w") as f:
        f.write(text)
    board.sftp.chmod(path + ".part", mode)
    board.sftp.posix_rename(path + ".part", path)


def _start_script(board: BoardSession, pushed: PushResult, paths: ServicePaths, agent_args: list[str]) -> str:
    supervisor = [board.profile.python, "-s", "-m", "deploy.board.agent.supervisor", "--status", paths.status, "--",
                  *agent_args]
    return "\n".join(["#!/bin/sh", "# written by studio board install: starts the service (and cron's @reboot does)",
                      f"cd {quote(pushed.runtime_dir)} || exit 1",
                      f"{shell_env(agent_env(board, pushed.runtime_dir))} nohup setsid {quote(*supervisor)} "
                      f">> {quote(paths.log)} 2>&1 < /dev/null &", "echo $!", ""])


def install_service(board: BoardSession, pushed: PushResult, opts: RunOptions, project: str) -> dict:
    """Set the pushed model up as a service and start it; an earlier service of the project is replaced."""
    paths = paths_of(pushed.project_dir)
    if board.run(f"test -f {quote(paths.manifest)}", check=False).code == 0:
        uninstall_service(board, pushed.project_dir)
    values = {**dataclasses.asdict(opts), "model": pushed.model, "run_file": paths.run_file, "idle_exit": 0,
              "results": paths.results}
    agent_args = AGENT_OPTIONS.argv(values)
    how, name = manager(board), unit_name(project)
    board.run(f"mkdir -p {quote(paths.folder)} && rm -f {quote(paths.run_file)}")
    notes = []
    if how == "supervisor":
        _write(board, paths.start, _start_script(board, pushed, paths, agent_args), 0o755)
        board.run(f"sh {quote(paths.start)}")
        notes.append(_at_reboot(board, paths.start))
    else:
        command = [board.profile.python, "-s", "-m", "deploy.board.agent", *agent_args]
        text = unit_text(command, pushed.runtime_dir, agent_env(board, pushed.runtime_dir), paths.log,
                         f"Edge Deploy Studio: {posixpath.basename(pushed.model)} on {opts.source}",
                         None if how == "systemd-user" else board.profile.user)
        _write(board, paths.unit_copy, text)
        unit = _unit_path(board, how, name)
        sudo = "sudo -n " if how == "systemd-sudo" else ""
        board.run(f"{sudo}mkdir -p {quote(posixpath.dirname(unit))} && {sudo}cp {quote(paths.unit_copy)} "
                  f"{quote(unit)} && {_systemctl(how)} daemon-reload && {_systemctl(how)} enable --now {name}")
        if how == "systemd-user" and board.run("loginctl enable-linger", check=False).code != 0:
            notes.append("a user unit starts at boot only with lingering on: ask the board's admin for "
                         f"`loginctl enable-linger {board.profile.user}`")
    manifest = {"manager": how, "unit": name if how != "supervisor" else None, "model": pushed.model,
                "source": opts.source, "backend": opts.backend, "workers": opts.workers, "results": paths.results,
                "log": paths.log, "runtime_dir": pushed.runtime_dir, "notes": [n for n in notes if n]}
    _write(board, paths.manifest, json.dumps(manifest, indent=2) + "\n")
    _wait_until_serving(board, paths)
    return service_status(board, pushed.project_dir)


def _at_reboot(board: BoardSession, start: str) -> str:
    """Have cron start the service at boot; what to tell the user when the board has no crontab."""
    if board.run("command -v crontab", check=False).code != 0:
        return ("this board runs neither systemd nor cron: the service runs until the board restarts; install it "
                "again after a reboot")
    line = f"@reboot sh {quote(start)}"
    board.run(f"( crontab -l 2>/dev/null | grep -vF {quote(start)}; echo {quote(line)} ) | crontab -")
    return ""


def _read_json(board: BoardSession, path: str) -> dict | None:
    try:
        with board.sftp.open(path) as f:
            return json.loads(f.read().decode())
    except (OSError, ValueError):
        return None


def _wait_until_serving(board: BoardSession, paths: ServicePaths) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        state = _read_json(board, paths.run_file) or {}
        if state.get("state") == "running":
            return
        if state.get("state") == "failed":
            break
        time.sleep(0.2)
    raise BoardError(f"{board.profile.name}: the service did not start: {log_tail(board, paths.log)} "
                     f"(studio board logs {board.profile.name})")


def service_status(board: BoardSession, project_dir: str) -> dict:
    """Installed or not, how it is kept, whether its agent runs, and what it has written so far."""
    paths = paths_of(project_dir)
    manifest = _read_json(board, paths.manifest)
    if manifest is None:
        return {"installed": False}
    run = _read_json(board, paths.run_file) or {}
    pid = run.get("pid")
    alive = bool(pid) and paths.run_file in board.run(
        f"tr '\\000' ' ' < /proc/{int(pid)}/cmdline 2>/dev/null", check=False).out
    counted = board.run(f"wc -l < {quote(paths.results)} 2>/dev/null; "
                        f"stat -c %Y {quote(paths.results)} 2>/dev/null; date +%s", check=False).out.split()
    results = int(counted[0]) if len(counted) == 3 else 0
    age = int(counted[2]) - int(counted[1]) if len(counted) == 3 else None
    supervisor = _read_json(board, paths.status) or {}
    return {"installed": True, **manifest, "running": alive, "agent_state": run.get("state"),
            "agent_pid": pid if alive else None, "error": run.get("error"), "results_written": results,
            "last_result_s_ago": age, "restarts": supervisor.get("restarts"),
            "supervisor_state": supervisor.get("state")}


def service_run(board: BoardSession, project_dir: str) -> AgentRun:
    """The service's agent as a run to stream from (it is not stopped when the stream ends)."""
    paths = paths_of(project_dir)
    run = _read_json(board, paths.run_file)
    manifest = _read_json(board, paths.manifest)
    if manifest is None or not run or run.get("state") != "running":
        raise BoardError(f"{board.profile.name}: no service is running in {project_dir} (studio board status)")
    return AgentRun(board.profile.name, paths.run_file, paths.run_file, paths.log, manifest["runtime_dir"],
                    int(run["pid"]), int(run["port"]), str(run.get("token", "")))


def service_logs(board: BoardSession, project_dir: str, lines: int) -> str:
    paths = paths_of(project_dir)
    if _read_json(board, paths.manifest) is None:
        raise BoardError(f"{board.profile.name}: no service is installed in {project_dir}")
    return board.run(f"tail -n {int(lines)} -- {quote(paths.log)} 2>/dev/null", check=False).out


def uninstall_service(board: BoardSession, project_dir: str) -> dict:
    """Stop the service, take it out of systemd or cron, remove its folder; a BoardError if its agent lingers."""
    paths = paths_of(project_dir)
    manifest = _read_json(board, paths.manifest)
    if manifest is None:
        raise BoardError(f"{board.profile.name}: no service is installed in {project_dir}")
    how = manifest["manager"]
    if how == "supervisor":
        _stop_supervisor(board, paths)
        board.run(f"command -v crontab >/dev/null && ( crontab -l 2>/dev/null | grep -vF {quote(paths.start)} "
                  "| crontab - )", check=False)
    else:
        unit = _unit_path(board, how, manifest["unit"])
        sudo = "sudo -n " if how == "systemd-sudo" else ""
        board.run(f"{_systemctl(how)} disable --now {manifest['unit']}; {sudo}rm -f {quote(unit)}; "
                  f"{_systemctl(how)} daemon-reload", check=False)
    left = board.run(f"pgrep -f {quote(_pattern(paths.run_file))}", check=False).out.split()
    if left:
        raise BoardError(f"{board.profile.name}: the service's agent (pid {', '.join(left)}) does not stop; end it "
                         "on the board")
    board.run(f"rm -rf {quote(paths.folder)}")
    return {"removed": paths.folder, "manager": how}


def _stop_supervisor(board: BoardSession, paths: ServicePaths) -> None:
    """TERM the supervisor (it stops its agent first), then KILL what is left of both. Processes are found by
    their command line, never by a recorded pid (after a reboot that pid may be another program's)."""
    supervisor = quote(_pattern(paths.status))
    board.run(f"pkill -TERM -f {supervisor}", check=False)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and board.run(f"pgrep -f {supervisor}", check=False).out.strip():
        time.sleep(0.2)
    for path in (paths.status, paths.run_file):  # what is left of the supervisor, then of its agent
        board.run(f"pkill -KILL -f {quote(_pattern(path))}", check=False)
