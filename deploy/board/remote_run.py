"""`studio board run` and `studio board stream`: start the agent on the board and stream its results home.

The agent is started detached (setsid) with a run file; the host reaches its 127.0.0.1
port through a direct-tcpip channel of its SSH connection. When the connection drops, the
stream reconnects with backoff and the agent resumes from the result it could not deliver.
Stopping asks the agent to stop, then ends its process (TERM, then KILL) and checks it is gone.
"""
from __future__ import annotations

import dataclasses
import json
import posixpath
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import paramiko

from deploy.board.agent import protocol
from deploy.board.agent.messages import decode_jpeg, detections_from
from deploy.board.agent.options import AGENT_OPTIONS, RunOptions
from deploy.board.push import PushResult
from deploy.board.session import BoardError, BoardSession, quote
from deploy.errors import UnreachableError
from deploy.runtime.detections import Detections

START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 5
LINK_TIMEOUT_S = 15


@dataclass
class AgentRun:
    """What identifies a started agent: enough to reattach (studio board stream) or stop it."""

    board: str
    run_id: str
    run_file: str
    log_file: str
    runtime_dir: str
    pid: int
    port: int
    token: str = ""  # from the run file (owner-only on the board): the agent serves only who knows it

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _read_run_file(board: BoardSession, path: str) -> dict | None:
    try:
        with board.sftp.open(path) as f:
            return json.loads(f.read().decode())
    except (OSError, ValueError, EOFError, paramiko.SSHException):
        return None


def log_tail(board: BoardSession, path: str, lines: int = 5) -> str:
    out = board.run(f"tail -n {lines} -- {quote(path)} 2>/dev/null", check=False).out.strip()
    return " | ".join(line.strip() for line in out.splitlines() if line.strip()) or "(empty log)"


def agent_alive(board: BoardSession, run: AgentRun) -> bool:
    """The pid is alive and is still this run's agent (pids get reused)."""
    out = board.run(f"tr '\\000' ' ' < /proc/{run.pid}/cmdline 2>/dev/null", check=False).out
    return run.run_id in out


def agent_env(board: BoardSession, runtime_dir: str) -> dict[str, str]:
    """The agent's environment: the pushed runtime first, then what `studio board setup` unpacked (wheels in
    site/, librknnrt.so in lib/)."""
    return {"PYTHONPATH": runtime_dir + ":" + posixpath.join(board.root, "site"),
            "LD_LIBRARY_PATH": posixpath.join(board.root, "lib")}


def shell_env(env: dict[str, str]) -> str:
    """NAME=value words for a shell command line; the board's own library path is kept after ours."""
    kept = {"LD_LIBRARY_PATH": '"${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"'}
    return " ".join(f"{key}={quote(value)}{kept.get(key, '')}" for key, value in env.items())


def start_agent(board: BoardSession, pushed: PushResult, opts: RunOptions) -> AgentRun:
    """Start the agent detached on the board and wait until it listens; a failed start is a BoardError with its log."""
    run_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
    runs = posixpath.join(pushed.project_dir, "runs")
    run_file, log_file = posixpath.join(runs, f"{run_id}.json"), posixpath.join(runs, f"{run_id}.log")
    values = {**dataclasses.asdict(opts), "model": pushed.model, "run_file": run_file}
    args = [board.profile.python, "-s", "-m", "deploy.board.agent", *AGENT_OPTIONS.argv(values)]
    # Only the agent goes to the background, with every stream redirected, so the SSH command returns at once.
    env = shell_env(agent_env(board, pushed.runtime_dir))
    command = (f"mkdir -p {quote(runs)} && cd {quote(pushed.runtime_dir)} && {{ {env} "
               f"nohup setsid {quote(*args)} > {quote(log_file)} 2>&1 < /dev/null & echo $!; }}")
    pid = int(board.run(command).out.strip().splitlines()[-1])
    run = AgentRun(board.profile.name, run_id, run_file, log_file, pushed.runtime_dir, pid, 0)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        state = _read_run_file(board, run_file)
        if state and state.get("port"):
            run.port, run.token = int(state["port"]), str(state.get("token", ""))
            return run
        if not agent_alive(board, run):
            raise BoardError(f"{run.board}: the agent did not start: {log_tail(board, log_file)}")
        time.sleep(0.2)
    stop_agent(board, run)
    raise BoardError(f"{run.board}: the agent did not listen within {START_TIMEOUT_S} s: {log_tail(board, log_file)}")


def stop_agent(board: BoardSession, run: AgentRun) -> None:
    """End the agent's process: TERM, then KILL; a BoardError if it is still there."""
    if not agent_alive(board, run):
        return
    board.run(f"kill -TERM {run.pid} 2>/dev/null", check=False)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and agent_alive(board, run):
        time.sleep(0.1)
    if agent_alive(board, run):
        board.run(f"kill -KILL {run.pid} 2>/dev/null", check=False)
        time.sleep(0.2)
    if agent_alive(board, run):
        raise BoardError(f"{run.board}: the agent (pid {run.pid}) does not stop; end it on the board")


