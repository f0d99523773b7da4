"""The one QApplication of the process, or a clear error where no screen exists.

Its own module so that any window (the studio, the remote-sensing demo opened from the
command line) can make it without importing the main window.
"""
from __future__ import annotations

import sys


def application():
    """The QApplication (made once), or a one-line UserError where there is no screen to show it on."""
    import os

    from PySide6.QtWidgets import QApplication

    from deploy.errors import UserError

    headless = sys.platform.startswith("linux") and not any(
        os.environ.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))
    if headless and QApplication.instance() is None:
        raise UserError("no display to open a window on: run this on a desktop, under `xvfb-run -a`, "
                        "or over `ssh -X`")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Edge Deploy Studio")
    app.setStyle("Fusion")
    return app
