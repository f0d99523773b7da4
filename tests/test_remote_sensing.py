"""The remote-sensing demo window: the tiled scene in scene pixels, pan and zoom, a paced flight, clean stops."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QPushButton, QWidget

from deploy.runtime.frame import Frame
from deploy.runtime.sources import Source
from studio.core.pacing import PacedSource, video_fps
from studio.gui.remote_sensing import FLIGHT, SCENE, RemoteSensingDemo, default_model, open_remote_sensing_demo
from tests.conftest import NAMES, coloured_near

TILE = 192  # the tiny model runs at 96 px: tiles of twice that give 14 x 14 tiles over 2048 px, fast enough
SCENE_PX = 2048


@pytest.fixture
def demo(qtbot, tiny_onnx, tmp_path):
    window = RemoteSensingDemo(tmp_path, model=tiny_onnx, tile=TILE)
    qtbot.addWidget(window)
    window.show()
    yield window
    window.close()


class _Frames(Source):
    def __init__(self, count: int):
        self.count = count

    def __iter__(self):
        for i in range(self.count):
            yield Frame(np.zeros((8, 8, 3), np.uint8), i)


class _Clock:
    """A clock that moves only when the pacing sleeps or the consumer spends time on a frame."""

    def __init__(self):
        self.now, self.sleeps = 100.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _paced(fps: float, count: int, busy=lambda index: 0.0) -> tuple[list[int], list[float], list[float]]:
    """Frame indices, when each was handed over (seconds from the start) and the sleeps the pacing asked for;
    busy(index) is how long the consumer spends on a frame before it asks for the next."""
    clock = _Clock()
    start, indices, times = clock.now, [], []
    for frame in PacedSource(_Frames(count), fps, clock=clock, sleep=clock.sleep):
        indices.append(frame.index)
        times.append(clock.now - start)
        clock.now += busy(frame.index)
    return indices, times, clock.sleeps


def test_a_paced_source_keeps_to_the_video_frame_rate():
    assert video_fps(str(FLIGHT)) == 15.0
    indices, times, sleeps = _paced(50.0, 11, busy=lambda index: 0.005)
    assert indices == list(range(11))
    assert times == pytest.approx([i / 50 for i in range(11)])  # the first at once, then one every 1/50 s
    assert sleeps == pytest.approx([1 / 50 - 0.005] * 10)  # what the consumer did not use of each period


def test_a_paced_source_that_fell_behind_does_not_rush_to_catch_up():
    _, times, sleeps = _paced(10.0, 5, busy=lambda index: 0.35 if index == 1 else 0.0)
    # frame 1 kept the consumer 0.35 s: frame 2 follows at once, then one period apart again (no burst)
    assert times == pytest.approx([0.0, 0.1, 0.45, 0.55, 0.65])
    assert sleeps == pytest.approx([0.1, 0.1, 0.1])


def test_a_paced_source_at_zero_fps_is_not_paced():
    source = _Frames(4)
    source.live, source.name = True, "camera:0"
    paced = PacedSource(source, 0.0)
    assert (paced.live, paced.name) == (True, "camera:0")
    indices, times, sleeps = _paced(0.0, 4, busy=lambda index: 0.01)
    assert indices == [0, 1, 2, 3] and times == pytest.approx([0.0, 0.01, 0.02, 0.03]) and sleeps == []


def test_the_default_model_is_the_chain_export_then_the_plain_student(tmp_path):
    assert default_model(tmp_path) is None
    student = tmp_path / "exports" / "student.onnx"
    student.parent.mkdir(parents=True)
    student.write_bytes(b"")
    assert default_model(tmp_path) == student
    chain = tmp_path / "chain" / "exports" / "float.onnx"
    chain.parent.mkdir(parents=True)
    chain.write_bytes(b"")
    assert default_model(tmp_path) == chain


def test_scene_is_tiled_merged_in_scene_pixels_and_flight_is_paced(demo, qtbot):
    view = demo.view
    assert view.sceneRect() == QRectF(0, 0, SCENE_PX, SCENE_PX)  # shown before anything runs
    demo.start()
    assert not demo.start_button.isEnabled() and demo.stop_button.isEnabled()
    qtbot.waitUntil(lambda: demo.scene_dets is not None, timeout=60000)

    grid = demo.scene_runner.session.tile_grid
    assert sorted(grid) == sorted(demo.grid) and len(grid) == 14 * 14  # what ran is what is drawn
    assert len(view.grid.childItems()) == len(grid)
    starts = sorted({x for x, _, _ in grid})
    assert starts[0] == 0 and starts[-1] + TILE == SCENE_PX  # the tiles reach both edges
    assert all(b - a < TILE for a, b in zip(starts, starts[1:]))  # and overlap: no gap between them
    dets = demo.scene_dets
    assert len(dets) > 0 and dets.image.shape[:2] == (SCENE_PX, SCENE_PX)
    assert dets.boxes.min() >= 0 and dets.boxes.max() <= SCENE_PX
    assert (dets.boxes[:, 2:] > TILE).any()  # boxes beyond the first tile: scene pixels, not tile pixels
    assert view.sceneRect() == QRectF(0, 0, SCENE_PX, SCENE_PX)
    rows = [[demo.counts.item(r, c).text() for c in range(3)] for r in range(demo.counts.rowCount())]
    assert sum(int(detected) for _, detected, _ in rows) == len(dets)
    assert {name: int(labelled) for name, _, labelled in rows} == dict(zip(NAMES, (157, 53, 16, 48)))  # scene_000.txt

    fitted = view.transform().m11()
    zoom_in = next(b for b in demo.findChildren(QPushButton) if b.text() == "Zoom in")
    zoom_in.click()
    assert view.transform().m11() == pytest.approx(fitted * 1.25)
    wheel = QWheelEvent(QPointF(50, 50), QPointF(view.mapToGlobal(QPoint(50, 50))), QPoint(), QPoint(0, 240),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), wheel)
    assert view.transform().m11() == pytest.approx(fitted * 1.25 ** 3)
    view.fit()
    assert view.transform().m11() == pytest.approx(fitted)
    demo.grid_box.setChecked(False)
    assert not view.grid.isVisible()

    qtbot.waitUntil(lambda: demo.flight_frames >= 5, timeout=30000)
    paced = demo.flight_runner.session.source  # the flight plays at the video's 15 fps, not as fast as 96 px runs
    assert isinstance(paced, PacedSource) and paced.fps == video_fps(str(FLIGHT)) == 15.0
    assert paced.name == str(FLIGHT) and (paced.clock, paced.sleep) == (time.perf_counter, time.sleep)
    assert not demo.flight_view.pixmap().isNull()
    assert demo.flight_status.text().startswith("frames/s ")

    demo.stop()
    assert not demo.running() and demo.start_button.isEnabled()


def test_closing_while_running_stops_both_threads(demo, qtbot):
    demo.start()  # close at once: the sessions may not exist yet on their threads
    demo.close()
    assert not demo.scene_runner.isRunning() and not demo.flight_runner.isRunning()


def test_embedded_with_a_parent_it_stops_on_shutdown(qtbot, tiny_onnx, tmp_path):
    host = QWidget()
    qtbot.addWidget(host)
    demo = RemoteSensingDemo(tmp_path, model=tiny_onnx, parent=host, tile=TILE)
    assert not demo.isWindow()
    host.show()
    demo.start()
    qtbot.waitUntil(lambda: demo.flight_frames >= 1, timeout=30000)
    demo.shutdown()
    assert not demo.running() and demo.start_button.isEnabled()


def test_no_model_gives_the_error_dialog(qtbot, tmp_path, tiny_onnx):
    window = RemoteSensingDemo(tmp_path / "nothing-here")
    qtbot.addWidget(window)
    assert window.model.text() == ""
    window.start()
    assert window.last_error.isVisible() and "run `studio demo`" in window.last_error.text()
    assert window.scene_runner is None
    bare = tmp_path / "bare.onnx"
    shutil.copyfile(tiny_onnx, bare)  # without its .onnx.json sidecar
    window.model.setText(str(bare))
    window.start()
    assert window.last_error.text().startswith(str(bare)) and window.scene_runner is None


def test_live_page_opens_the_demo_in_its_own_window(qtbot, tiny_onnx):
    from studio.gui.pages.live_page import LivePage

    page = LivePage()
    qtbot.addWidget(page)
    page.model.setText(str(tiny_onnx))
    page.demo_button.click()
    demo = page.remote_sensing
    assert demo.isWindow() and demo.isVisible() and demo.model.text() == str(tiny_onnx)
    qtbot.waitUntil(lambda: demo.flight_frames >= 2, timeout=30000)
    page.shutdown()
    assert not demo.isVisible() and not demo.running()


def test_the_command_runs_qt_until_the_window_closes(qtbot, tmp_path):
    seen = []

    def close_it():  # records what it saw and always closes, so a wrong message fails instead of hanging
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, RemoteSensingDemo) and w.isVisible()]
        for window in windows:
            seen.append(window.last_error.text() if window.last_error else None)
            window.close()

    QTimer.singleShot(300, close_it)
    open_remote_sensing_demo(tmp_path)  # returns only once close_it closed the window
    assert len(seen) == 1 and "run `studio demo`" in seen[0]  # no model under this out


@pytest.mark.parametrize("command", [["demo", "--remote-sensing"], ["gui"]])
def test_windows_without_a_display_are_one_line(command):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    done = subprocess.run([sys.executable, "-m", "studio.cli", *command], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "no display" in done.stderr and "Traceback" not in done.stderr


def test_stop_ends_a_tiled_scene_without_running_all_its_tiles(tiny_onnx):
    """64 x 64 tiles of 32 px over the scene: stopped after the first tile, the session ends long before."""
    import threading

    from studio.core.live import LiveRequest, LiveSession

    session = LiveSession(LiveRequest(model=tiny_onnx, source=str(SCENE), tile=32, overlap=0.0, loop=False))
    shown = []
    first_tile = threading.Event()
    original = session.meter.add

    def count(dets):
        original(dets)
        first_tile.set()

    session.meter.add = count
    threading.Thread(target=lambda: (first_tile.wait(60), session.stop()), daemon=True).start()
    session.run(lambda dets, stats: shown.append(dets))
    assert first_tile.is_set() and shown == []  # the cut-short scene is not shown as a whole one
    assert session.pipeline.stats.frames < 64 * 64 // 4


def test_the_oriented_student_draws_turned_boxes_on_the_dense_scene(qtbot, obb_student_onnx, tmp_path):
    """With the demo's export of the oriented-box student in place, the window opens on it and the dense scene; each
    turned object drawn clear of the others shows its class colour at the middle of its turned sides, and not at the
    corners of the upright box around it. Upright boxes are one choice away."""
    import shutil

    from deploy.runtime.draw import class_color
    from deploy.runtime.rotated import corners
    from studio.gui.remote_sensing import DENSE_SCENE, ORIENTED, UPRIGHT

    exported = tmp_path / "exports" / "student-obb.onnx"
    exported.parent.mkdir()
    for suffix in ("", ".json"):
        shutil.copyfile(f"{obb_student_onnx}{suffix}", f"{exported}{suffix}")
    window = RemoteSensingDemo(tmp_path, tile=320)
    qtbot.addWidget(window)
    window.show()
    assert window.kind.currentText() == ORIENTED and window.scene_path == DENSE_SCENE
    assert window.model.text() == str(exported)
    window.start()
    qtbot.waitUntil(lambda: window.scene_dets is not None or window.last_error is not None, timeout=120000)
    window.stop()
    assert window.last_error is None
    dets = window.scene_dets
    assert dets.rboxes is not None and len(dets) > 300  # a dense scene: hundreds of turned boxes
    image = window.view.image.pixmap().toImage()
    rgb = np.array([[image.pixelColor(x, y).getRgb()[:3] for x in range(image.width())]
                    for y in range(image.height())])
    quads = corners(dets.rboxes)
    clear = []
    for k in range(len(dets)):
        lo, hi = quads[k].min(0), quads[k].max(0)
        later = dets.boxes[k + 1:]  # drawn after k, maybe over it
        overlaps = (later[:, 0] < hi[0] + 3) & (later[:, 2] > lo[0] - 3) & (later[:, 1] < hi[1] + 3) & \
                   (later[:, 3] > lo[1] - 3)
        angle = np.degrees(dets.rboxes[k, 4]) % 90
        if not overlaps.any() and 25 < angle < 65 and min(dets.rboxes[k, 2:4]) > 8 and lo.min() > 4 and \
                hi.max() < min(rgb.shape[:2]) - 4:
            clear.append(k)
    assert len(clear) >= 5
    sides_drawn = corners_bare = large = 0
    for k in clear:
        colour = class_color(int(dets.classes[k]))
        sides = (quads[k] + np.roll(quads[k], -1, axis=0)) / 2
        sides_drawn += sum(coloured_near(rgb, p, colour) for p in sides) >= 3
        if min(dets.rboxes[k, 2:4]) >= 16:  # the corners of its upright box lie s/2 px (or more) off its sides
            x1, y1, x2, y2 = dets.boxes[k]
            earlier = dets.boxes[:k][dets.classes[:k] == dets.classes[k]]  # ships moored hull to hull, say
            for x, y in ((x1 + 1, y1 + 1), (x2 - 1, y2 - 1)):
                inside = (earlier[:, 0] <= x) & (x <= earlier[:, 2]) & (earlier[:, 1] <= y) & (y <= earlier[:, 3])
                if not inside.any():
                    large += 1
                    corners_bare += not coloured_near(rgb, (x, y), colour, reach=0)
    assert sides_drawn == len(clear) and large >= 3 and corners_bare == large, (sides_drawn, corners_bare, large)

    window.kind.setCurrentText(UPRIGHT)
    assert window.scene_path == SCENE and window.scene_dets is None
    window.close()



def test_the_kind_combo_names_an_opened_scene_and_brings_it_back(qtbot, tiny_onnx, tmp_path):
    import cv2

    from studio.gui.remote_sensing import DENSE_SCENE, OPENED, ORIENTED

    mine = tmp_path / "mine.png"
    cv2.imwrite(str(mine), np.full((400, 500, 3), 90, np.uint8))
    window = RemoteSensingDemo(tmp_path, model=tiny_onnx, tile=192)
    qtbot.addWidget(window)
    assert window.kind.findText(OPENED) < 0  # nothing opened yet: only the bundled demos
    window.open_scene(mine)
    assert window.kind.currentText() == OPENED and window.scene_path == mine
    assert window.model.text() == str(tiny_onnx)
    window.kind.setCurrentText(ORIENTED)
    assert window.scene_path == DENSE_SCENE and window.scene_box.title().endswith(DENSE_SCENE.name)
    window.kind.setCurrentText(OPENED)
    assert window.scene_path == mine and window.scene_box.title().endswith("mine.png")
    assert window.view.scene().sceneRect().width() == 500  # the opened image is what is shown
    window.close()
