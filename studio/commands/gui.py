"""`studio gui`: the desktop studio."""
from __future__ import annotations

import typer

from studio.cli_support import handles_errors


@handles_errors
def gui(exit_after_show: bool = typer.Option(False, "--exit-after-show", hidden=True,
                                             help="Print seconds to the shown window, then quit (for benchmarks).")):
    """Open the desktop studio: models, data, the compress wizard, export, deploy and live pages, with a jobs dock.

    Example: studio gui
    """
    from studio.gui.app import run

    raise typer.Exit(run(exit_after_show))
