"""Several boards at once: `studio board push|run|bench a,b` or `@group`, one thread per board.

Each board gets its own SSH session, progress stage ("a: push") and outcome; one board that
fails or cannot be reached never stops the others, and the outcomes say which did what.
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from deploy.board.profiles import NAME, BoardStore
from deploy.errors import UnreachableError, UserError
from deploy.runtime.atomic import write_text_atomic
from studio.core.jobs import Cancelled, Job

log = logging.getLogger(__name__)


def _named(board: str, message: str) -> str:
    """Errors of several boards side by side must say whose they are."""
    return message if message.startswith(f"{board}:") else f"{board}: {message}"

GROUP = re.compile(r"^@(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$")


def _groups_file(store: BoardStore):
    return store.home / "groups.json"


def load_groups(store: BoardStore) -> dict[str, list[str]]:
    path = _groups_file(store)
    if not path.exists():
        return {}
    try:
        return {k: list(v) for k, v in json.loads(path.read_text()).items()}
    except (ValueError, AttributeError, TypeError):
        raise UserError(f"{path}: not a groups file the studio can read; fix or remove it") from None


def save_group(store: BoardStore, name: str, boards: list[str]) -> None:
    """Create or replace a group (an empty list removes it); every member must be a known board."""
    if not NAME.match(name):
        raise UserError(f"{name!r}: a group name is letters, digits, '.', '_' or '-'")
    for board in boards:
        store.get(board)
    groups = load_groups(store)
    if boards:
        groups[name] = list(dict.fromkeys(boards))
    else:
        groups.pop(name, None)
    write_text_atomic(_groups_file(store), json.dumps(groups, indent=2, sort_keys=True) + "\n", mode=0o600)


def resolve_boards(spec: str, store: BoardStore) -> list[str]:
    """'rock5b', 'a,b' or '@shelf' -> board names (each one known), in order, without repeats."""
    names: list[str] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        group = GROUP.match(part)
        if group:
            groups = load_groups(store)
            if group["name"] not in groups:
                raise UserError(f"no group named {part} (known: {', '.join('@' + g for g in groups) or 'none'}); "
                                f"make one with: studio board group {group['name']} BOARD BOARD ...")
            names += groups[group["name"]]
        else:
            store.get(part)
            names.append(part)
    if not names:
        raise UserError("name at least one board (a name, a,b or @group)")
    return list(dict.fromkeys(names))


@dataclass
class Outcome:
    board: str
    result: Any = None
    error: str | None = None
    code: int = 0  # 0 ok, 2 the user's to fix, 3 unreachable

    def to_dict(self) -> dict:
        result = self.result.to_dict() if hasattr(self.result, "to_dict") else self.result
        return {"board": self.board, "ok": self.error is None, "result": result, "error": self.error}


def on_each_board(boards: list[str], work: Callable[[str, Job], Any], job: Job) -> list[Outcome]:
    """Run work(board, job) for every board at once; collect each outcome, errors included."""
    def one(board: str) -> Outcome:
        try:
            return Outcome(board, work(board, job.within(board)))
        except UserError as exc:
            return Outcome(board, error=_named(board, str(exc)), code=2)
        except UnreachableError as exc:
            return Outcome(board, error=_named(board, str(exc)), code=3)
        except Cancelled:
            raise
        except Exception as exc:  # a bug or an unexpected failure on one board: the others still report
            if len(boards) == 1:
                raise
            log.exception("board %s failed", board)
            return Outcome(board, error=f"{board}: unexpected error ({type(exc).__name__}: {exc})", code=1)

    if len(boards) == 1:
        return [one(boards[0])]
    with ThreadPoolExecutor(max_workers=len(boards), thread_name_prefix="board") as pool:
        futures = [pool.submit(one, board) for board in boards]
        try:
            done = [f.result() for f in futures]
        except KeyboardInterrupt:  # Ctrl-C reaches this thread only: tell every board's work to stop, then wait
            job.cancel.cancel()
            wait(futures)
            raise
    return done
