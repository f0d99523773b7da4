"""Labelled images to the board for `studio board eval`: sent once, by checksum, into a folder named by content.

    <root>/<project>/data/<key>/00000-name.png ...

The key is a digest of the images' contents in order, so the same split finds its folder
again and a repeat run sends nothing (only checksums are compared); a run cut short
resumes with the files not yet there. Names start with the image's place in the split, so
the agent, which reads a folder in name order, numbers frames as the host does.
"""
from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deploy.board.push import ProgressFn, send_all, stale
from deploy.board.session import BoardSession, quote
from deploy.runtime.digest import sha256_of


@dataclass
class ImagePush:
    folder: str  # on the board
    names: list[str]  # the board's file name of each image, in the split's order
    bytes_total: int  # of the images
    bytes_sent: int  # this time (0 when the board had them all)
    files_sent: int


def board_names(images: list[Path]) -> list[str]:
    """The split's images as the board names them: place in the split, then the file's own name."""
    width = max(5, len(str(len(images))))
    return [f"{i:0{width}d}-{path.name}" for i, path in enumerate(images)]


def push_images(board: BoardSession, images: list[Path], project: str, progress: ProgressFn,
                check_cancel: Callable[[], None]) -> ImagePush:
    """Make the board hold these images in their own folder; returns where and what it cost."""
    digests = [sha256_of(path) for path in images]
    key = hashlib.sha256("\n".join(digests).encode()).hexdigest()[:16]
    folder = posixpath.join(board.root, project, "data", key)
    names = board_names(images)
    wanted = {posixpath.join(folder, name): path for name, path in zip(names, images)}
    uploads = stale(board, wanted, {posixpath.join(folder, n): d for n, d in zip(names, digests)})
    if uploads:
        board.run("mkdir -p -- " + quote(folder))
    sent = send_all(board, uploads, progress, check_cancel)
    return ImagePush(folder, names, sum(path.stat().st_size for path in images), sent, len(uploads))
