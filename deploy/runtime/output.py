"""One output transaction for every writer: stage beside the destination, publish by rename, or leave nothing.

    with Output(out, force=force, inputs=[data]) as staging:
        ...write everything under `staging` (a folder; for a single file, the file's temporary path)...

Before any work: an existing destination is refused unless `force` (which replaces it whole at
publish, never mixing old and new); a destination that is an input, lies inside one or holds
one is refused; the staging place is created at once, so a read-only or missing parent fails
before the work, and `need_bytes` is checked against the free space. Leftovers of a killed run
(its staging, or a destination set aside mid-publish) are cleared or restored on the next run.
On an error or Ctrl-C the staging is removed and the destination is as it was; a write that
fails for want of space or permission becomes one UserError line. Standard library only.
"""
import errno
import os
import secrets
import shutil
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from deploy.errors import UserError

_STAGING, _ASIDE = "staging", "aside"
USER_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EIO}  # not bugs


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _empty_folder(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def dead_leftovers(parent: Path, prefix: str) -> list:
    """Entries of `parent` named PREFIX + PID + '-...' whose process is gone: what a killed run left."""
    if not parent.is_dir():
        return []
    found = []
    for path in parent.iterdir():
        pid = path.name[len(prefix):].split("-")[0] if path.name.startswith(prefix) else ""
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            found.append(path)
    return found


def clear_dead(parent: Path, prefix: str) -> None:
    """Remove what killed runs left in `parent` under `prefix` (a staging folder, a toolkit's work folder)."""
    for path in dead_leftovers(parent, prefix):
        _remove(path)


def _leftovers(dest: Path, kind: str) -> Iterable[Path]:
    return dead_leftovers(dest.parent, f".{dest.name}.{kind}-")


def clear_leftovers(dest: Path) -> None:
    """Remove a killed run's staging; put back a destination it had set aside when the new one never arrived."""
    for aside in _leftovers(dest, _ASIDE):
        if dest.exists():
            _remove(aside)
        else:
            os.replace(aside, dest)
    for staging in _leftovers(dest, _STAGING):
        _remove(staging)


def cannot_write(path: Path, exc: OSError) -> UserError:
    """The one line for a write that failed for a reason the user can fix (space, permission, read-only)."""
    reason = exc.strerror or str(exc)
    return UserError(f"cannot write {path}: {reason}")


@contextmanager
def writing(dest) -> Iterator[None]:
    """Writes into an existing place (plots beside a dataset): a full, read-only or forbidden place is one line."""
    try:
        yield
    except OSError as exc:
        if exc.errno in USER_ERRNOS:
            raise cannot_write(Path(dest), exc) from None
        raise


@contextmanager
def native_stderr(noise: list) -> Iterator[None]:
    """Catch what C libraries print on file descriptor 2 (libpng's 'Write Error') into `noise`, so a failure can
    fold it into its one line; when nothing failed, it is passed on to stderr unchanged."""
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            noise.append(caught.read().decode(errors="replace").strip())


def write_image(path, image, params=()) -> None:
    """cv2.imwrite, whose False (a full or read-only disk) becomes an OSError saying which, the codec's own
    complaint folded into it."""
    import cv2

    noise: list = []
    with native_stderr(noise):
        ok = cv2.imwrite(str(path), image, list(params))
    if ok:
        if noise[0]:
            print(noise[0], file=sys.stderr)
        return
    parent = Path(path).parent
    full = shutil.disk_usage(parent).free < image.nbytes if parent.is_dir() else False
    code = errno.ENOSPC if full else errno.EROFS if not os.access(parent, os.W_OK) else errno.EIO
    said = f" ({' '.join(noise[0].split())})" if noise[0] else ""
    raise OSError(code, os.strerror(code) + said, str(path))


def refuse_overlap(dest: Path, inputs: Iterable[Optional[Path]]) -> None:
    """An output may not be an input, lie inside one, or hold one (replacing it would delete the input)."""
    target = dest.resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        if target == source or source in target.parents or target in source.parents:
            raise UserError(f"the output {dest} overlaps the input {given}; write it somewhere else")


class Output:
    """A destination written whole or not at all (see the module's docstring); `folder=False` for one file."""

    def __init__(self, dest, force: bool = False, inputs: Iterable[Optional[Path]] = (), folder: bool = True,
                 need_bytes: int = 0, suffix: str = ""):
        self.dest, self.force, self.folder = Path(dest), force, folder
        self.need_bytes, self.suffix = need_bytes, suffix
        self.inputs = list(inputs)
        self.staging: Optional[Path] = None
        self._token = f"{os.getpid()}-{secrets.token_hex(3)}"

    def check(self) -> None:
        """Refuse what would lose or mix data, before any work starts."""
        refuse_overlap(self.dest, self.inputs)
        clear_leftovers(self.dest)
        if self.dest.exists() and not self.force and not _empty_folder(self.dest):
            raise UserError(f"{self.dest} already exists; add --force to replace it, or choose another output")
        if self.dest.exists() and self.folder != self.dest.is_dir():
            raise UserError(f"{self.dest} is a {'folder' if self.dest.is_dir() else 'file'}; "
                            f"expected a {'folder' if self.folder else 'file'}")

    def __enter__(self) -> Path:
        self.check()
        parent = self.dest.parent
        staging = parent / f".{self.dest.name}.{_STAGING}-{self._token}{self.suffix}"
        try:
            parent.mkdir(parents=True, exist_ok=True)
            if self.folder:
                staging.mkdir()
            else:
                staging.touch()
            free = shutil.disk_usage(parent).free
        except OSError as exc:
            raise cannot_write(self.dest, exc) from None
        self.staging = staging
        if self.need_bytes > free:
            self._discard()
            raise UserError(f"cannot write {self.dest}: {free / 2**20:.0f} MiB free in {parent}, "
                            f"about {self.need_bytes / 2**20:.0f} MiB needed")
        return staging

    def __exit__(self, kind, exc, _tb) -> bool:
        if kind is None:
            try:
                self._publish()
            except OSError as failed:
                self._discard()
                raise cannot_write(self.dest, failed) from None
            return False
        self._discard()
        if isinstance(exc, OSError) and exc.errno in USER_ERRNOS:
            raise cannot_write(self.dest, exc) from None
        return False

    def _publish(self) -> None:
        if not self.dest.exists() or not self.folder:
            os.replace(self.staging, self.dest)
            return
        aside = self.dest.parent / f".{self.dest.name}.{_ASIDE}-{self._token}"
        os.replace(self.dest, aside)  # a crash between these two renames is undone by clear_leftovers
        os.replace(self.staging, self.dest)
        _remove(aside)

    def _discard(self) -> None:
        if self.staging is not None:
            _remove(self.staging)


RUN_BYTES = 64 << 20  # a training run's checkpoints: last.pt and best.pt of a small YOLO with optimizer state


def claim_run(folder: Path, resume: bool, force: bool, what: str, remove: bool = True,
              need_bytes: int = RUN_BYTES) -> None:
    """A resumable writer's folder: --resume continues what is there, --force starts over, and with neither
    an earlier run is refused with a message that names both; a place the run could not write its
    checkpoints to (read-only, full) is refused before the work. remove=False checks only (the other ranks
    of a distributed run, while rank 0 clears the folder)."""
    folder = Path(folder)
    if resume and force:
        raise UserError("--resume continues an earlier run and --force starts over; give one of them")
    clear_leftovers(folder)
    holds = folder.is_dir() and any(folder.iterdir())
    if holds and force and remove:
        _remove(folder)
    elif holds and not resume and not force:
        raise UserError(f"{folder} holds an earlier {what}; --resume continues it, --force starts over "
                        "(or choose another output)")
    if remove:
        _prove_writable(folder, need_bytes)


def _prove_writable(folder: Path, need_bytes: int) -> None:
    """Write a probe into the folder or its nearest existing parent (creating nothing) and check free space."""
    import tempfile

    place = folder
    while not place.exists() and place != place.parent:
        place = place.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=place)
        os.close(fd)
        os.unlink(probe)
        free = shutil.disk_usage(place).free
    except OSError as exc:
        raise cannot_write(folder, exc) from None
    if free < need_bytes:
        raise UserError(f"cannot write {folder}: {free / 2**20:.0f} MiB free in {place}, about "
                        f"{need_bytes / 2**20:.0f} MiB needed")
