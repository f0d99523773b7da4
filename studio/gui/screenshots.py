"""Screenshots of every page with real content, for the README (run under Xvfb: `make screenshots`).

    python -m studio.gui.screenshots --model assets/models/student.pt --data out/demo/data/data.yaml \
        --onnx out/demo/exports/student.onnx --calib out/demo/data/images/train --scene assets/samples/scene_000.jpg
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("model", "data", "onnx", "calib", "scene"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--out", default="docs/screenshots")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="studio-shots-"))
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(work / "settings"))
    app = QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    from studio.gui.main_window import MainWindow

    window = MainWindow()
    window.resize(1440, 900)
    window.show()

    def shoot(name: str):
        return lambda: window.grab().save(str(out / f"{name}.png"))

    def wait_for(check, then, timeout_ms: int = 180000):
        """Poll until check() holds, then run `then` (the screenshot steps chain through this)."""
        deadline = [timeout_ms]

        def poll():
            deadline[0] -= 200
            if check() or deadline[0] <= 0:
                then()
            else:
                QTimer.singleShot(200, poll)
        QTimer.singleShot(200, poll)

    models = window.page("Models")
    data = window.page("Data")
    export = window.page("Export")
    live = window.page("Live")

    def step_models():
        window.show_page("Models")
        models.inspect(args.model)
        wait_for(lambda: models.layers.rowCount() > 0, lambda: (shoot("models")(), step_data()))

    def step_data():
        window.show_page("Data")
        data.data.setText(args.data)
        data.run_stats()
        wait_for(lambda: data.plots.count() == 3, lambda: QTimer.singleShot(800, lambda: (
            data.plots.setCurrentIndex(1), shoot("data")(), step_export())))

    def step_export():
        window.show_page("Export")
        export.model.setText(args.model)
        export.calib.setText(args.calib)
        export.calib_count.setValue(64)
        export.out.setText(str(work / "shot.rknn"))
        export.run()
        wait_for(lambda: export.table.rowCount() > 0, lambda: (shoot("export")(), step_live()))

    def step_live():
        window.show_page("Live")
        live.model.setText(args.onnx)
        live.source.setText(args.scene)
        live.tile.setValue(320)
        live.workers.setValue(2)
        live.start()
        wait_for(lambda: live.frames_shown >= 3, lambda: (shoot("live")(), live.stop(), app.quit()))

    QTimer.singleShot(300, step_models)
    app.exec()
    window.close()
    print("\n".join(str(p) for p in sorted(out.glob("*.png"))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
