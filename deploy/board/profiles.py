"""Board profiles: name -> host, user, port, key, Python. No password is ever stored.

They live in the studio's config folder (EDGE_STUDIO_HOME, else $XDG_CONFIG_HOME or
~/.config, then edge-deploy-studio/), in boards.json beside the studio's own known_hosts,
which holds only the host keys the user trusted through the studio.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from deploy.errors import UserError
from deploy.runtime.atomic import write_json_atomic

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")  # RFC 1123
USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")  # what useradd accepts


def studio_home() -> Path:
    """The config folder (created on first use, readable by its owner only)."""
    if os.environ.get("EDGE_STUDIO_HOME"):
        home = Path(os.environ["EDGE_STUDIO_HOME"])
    else:
        home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "edge-deploy-studio"
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home


@dataclass
class BoardProfile:
    name: str
    host: str
    user: str
    port: int = 22
    key: str | None = None  # a private key file; None: ssh-agent and ~/.ssh's default keys
    python: str = "python3"  # the board's interpreter (a venv's python works too)
    root: str = "~/edge-deploy-studio"  # where pushed runtimes, models and runs live on the board

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}" + (f":{self.port}" if self.port != 22 else "")


class BoardStore:
    """Reads and writes boards.json; every change is one atomic replace."""

    def __init__(self, home: Path | None = None):
        self.home = home or studio_home()
        self.path = self.home / "boards.json"
        self.known_hosts = self.home / "known_hosts"

    def load(self) -> dict[str, BoardProfile]:
        if not self.path.exists():
            return {}
        try:
            raw = json.loads(self.path.read_text())
            known = {f.name for f in fields(BoardProfile)}
            return {name: BoardProfile(**{k: v for k, v in entry.items() if k in known}) for name, entry in raw.items()}
        except (ValueError, TypeError, AttributeError) as exc:
            raise UserError(f"{self.path}: not a boards file the studio can read ({exc}); fix or remove it") from None

    def get(self, name: str) -> BoardProfile:
        boards = self.load()
        if name not in boards:
            known = ", ".join(sorted(boards)) or "none yet"
            raise UserError(f"no board named {name!r} (known: {known}); add one with: "
                            f"studio board add {name} --host HOST --user USER")
        return boards[name]

    def add(self, profile: BoardProfile, replace: bool = False) -> None:
        if not NAME.match(profile.name):
            raise UserError(f"{profile.name!r}: a board name is letters, digits, '.', '_' or '-' (at most 64)")
        check_profile(profile)
        boards = self.load()
        if profile.name in boards and not replace:
            raise UserError(f"a board named {profile.name!r} exists; use --replace to change it")
        boards[profile.name] = profile
        self._save(boards)

    def remove(self, name: str) -> None:
        boards = self.load()
        self.get(name)
        del boards[name]
        self._save(boards)

    def _save(self, boards: dict[str, BoardProfile]) -> None:
        write_json_atomic(self.path, {n: asdict(p) for n, p in sorted(boards.items())}, mode=0o600)


def check_profile(profile: BoardProfile) -> None:
    """UserError for a host, user, port or key file that cannot work, before anything is saved or dialled."""
    if "@" in profile.host:
        raise UserError(f"--host {profile.host}: give the user with --user, the host alone with --host")
    if not _is_host(profile.host):
        raise UserError(f"--host {profile.host!r}: not a host name or IP address")
    if not USER.match(profile.user):
        raise UserError(f"--user {profile.user!r}: not a user name (letters, digits, '_', '.', '-')")
    if not 0 < profile.port < 65536:
        raise UserError(f"--port {profile.port}: not a TCP port")
    if profile.key is not None:
        _check_key_file(Path(profile.key).expanduser(), profile.key)


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        labels = host.rstrip(".").split(".")
        return 0 < len(host) <= 253 and all(HOST_LABEL.match(label) for label in labels)


def _check_key_file(path: Path, given: str) -> None:
    """The key must be a private key file (any OpenSSH or PEM kind, encrypted or not), not its .pub twin."""
    if not path.is_file():
        raise UserError(f"--key {given}: no such key file")
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise UserError(f"--key {given}: cannot be read ({exc.strerror})") from None
    if head.startswith((b"ssh-", b"ecdsa-", b"sk-")):
        raise UserError(f"--key {given}: this is a public key; give its private key (usually the same name "
                        "without .pub)")
    if not (head.startswith(b"-----BEGIN ") and b"PRIVATE KEY-----" in head):
        raise UserError(f"--key {given}: not an SSH private key file (expected '-----BEGIN ... PRIVATE KEY-----')")