class AgentStream:
    """Iterate over the agent's results: Detections (frame decoded when one was sent), reconnecting on drops.

    After the loop, `hello` is the agent's greeting, `stats` its final pipeline stats (None if stopped
    early) and `reconnects` how often the connection was re-made.
    """

    def __init__(self, connect: Callable[[], BoardSession], run: AgentRun, retries: int = 6, backoff_s: float = 0.5):
        self.connect, self.run, self.retries, self.backoff_s = connect, run, retries, backoff_s
        self.session: BoardSession | None = None
        self.channel: paramiko.Channel | None = None
        self.hello: dict | None = None
        self.stats: dict | None = None
        self.reconnects = 0
        self.last_seq: int | None = None  # the last result received: a reconnect resumes after it
        self.wanted: dict[str, dict] = {}  # pause/resume and thresholds, sent again after a reconnect
        self._stopping = False

    def __iter__(self) -> Iterator[Detections]:
        failures = 0
        while not self._stopping:
            try:
                self._attach()
                failures = 0
                while True:
                    header, payload = protocol.receive(self.channel)
                    kind = header.get("type")
                    if kind == "result":
                        self.last_seq = int(header.get("seq", self.last_seq or 0))
                        yield detections_from(header, decode_jpeg(payload) if payload else None)
                    elif kind == "end":
                        self.stats = header.get("stats")
                        return
                    elif kind == "error":
                        raise BoardError(f"{self.run.board}: the agent failed: {header.get('message')} "
                                         f"(its log on the board: {self.run.log_file})")
            except protocol.ConnectionClosed:
                pass
            except protocol.ProtocolError as exc:
                raise BoardError(f"{self.run.board}: {exc}") from None
            except (OSError, EOFError, paramiko.SSHException, UnreachableError):
                pass
            finally:
                self._detach()
            if self._stopping:
                return
            failures += 1
            if failures > self.retries:
                raise UnreachableError(f"{self.run.board}: lost the connection to the agent and could not get it "
                                       f"back after {self.retries} tries; it stops by itself when idle")
            self._diagnose()
            time.sleep(min(self.backoff_s * 2 ** (failures - 1), 8.0))
            self.reconnects += 1

    def _attach(self) -> None:
        """Connect, read the hello, prove the token, say what arrived already, restore pause and thresholds."""
        self.session = self.connect()
        transport = self.session.client.get_transport()
        if transport is not None:
            transport.set_keepalive(5)
        self.channel = self.session.open_local_port(self.run.port)
        self.channel.settimeout(LINK_TIMEOUT_S)  # the agent pings an idle link, so silence means it is dead
        header, _ = protocol.receive(self.channel)
        if header.get("type") != "hello":
            raise protocol.ProtocolError(f"the agent began with {header.get('type')!r} instead of hello")
        self.hello = header
        if self.last_seq is None:  # a first attach starts with what comes next, not with what others saw
            self.last_seq = int(header.get("last_seq", 0))
        protocol.send(self.channel, {"type": "since", "token": self.run.token, "seq": self.last_seq})
        for kind, fields in list(self.wanted.items()):
            protocol.send(self.channel, {"type": kind, **fields})

    def _detach(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.session is not None:
            self.session.close()
            self.session = None

    def _diagnose(self) -> None:
        """After a drop: if the board answers and the agent is gone, say why instead of retrying."""
        try:
            session = self.connect()
        except UnreachableError:
            return
        try:
            if agent_alive(session, self.run):
                return
            state = _read_run_file(session, self.run.run_file) or {}
            why = state.get("error") or "it stopped unexpectedly; its log ends: " + log_tail(session,
                                                                                              self.run.log_file)
        except UnreachableError:  # the link dropped again: keep retrying
            return
        finally:
            session.close()
        raise BoardError(f"{self.run.board}: the agent is gone: {why}")

    def tell(self, kind: str, **fields) -> None:
        """Send the agent a control message (pause, resume, step, thresholds, stop).

        Pause/resume and thresholds are remembered and sent again after a reconnect; a step
        asked for while the link is down is dropped."""
        if kind in ("pause", "resume"):
            self.wanted.pop("pause", None)
            self.wanted.pop("resume", None)
            self.wanted[kind] = {}
        elif kind == "thresholds":
            self.wanted[kind] = fields
        channel = self.channel
        if channel is not None:
            try:
                protocol.send(channel, {"type": kind, **fields})
            except (OSError, paramiko.SSHException):
                pass

    def stop(self) -> None:
        """Ask the agent to stop (it ends its pipeline and exits); `stop_agent` makes sure of it."""
        self._stopping = True
        self.tell("stop")
