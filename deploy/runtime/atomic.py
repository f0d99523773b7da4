"""Publish a file in one step: write it beside its destination under a temporary name, then rename.

A reader never sees half a file, a crash or an error leaves the old file as it was, and the
temporary file is removed when writing fails. Every writer of the studio, the runtime and the
board agent goes through here (standard library only: the board runs it too).
"""
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


def _umask() -> int:
    """The process umask, read without changing it where Linux reports it (os.umask's dance races threads)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class StagedFile:
    """A temporary file beside `path` that becomes `path` on publish(), or disappears on discard().

    suffix: an extension to keep at the end of the temporary name, for writers that choose the
    format from it (cv2.imwrite, cv2.VideoWriter, matplotlib). mode: permission bits; by default
    those a plain open() would give (0o666 less the umask); 0o600 for files that hold secrets,
    set before anything is written.
    """

    def __init__(self, path: PathLike, suffix: str = "", mode: Optional[int] = None):
        self.path = Path(path)
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp" + suffix, dir=str(self.path.parent))
        os.close(fd)
        self.tmp = Path(name)
        os.chmod(self.tmp, (0o666 & ~_umask()) if mode is None else mode)

    def publish(self) -> Path:
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        try:
            self.tmp.unlink()
        except FileNotFoundError:
            pass


@contextmanager
def staged(path: PathLike, suffix: str = "", mode: Optional[int] = None) -> Iterator[Path]:
    """Yield a temporary path to write; when the block ends it replaces `path`, or is removed on error."""
    stage = StagedFile(path, suffix, mode)
    try:
        yield stage.tmp
        stage.publish()
    except BaseException:
        stage.discard()
        raise


def write_bytes_atomic(path: PathLike, data: bytes, mode: Optional[int] = None) -> None:
    with staged(path, mode=mode) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: PathLike, text: str, mode: Optional[int] = None) -> None:
    with staged(path, mode=mode) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: PathLike, data: Any, mode: Optional[int] = None, indent: Optional[int] = 2) -> None:
    """JSON with a final newline (indented by default; indent=None for one compact line)."""
    write_text_atomic(path, json.dumps(data, indent=indent) + "\n", mode)
