"""Writing results without ever leaving a half-written or clobbered file behind.

Work happens in a hidden staging folder beside the destination; only when everything
succeeded are the files renamed into place (a rename is atomic on one filesystem).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from deploy.errors import UserError
from deploy.runtime.output import clear_dead

STAGING_PREFIX = ".studio-staging-"


def ensure_writable_dir(folder: Path) -> None:
    """Create `folder` if needed and prove we can write there, or a UserError naming it."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"output folder {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"output folder {folder} is not writable ({exc.strerror})") from None


def refuse_overwrite(paths: list[Path], force: bool) -> None:
    """UserError if any destination exists and --force was not given."""
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise UserError(f"{', '.join(existing)} already exist(s); add --force to replace")


class Staging:
    """A temp folder beside the outputs; `commit()` renames staged files to their destinations."""

    def __init__(self, out_dir: Path):
        clear_dead(Path(out_dir), STAGING_PREFIX)  # a killed export's half-built files
        self.dir = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=out_dir))
        self._moves: list[tuple[Path, Path]] = []

    def path(self, destination: Path) -> Path:
        """Where to write the file that will become `destination`."""
        staged = self.dir / destination.name
        self._moves.append((staged, destination))
        return staged

    def commit(self, overwrite: bool = True) -> None:
        """Move every staged file into place. Without `overwrite`, a destination that appeared while the
        work ran (another export, a user's copy) is kept: nothing moves and a UserError says which."""
        moves = [(staged, dest) for staged, dest in dict(self._moves).items() if staged.exists()]
        if not overwrite:
            taken = [str(dest) for _, dest in moves if dest.exists()]
            if taken:
                raise UserError(f"{', '.join(taken)} appeared while this ran; kept it (add --force to replace)")
            linked: list[Path] = []
            try:
                for staged, dest in moves:
                    self._place_new(staged, dest)
                    linked.append(dest)
            except BaseException:
                for dest in linked:  # all or nothing: no new model beside an old sidecar
                    dest.unlink(missing_ok=True)
                raise
            return
        for staged, dest in moves:
            os.replace(staged, dest)

    @staticmethod
    def _place_new(staged: Path, dest: Path) -> None:
        """Put `staged` at `dest` only if nothing is there: a hard link fails rather than replace a file
        created since the check; where links are not possible, check and rename."""
        try:
            os.link(staged, dest)
        except FileExistsError:
            raise UserError(f"{dest} appeared while this ran; kept it (add --force to replace)") from None
        except OSError:
            if dest.exists():
                raise UserError(f"{dest} appeared while this ran; kept it (add --force to replace)") from None
            os.replace(staged, dest)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
