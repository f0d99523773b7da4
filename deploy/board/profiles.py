"""Board profiles: name -> host, user, port, key, Python. No password is ever stored.

They live in the studio's config folder (EDGE_STUDIO_HOME, else $XDG_CONFIG_HOME or
~/.config, then edge-deploy-studio/), in boards.json beside the studio's own known_hosts,
which holds only the host keys the user trusted through the studio.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from deploy.errors import UserError
from deploy.runtime.atomic import write_json_atomic

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


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
        if not 0 < profile.port < 65536:
            raise UserError(f"--port {profile.port}: not a TCP port")
        if profile.key is not None and not Path(profile.key).expanduser().is_file():
            raise UserError(f"--key {profile.key}: no such key file")
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
