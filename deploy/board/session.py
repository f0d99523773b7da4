"""One SSH session with a board: run shell commands, move files over SFTP, open channels to its localhost.

    with BoardSession.open(profile, store, trust=False) as board:
        board.run("uname -m")
"""
from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import paramiko

from deploy.board.profiles import BoardProfile, BoardStore
from deploy.board.ssh import connect
from deploy.errors import UnreachableError, UserError


class BoardError(UserError):
    """Something on the board failed in a way the user can act on (the message says how)."""


@dataclass
class CommandResult:
    code: int
    out: str
    err: str


class BoardSession:
    def __init__(self, profile: BoardProfile, client: paramiko.SSHClient):
        self.profile, self.client = profile, client
        self._sftp: paramiko.SFTPClient | None = None
        self._home: str | None = None

    @classmethod
    def open(cls, profile: BoardProfile, store: BoardStore, trust: bool | str = False,
             password: str | None = None) -> BoardSession:
        return cls(profile, connect(profile, store.known_hosts, trust=trust, password=password))

    def run(self, command: str, check: bool = True, timeout: float = 120, stdin: bytes | None = None) -> CommandResult:
        """Run a shell command on the board; with check, a non-zero exit is a BoardError naming it."""
        try:
            chan_in, chan_out, chan_err = self.client.exec_command(command, timeout=timeout)
            if stdin is not None:
                chan_in.write(stdin)
                chan_in.channel.shutdown_write()
            out, err = chan_out.read().decode(errors="replace"), chan_err.read().decode(errors="replace")
            code = chan_out.channel.recv_exit_status()
        except (OSError, paramiko.SSHException) as exc:
            raise UnreachableError(f"{self.profile.name}: the connection failed during a command ({exc})") from None
        if check and code != 0:
            last = (err.strip() or out.strip()).splitlines()[-1:] or ["no output"]
            raise BoardError(f"{self.profile.name}: `{command.split()[0]}` failed on the board "
                             f"(exit {code}): {last[0]}")
        return CommandResult(code, out, err)

    @property
    def home(self) -> str:
        if self._home is None:
            self._home = self.run("printf %s \"$HOME\"").out
        return self._home

    def path(self, remote: str) -> str:
        """A board path with a leading ~ spelled out (SFTP does not expand it)."""
        return self.home + remote[1:] if remote.startswith("~") else remote

    @property
    def root(self) -> str:
        return self.path(self.profile.root)

    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = self.client.open_sftp()
        return self._sftp

    @contextmanager
    def transfer(self, what: str) -> Iterator[None]:
        """File work over SFTP with one-line errors: a lost link is UnreachableError, a board-side refusal
        (permissions, a full disk) a BoardError."""
        try:
            yield
        except (OSError, EOFError, paramiko.SSHException) as exc:
            transport = self.client.get_transport()
            if transport is None or not transport.is_active() or isinstance(exc, (EOFError, paramiko.SSHException)):
                raise UnreachableError(f"{self.profile.name}: the connection failed while {what} ({exc or 'closed'}); "
                                       "run it again to continue") from None
            raise BoardError(f"{self.profile.name}: the board refused {what}: {exc}") from None

    def open_local_port(self, port: int) -> paramiko.Channel:
        """A channel to 127.0.0.1:port on the board, through this SSH connection (nothing opened on the network)."""
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise UnreachableError(f"{self.profile.name}: the SSH connection is closed")
        try:
            return transport.open_channel("direct-tcpip", ("127.0.0.1", port), ("127.0.0.1", 0), timeout=10)
        except (OSError, paramiko.SSHException) as exc:
            raise UnreachableError(f"{self.profile.name}: cannot open a channel to the agent's port {port} "
                                   f"({exc})") from None

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
        self.client.close()

    def __enter__(self) -> BoardSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def quote(*parts: str) -> str:
    """Shell-quote a command line for the board."""
    return " ".join(shlex.quote(p) for p in parts)
