"""`studio gui`: start Qt, show the main window; heavy packages load only when a page needs them."""
from __future__ import annotations

import sys
import time


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


def run(exit_after_show: bool = False) -> int:
    """Open the desktop studio; with exit_after_show, print seconds since start once shown, then quit."""
    started = time.perf_counter()
    from PySide6.QtCore import QTimer

    from studio.gui.main_window import MainWindow

    app = application()
    window = MainWindow()
    window.show()
    if exit_after_show:
        def report() -> None:
            print(f"shown {time.perf_counter() - started:.3f}", flush=True)
            window.close()
            app.quit()

        QTimer.singleShot(0, report)
    return app.exec()
