"""`studio gui`: start Qt, show the main window; heavy packages load only when a page needs them."""
from __future__ import annotations

import time


def run(exit_after_show: bool = False) -> int:
    """Open the desktop studio; with exit_after_show, print seconds since start once shown, then quit."""
    started = time.perf_counter()
    from PySide6.QtCore import QTimer

    from studio.gui.main_window import MainWindow
    from studio.gui.qt_app import application

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
