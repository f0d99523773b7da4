"""`studio board push`: the runtime, the agent and a model into a per-project folder on the board.

    <root>/<project>/runtime/deploy/...      the numpy-only runtime and the agent (by checksum)
    <root>/<project>/runtime/manifest.json   which files of which runtime version are there
    <root>/<project>/models/<model>[.json]   the model and its sidecar

Only files whose SHA-256 differs from the board's copy travel. Each goes to `<name>.part`
and is renamed once its checksum matches, so the board never holds half a file under
the real name; a push cut short continues from the bytes already in the `.part` file.
"""
from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import deploy
from deploy.board.agent.protocol import VERSION
from deploy.board.session import BoardError, BoardSession, quote
from deploy.runtime.digest import sha256_of
from deploy.runtime.metadata import sidecar_path

RUNTIME_GLOBS = ("deploy/__init__.py", "deploy/errors.py", "deploy/runtime/*.py", "deploy/board/__init__.py",
                 "deploy/board/agent/*.py")
CHUNK = 1 << 16
ProgressFn = Callable[[int, int, str], None]  # bytes sent, bytes to send, file


@dataclass
class Upload:
    local: Path
    remote: str  # absolute path on the board
    sha256: str
    size: int


@dataclass
class PushResult:
    project_dir: str
    runtime_dir: str
    model: str  # the model's path on the board
    runtime_version: str
    sent: list[str] = field(default_factory=list)  # board paths that were uploaded
    unchanged: int = 0
    bytes_sent: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def runtime_files() -> dict[str, Path]:
    """What the board needs of this studio: relative path -> local file."""
    base = Path(deploy.__file__).resolve().parent.parent
    files = {}
    for pattern in RUNTIME_GLOBS:
        for path in sorted(base.glob(pattern)):
            files[path.relative_to(base).as_posix()] = path
    return files


def runtime_manifest(files: dict[str, Path]) -> dict:
    """Checksums of the runtime's files and a version that changes when any of them does."""
    sums = {rel: sha256_of(path) for rel, path in sorted(files.items())}
    version = hashlib.sha256(json.dumps(sums, sort_keys=True).encode()).hexdigest()[:12]
    return {"runtime_version": version, "protocol": VERSION, "files": sums}


def project_dir(board: BoardSession, project: str) -> str:
    return posixpath.join(board.root, project)


def board_sums(board: BoardSession, paths: list[str]) -> dict[str, str]:
    """SHA-256 of those board files that exist (one command for all of them)."""
    if not paths:
        return {}
    out = board.run("sha256sum -- " + quote(*paths) + " 2>/dev/null", check=False).out
    sums = {}
    for line in out.splitlines():
        digest, _, name = line.partition("  ")
        if name:
            sums[name] = digest
    return sums


def _resumable_offset(board: BoardSession, item: Upload, part: str) -> int:
    """How many bytes of a `.part` left by an interrupted push can stay: all of them if they are the
    start of this file, else none (a stale .part of another version starts over)."""
    try:
        offset = board.sftp.stat(part).st_size
    except OSError:
        return 0
    if 0 < offset <= item.size:
        out = board.run(f"head -c {offset} -- {quote(part)} | sha256sum", check=False).out.split()
        if out and out[0] == sha256_of(item.local, offset):
            return offset
    board.sftp.remove(part)
    return 0


def stale(board: BoardSession, wanted: dict[str, Path], known: dict[str, str] | None = None) -> list[Upload]:
    """The files of `wanted` (board path -> local file) whose copy on the board is missing or differs by SHA-256;
    `known` gives digests already computed (board path -> digest)."""
    known = known or {}
    on_board = board_sums(board, list(wanted))
    uploads = []
    for remote, local in wanted.items():
        digest = known.get(remote) or sha256_of(local)
        if on_board.get(remote) != digest:
            uploads.append(Upload(local, remote, digest, local.stat().st_size))
    return uploads


def send_file(board: BoardSession, item: Upload, on_bytes: Callable[[int], None],
              check_cancel: Callable[[], None]) -> int:
    """Upload one file through `<name>.part`, continuing a partial one; returns the bytes sent.

    on_bytes gets how much of this file is on the board so far."""
    part = item.remote + ".part"
    sftp = board.sftp
    offset = _resumable_offset(board, item, part)
    sent = 0
    with open(item.local, "rb") as src, sftp.open(part, "ab" if offset else "wb") as dst:
        dst.set_pipelined(True)
        src.seek(offset)
        for block in iter(lambda: src.read(CHUNK), b""):
            check_cancel()
            dst.write(block)
            sent += len(block)
            on_bytes(offset + sent)
    if board_sums(board, [part]).get(part) != item.sha256:
        sftp.remove(part)
        raise BoardError(f"{item.remote}: the copy on the board does not match what was sent (changed "
                         "while it was written?); it was removed, push again")
    sftp.posix_rename(part, item.remote)
    return sent


def push(board: BoardSession, model: Path, project: str = "studio", progress: ProgressFn | None = None,
         check_cancel: Callable[[], None] = lambda: None) -> PushResult:
    """Bring the board's copy of the runtime and of `model` (with its sidecar) up to date."""
    progress = progress or (lambda done, total, name: None)
    sidecar = sidecar_path(model)
    if not model.is_file():
        raise BoardError(f"{model}: no such model file")
    if not sidecar.is_file():
        raise BoardError(f"{sidecar} is missing: push an exported model (studio export writes the sidecar)")
    folder = project_dir(board, project)
    runtime_dir, models_dir = posixpath.join(folder, "runtime"), posixpath.join(folder, "models")
    files = runtime_files()
    manifest = runtime_manifest(files)
    wanted = {posixpath.join(runtime_dir, rel): path for rel, path in files.items()}
    wanted[posixpath.join(models_dir, model.name)] = model
    wanted[posixpath.join(models_dir, sidecar.name)] = sidecar
    uploads = stale(board, wanted, {posixpath.join(runtime_dir, rel): d for rel, d in manifest["files"].items()})
    result = PushResult(folder, runtime_dir, posixpath.join(models_dir, model.name), manifest["runtime_version"],
                        unchanged=len(wanted) - len(uploads))
    dirs = sorted({posixpath.dirname(u.remote) for u in uploads} | {runtime_dir, models_dir,
                                                                     posixpath.join(folder, "runs")})
    board.run("mkdir -p -- " + quote(*dirs))
    result.bytes_sent = send_all(board, uploads, progress, check_cancel)
    result.sent = [u.remote for u in uploads]
    with board.transfer("writing the runtime's manifest"):
        _write_manifest(board, runtime_dir, manifest)
    return result


def send_all(board: BoardSession, uploads: list[Upload], progress: ProgressFn,
             check_cancel: Callable[[], None]) -> int:
    """Send each file; progress counts bytes on the board out of all the files' bytes. Returns bytes sent."""
    total, done, sent = sum(u.size for u in uploads), 0, 0
    for item in uploads:
        with board.transfer(f"copying {posixpath.basename(item.remote)}"):
            sent += send_file(board, item, lambda n, item=item, done=done: progress(done + n, total, item.remote),
                              check_cancel)
        done += item.size
    return sent


def _write_manifest(board: BoardSession, runtime_dir: str, manifest: dict) -> None:
    path = posixpath.join(runtime_dir, "manifest.json")
    with board.sftp.open(path + ".part", "w") as f:
        f.write(json.dumps(manifest, indent=2))
    board.sftp.posix_rename(path + ".part", path)
