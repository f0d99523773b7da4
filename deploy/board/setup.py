"""`studio board setup --wheels DIR`: provision an offline board from files the user brings.

Wheels (rknn-toolkit-lite2, numpy, ...) are unpacked into <root>/site, and a librknnrt.so
goes to <root>/lib; the agent and the check put both on their paths. Nothing needs root,
pip or a network on the board. Each wheel's tags are checked against the board's Python
and CPU first, so a wheel for the wrong machine is refused with the reason.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from deploy.board.push import ProgressFn, send_all, stale
from deploy.board.session import BoardError, BoardSession, quote
from deploy.errors import UserError

WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$")


@dataclass
class SetupResult:
    installed: list[str] = field(default_factory=list)  # wheel names unpacked into <root>/site
    library: str | None = None  # where librknnrt.so went
    site: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def wheel_fits(filename: str, python: tuple[int, int], arch: str) -> str | None:
    """None if the wheel can run on this board, else why not."""
    match = WHEEL.match(filename)
    if not match:
        return "not a wheel file name (name-version-python-abi-platform.whl)"
    py_tags, plat_tags = match["py"].split("."), match["plat"].split(".")
    ours = {f"py{python[0]}", f"py{python[0]}{python[1]}", f"cp{python[0]}{python[1]}"}
    if match["abi"] == "abi3":  # the stable ABI: built for cpXY, runs on every CPython from X.Y on
        ours |= {f"cp{python[0]}{minor}" for minor in range(2, python[1] + 1)}
    if not ours & set(py_tags):
        return f"built for {match['py']}, the board runs Python {python[0]}.{python[1]}"
    if "any" not in plat_tags and not any(arch in tag for tag in plat_tags):
        return f"built for {match['plat']}, the board is {arch}"
    return None


def setup_board(board: BoardSession, wheels: Path, progress: ProgressFn | None = None,
                check_cancel=lambda: None) -> SetupResult:
    progress = progress or (lambda done, total, name: None)
    if not wheels.is_dir():
        raise UserError(f"--wheels {wheels}: no such folder")
    files = sorted(wheels.glob("*.whl"))
    library = wheels / "librknnrt.so"
    if not files and not library.is_file():
        raise UserError(f"--wheels {wheels}: no .whl files and no librknnrt.so to install")
    python = board.run(quote(board.profile.python, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"),
                       check=False).out.split()
    if len(python) != 2:
        raise BoardError(f"{board.profile.name}: `{board.profile.python}` does not run on the board; "
                         "set the profile's --python")
    arch = board.run("uname -m").out.strip()
    for wheel in files:
        why = wheel_fits(wheel.name, (int(python[0]), int(python[1])), arch)
        if why:
            raise UserError(f"{wheel.name}: {why}; bring the wheel for this board")
    root = board.root
    store, site, lib = (posixpath.join(root, d) for d in ("wheels", "site", "lib"))
    board.run("mkdir -p -- " + quote(store, site, lib))
    targets = {posixpath.join(store, w.name): w for w in files}
    if library.is_file():
        targets[posixpath.join(lib, "librknnrt.so")] = library
    send_all(board, stale(board, targets), progress, check_cancel)
    result = SetupResult(site=site, library=posixpath.join(lib, "librknnrt.so") if library.is_file() else None)
    for wheel in files:
        remote = posixpath.join(store, wheel.name)
        unpack = f"import zipfile; zipfile.ZipFile({remote!r}).extractall({site!r})"
        with board.transfer(f"unpacking {wheel.name}"):
            board.run(quote(board.profile.python, "-c", unpack))
        result.installed.append(wheel.name)
    return result
