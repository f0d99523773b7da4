"""`studio gui`: the desktop studio."""
from __future__ import annotations

from studio.cli_support import stdout


def gui():
    """Open the desktop studio (not yet: it arrives with the GUI issue)."""
    stdout.print("The desktop studio is not built yet; use the commands listed by `studio --help`.")
