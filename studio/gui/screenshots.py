"""Screenshots of every page with real content, for the README (run under Xvfb: `make screenshots`).

    python -m studio.gui.screenshots --model assets/models/student.pt --data out/demo/data/data.yaml \
        --onnx out/demo/exports/student.onnx --calib out/demo/data/images/train --scene assets/samples/scene_000.jpg

    python -m studio.gui.screenshots --remote-sensing --onnx out/demo/chain/exports/float.onnx   # that window only

    python -m studio.gui.screenshots --remote-sensing --onnx student-obb.onnx --scene big.tif   # the lazy viewer

    python -m studio.gui.screenshots --wizard --data out/demo/data/data.yaml   # each wizard step, on a real run
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication


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


def shoot_remote_sensing(app: QApplication, onnx: Path, out: Path) -> None:
    """The remote-sensing demo once the scene is merged and the flight plays, zoomed in on its best detection; an
    oriented-box model runs on the dense scene, as the demo's default does."""
    from deploy.runtime.metadata import read_model_meta
    from studio.gui.remote_sensing import DENSE_SCENE, SCENE, RemoteSensingDemo

    demo = RemoteSensingDemo(model=onnx, scene=DENSE_SCENE if read_model_meta(onnx).task == "obb" else SCENE)
    demo.resize(1440, 900)
    demo.show()
    demo.start()

    def shoot():
        if demo.scene_dets is not None and len(demo.scene_dets):
            x1, y1, x2, y2 = demo.scene_dets.boxes[0].tolist()
            demo.view.zoom(2.0)
            demo.view.centerOn((x1 + x2) / 2, (y1 + y2) / 2)
        QTimer.singleShot(500, lambda: (demo.grab().save(str(out / "remote-sensing.png")), demo.close(), app.quit()))

    wait_for(lambda: demo.scene_dets is not None and demo.flight_frames >= 10, shoot)
    app.exec()


def shoot_large_scene(app: QApplication, onnx: Path, scene: Path, out: Path) -> Path:
    """The remote-sensing demo on a raster bigger than memory: opened through overviews, run by windows, then
    zoomed to half scale around the scene's centre with the merged detections outlined."""
    from studio.gui.remote_sensing import RemoteSensingDemo

    demo = RemoteSensingDemo(model=onnx)
    demo.resize(1440, 900)
    demo.show()
    demo.open_scene(scene)
    path = out / "lazy-scene-viewer.png"

    def shoot():
        h, w = demo.pyramid.shape[:2]
        demo.view.zoom(0.5 / demo.view.transform().m11())
        demo.view.centerOn(w / 2, h / 2)
        QTimer.singleShot(1500, lambda: (demo.grab().save(str(path)), demo.close(), app.quit()))

    wait_for(lambda: demo.pyramid is not None, lambda: (demo.start(), wait_for(
        lambda: demo.scene_dets is not None and demo.flight_frames >= 10, shoot, 900000)), 900000)
    app.exec()
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("model", "data", "onnx", "calib", "scene"):
        parser.add_argument(f"--{name}")
    parser.add_argument("--board", help="a board profile whose host key is trusted (for the Deploy page)")
    parser.add_argument("--pages", default="models,data,export,deploy,live", help="which pages, in this order")
    parser.add_argument("--remote-sensing", action="store_true",
                        help="instead of the pages, the remote-sensing demo window on --onnx")
    parser.add_argument("--wizard", action="store_true",
                        help="instead of the pages, each step of the Compress wizard on a real run on --data")
    parser.add_argument("--out", default="docs/screenshots")
    args = parser.parse_args(argv)
    if args.remote_sensing and not args.onnx:
        parser.error("--remote-sensing needs --onnx (an .onnx with its .onnx.json sidecar)")
    if args.wizard and not args.data:
        parser.error("--wizard needs --data (a data.yaml)")
    pages = [p for p in args.pages.split(",") if p != "deploy" or args.board]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="studio-shots-"))
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(work / "settings"))
    app = QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    if args.remote_sensing and args.scene:
        print(shoot_large_scene(app, Path(args.onnx), Path(args.scene), out))
        return 0
    if args.remote_sensing:
        shoot_remote_sensing(app, Path(args.onnx), out)
        print(out / "remote-sensing.png")
        return 0
    from studio.gui.main_window import MainWindow

    window = MainWindow()
    window.resize(1440, 900)
    window.show()
    if args.wizard:
        from studio.gui.wizard_screenshots import shoot_wizard

        QTimer.singleShot(300, lambda: shoot_wizard(app, window, Path(args.data), out, work, wait_for))
        app.exec()
        window.close()
        print("\n".join(str(p) for p in sorted(out.glob("wizard-*.png"))))
        return 0

    def shoot(name: str):
        return lambda: window.grab().save(str(out / f"{name}.png"))

    models = window.page("Models")
    data = window.page("Data")
    export = window.page("Export")
    deploy = window.page("Deploy")
    live = window.page("Live")

    def after(name: str):
        """The step that follows page `name` in --pages (quit after the last)."""
        rest = pages[pages.index(name) + 1:]
        return steps[rest[0]] if rest else app.quit

    def step_models():
        window.show_page("Models")
        models.inspect(args.model)
        wait_for(lambda: models.layers.rowCount() > 0, lambda: (shoot("models")(), after("models")()))

    def step_data():
        window.show_page("Data")
        data.data.setText(args.data)
        data.run_stats()
        wait_for(lambda: data.plots.count() == 3, lambda: QTimer.singleShot(800, lambda: (
            data.plots.setCurrentIndex(1), shoot("data")(), after("data")())))

    def step_export():
        window.show_page("Export")
        export.model.setText(args.model)
        export.calib.setText(args.calib)
        export.calib_count.setValue(64)
        export.out.setText(str(work / "shot.rknn"))
        export.run()
        wait_for(lambda: export.table.rowCount() > 0, lambda: (shoot("export")(), after("export")()))

    def step_deploy():
        window.show_page("Deploy")
        deploy.refresh()
        deploy.model.setText(args.onnx)
        deploy.check()
        wait_for(lambda: deploy.facts.rowCount() > 0, lambda: (shoot("deploy")(), after("deploy")()))

    def step_live():
        window.show_page("Live")
        live.model.setText(args.onnx)
        live.source.setText(args.scene)
        live.tile.setValue(320)
        live.workers.setValue(2)
        live.start()
        wait_for(lambda: live.frames_shown >= 3, lambda: (shoot("live")(), live.stop(), after("live")()))

    steps = {"models": step_models, "data": step_data, "export": step_export, "deploy": step_deploy,
             "live": step_live}
    QTimer.singleShot(300, steps[pages[0]])
    app.exec()
    window.close()
    print("\n".join(str(p) for p in sorted(out.glob("*.png"))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
