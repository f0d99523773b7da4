"""The desktop studio under pytest-qt (offscreen): pages, jobs, errors, export report, data page."""
from __future__ import annotations

import time

import pytest

from studio.core.data.synth import SynthConfig, generate
from studio.gui.main_window import MainWindow


def test_signal_emission_keeps_refcounts():
    """PySide6 6.12.0 decremented True's refcount on every emit and crashed the studio; constraints pin 6.11.3."""
    import sys

    from PySide6.QtCore import QObject, Signal

    class Emitter(QObject):
        bare = Signal()
        carrying = Signal(object)

    emitter = Emitter()
    emitter.bare.connect(lambda: None)
    emitter.carrying.connect(lambda value: None)
    before = sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None)
    for i in range(200):
        emitter.bare.emit()
        emitter.carrying.emit(i)
    assert (sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None)) == before


def test_every_page_opens_with_an_empty_state(window):
    for i, name in enumerate(MainWindow.PAGES):
        window.nav.setCurrentRow(i)
        assert window.stack.currentWidget().objectName() == f"page-{name.lower()}"
    assert window.page("Models").hint.text().startswith("Open a model")
    assert "No report yet" in window.page("Export").summary.text()


def test_bad_model_file_gives_an_error_dialog(window, qtbot, tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    window.page("Models").inspect(str(bad))
    qtbot.waitUntil(lambda: window.last_error is not None, timeout=30000)
    assert window.last_error.text().startswith(f"{bad}: not a readable PyTorch checkpoint")
    assert window.last_error.isVisible()


def test_models_page_inspects_a_checkpoint(window, qtbot, detector_pt):
    page = window.page("Models")
    page.inspect(str(detector_pt))
    qtbot.waitUntil(lambda: page.layers.rowCount() > 20, timeout=60000)
    assert page.fields["classes"].text().startswith("4: vehicle")
    assert page.fields["kind"].text() == "checkpoint"


def test_a_running_job_is_cancelled_from_its_row(window, qtbot):
    def slow(job):
        job.stage("waiting", 1000)
        for i in range(1000):
            job.step("waiting", i, 1000)
            time.sleep(0.01)

    thread = window.jobs.start("Slow job", slow)
    row = window.jobs.rows[-1]
    qtbot.waitUntil(lambda: row.bar.value() > 5, timeout=10000)
    row.cancel.click()
    qtbot.waitUntil(lambda: thread.outcome == "cancelled", timeout=10000)
    qtbot.waitUntil(lambda: row.stage.text() == "cancelled", timeout=5000)
    assert not row.cancel.isEnabled()


def test_closing_during_a_job_asks_then_cancels(window, qtbot, monkeypatch):
    asked = []
    monkeypatch.setattr(window, "confirm_close", lambda: asked.append(True) or True)

    def forever(job):
        while True:
            job.step("spinning", 0, None)
            time.sleep(0.01)

    thread = window.jobs.start("Forever", forever)
    qtbot.waitUntil(thread.isRunning, timeout=5000)
    window.close()
    assert asked and thread.outcome == "cancelled" and not thread.isRunning()


@pytest.mark.slow
def test_export_page_runs_an_export_and_shows_its_report(window, qtbot, detector_pt, calib_dir, tmp_path):
    page = window.page("Export")
    page.model.setText(str(detector_pt))
    page.imgsz.setValue(96)
    page.calib.setText(str(calib_dir))
    page.out.setText(str(tmp_path / "gui.rknn"))
    page.run_button.click()
    qtbot.waitUntil(lambda: page.table.rowCount() == 6, timeout=180000)
    assert page.summary.text().startswith("Minimum cosine")
    assert page.table.item(0, 0).text() == "box0"
    assert (tmp_path / "gui.rknn").is_file() and page.run_button.isEnabled()


def test_data_page_checks_a_dataset_and_draws_labels(window, qtbot, tmp_path):
    data = generate(SynthConfig(tmp_path / "ds", images=6, size=96))
    page = window.page("Data")
    page.data.setText(str(data))
    page.run_stats()
    qtbot.waitUntil(lambda: page.plots.count() == 3, timeout=30000)
    assert "6 images" in page.stats_text.text() and "No problems found" in page.stats_text.text()
    assert page.samples.count() == 6
    qtbot.waitUntil(lambda: page.viewer.pixmap() is not None and not page.viewer.pixmap().isNull(), timeout=5000)


FLOOD = """
import sys
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication
QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, sys.argv[1])
app = QApplication([])
from studio.gui.main_window import MainWindow
window = MainWindow()
window.show()
def flood(job):
    job.stage("flood", 20000)
    for i in range(20000):
        job.step("flood", i + 1, 20000)
thread = window.jobs.start("Flood", flood)
QTimer.singleShot(3000, lambda: (window.close(), app.quit()))
app.exec()
print("outcome", thread.outcome)
"""


def test_a_flood_of_progress_events_exits_cleanly(tmp_path):
    """20,000 progress steps from a worker thread: the UI gets a throttled stream and the process exits cleanly.

    (With PySide6 6.12.0 this crashed at exit; see test_signal_emission_keeps_refcounts.)"""
    import os
    import subprocess
    import sys

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", FLOOD, str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "outcome done" in out.stdout and "Fatal" not in out.stderr


@pytest.fixture(scope="module")
def live_onnx(tmp_path_factory, detector_pt):
    from typer.testing import CliRunner

    from studio.cli import app

    out = tmp_path_factory.mktemp("live") / "tiny.onnx"
    result = CliRunner().invoke(app, ["export", str(detector_pt), "--imgsz", "96", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    return out


def _start_live(window, qtbot, model, source, conf: int):
    page = window.page("Live")
    page.model.setText(str(model))
    page.source.setText(str(source))
    page.workers.setValue(2)
    page.conf[0].setValue(conf)
    page.start()
    return page


def test_live_panel_runs_frames_with_boxes_and_speed(window, qtbot, live_onnx, calib_dir):
    page = _start_live(window, qtbot, live_onnx, calib_dir, conf=5)
    qtbot.waitUntil(lambda: page.frames_shown >= 12, timeout=60000)
    assert page.table.rowCount() > 0  # boxes of the current frame
    assert page.view.pixmap() is not None and not page.view.pixmap().isNull()
    assert float(page.numbers.text().split()[1]) > 0  # frames/s
    assert set(page.lanes.frames) == {0, 1}  # both workers handled frames
    page.toggle_pause()
    qtbot.wait(300)
    shown = page.frames_shown
    qtbot.wait(500)
    assert page.frames_shown <= shown + 1  # paused: at most the frame already in flight
    page.step_button.click()
    qtbot.waitUntil(lambda: page.frames_shown > shown, timeout=10000)
    page.stop()
    assert not page.runner.isRunning()


def test_confidence_slider_changes_the_boxes_shown(window, qtbot, live_onnx, calib_dir):
    image = calib_dir / "img0.png"
    page = _start_live(window, qtbot, live_onnx, image, conf=5)
    qtbot.waitUntil(lambda: page.frames_shown >= 5, timeout=60000)
    low = page.table.rowCount()
    page.conf[0].setValue(90)
    seen = page.frames_shown
    qtbot.waitUntil(lambda: page.frames_shown >= seen + 8, timeout=60000)
    high = page.table.rowCount()
    page.stop()
    assert low > high


def test_live_panel_bad_source_shows_the_error(window, qtbot, live_onnx, tmp_path):
    _start_live(window, qtbot, live_onnx, tmp_path / "nothing-here.mp4", conf=25)
    qtbot.waitUntil(lambda: window.last_error is not None, timeout=30000)
    assert "no such file, folder or camera" in window.last_error.text()
