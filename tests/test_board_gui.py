"""The Deploy page and the live panel on a board, under pytest-qt, against a real sshd on 127.0.0.1."""
from __future__ import annotations

import subprocess

import cv2
import pytest

from deploy.board.agent import protocol


def fingerprint(pub) -> str:
    return subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True).stdout.split()[1]


def add_board(page, sshd, root, python="python3") -> None:
    for field, value in ((page.name, "desk"), (page.host, "127.0.0.1"), (page.user, sshd.user),
                         (page.python, python), (page.root, str(root))):
        field.setText(value)
    page.port.setValue(sshd.port)
    page.key.setText(str(sshd.client_key))
    page.add_board()


def test_refusing_the_host_key_sends_nothing(window, qtbot, sshd, tmp_path, monkeypatch):
    window.show_page("Deploy")
    page = window.page("Deploy")
    add_board(page, sshd, tmp_path / "board")
    monkeypatch.setattr(page, "confirm_trust", lambda *a: False)
    page.check()
    qtbot.waitUntil(lambda: "was not trusted" in page.status.text(), timeout=30000)
    assert not (tmp_path / "home" / "known_hosts").exists() and not (tmp_path / "board").exists()


@pytest.mark.slow  # runs the agent on the board (16-18 s here)
def test_deploy_page_checks_pushes_and_runs_the_board_in_the_live_panel(window, qtbot, sshd, board_python, tiny_onnx,
                                                                       calib_dir, tmp_path, monkeypatch):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for i, path in enumerate(sorted(calib_dir.iterdir())):
        cv2.imwrite(str(scenes / f"s{i}.png"), cv2.imread(str(path)))
    window.show_page("Deploy")
    page = window.page("Deploy")
    root = tmp_path / "board"
    add_board(page, sshd, root, board_python)
    assert page.boards.rowCount() == 1 and page.selected() == "desk"
    asked = []
    monkeypatch.setattr(page, "confirm_trust", lambda name, kind, fp: asked.append(fp) or True)
    page.check()
    qtbot.waitUntil(lambda: page.facts.rowCount() > 10, timeout=30000)
    assert asked == [fingerprint(sshd.host_key.with_suffix(".pub"))]
    assert "the agent can run" in page.status.text()
    rows = {page.facts.item(r, 0).text(): page.facts.item(r, 1).text() for r in range(page.facts.rowCount())}
    assert rows["python"].startswith("3.9.") and "missing: rknn-toolkit-lite2" in rows

    page.model.setText(str(tiny_onnx))
    page.push()
    qtbot.waitUntil(lambda: "Pushed to desk" in page.status.text(), timeout=60000)
    assert (root / "studio" / "models" / tiny_onnx.name).read_bytes() == tiny_onnx.read_bytes()

    received = []  # (type, frame, worker) of every message the host reads from the agent
    receive = protocol.receive

    def recording(sock):
        header, payload = receive(sock)
        received.append((header.get("type"), header.get("frame"), header.get("worker")))
        return header, payload

    monkeypatch.setattr(protocol, "receive", recording)
    page.source.setText(str(scenes))
    page.backend.setCurrentText("ort")
    page.workers.setValue(2)
    page.run_live()
    live = window.page("Live")
    assert window.stack.currentWidget() is live
    qtbot.waitUntil(lambda: live.frames_shown >= 6, timeout=60000)
    assert "frames/s" in live.numbers.text() and float(live.stage_labels["infer"].text()) > 0
    assert "latency p50" in live.numbers.text()  # measured on the board, read to result
    assert live.view.pixmap() is not None and not live.view.pixmap().isNull()

    def results(since: int = 0) -> list[tuple]:
        return [r for r in received[since:] if r[0] == "result"]

    # both of the agent's workers handle frames (however the board's scheduler shares the first ones out)
    qtbot.waitUntil(lambda: {r[2] for r in results()} == {0, 1}, timeout=60000)

    def quiet(since: int) -> bool:
        """The agent pinged after the last result since `since`: it had nothing to send for PING_S (2 s)."""
        kinds = [r[0] for r in received[since:]]
        return "ping" in kinds and "result" not in kinds[len(kinds) - kinds[::-1].index("ping"):]

    def on_screen(count: int) -> bool:
        return f"   frames {count}   " in live.numbers.text()

    paused_at = len(received)
    live.toggle_pause()
    qtbot.waitUntil(lambda: quiet(paused_at), timeout=60000)  # the frames already on their way have arrived
    frames = [r[1] for r in results()]
    assert frames == list(range(frames[0], frames[0] + len(frames)))  # in order, none lost
    qtbot.waitUntil(lambda: on_screen(len(frames)), timeout=10000)
    shown = live.frames_shown
    stepped_at = len(received)
    live.step_button.click()
    qtbot.waitUntil(lambda: bool(results(stepped_at)) and quiet(stepped_at), timeout=60000)
    assert [r[1] for r in results(stepped_at)] == [frames[-1] + 1]  # a step is exactly one more frame
    qtbot.waitUntil(lambda: live.frames_shown == shown + 1 and on_screen(len(frames) + 1), timeout=10000)
    resumed_at = len(received)
    live.toggle_pause()
    qtbot.waitUntil(lambda: len(results(resumed_at)) >= 3, timeout=60000)  # resumed: frames flow again
    live.stop()
    qtbot.waitUntil(lambda: not live.runner.isRunning(), timeout=20000)
    out = subprocess.run(["pgrep", "-f", str(root)], capture_output=True, text=True).stdout
    assert out.strip() == ""

    monkeypatch.setattr("studio.gui.pages.deploy_page.BENCH_FRAMES", 12)
    window.show_page("Deploy")
    page.bench()  # latency against throughput for 1, 2, 3 workers, in its own tab
    qtbot.waitUntil(lambda: "best" in page.status.text(), timeout=120000)
    view = page.throughput
    assert page.results.currentWidget() is view and view.table.rowCount() == 3
    assert [view.table.item(r, 0).text() for r in range(3)] == ["1", "2", "3"]
    assert float(view.table.item(0, 3).text()) > 0  # latency p50 ms
    assert len(view.figure.axes) == 1 and view.figure.axes[0].get_xlabel() == "throughput, frames/s"


@pytest.mark.slow  # runs the agent on the board (16-18 s here)
def test_two_boards_run_side_by_side_in_the_live_panel(window, qtbot, cli, sshd, second_sshd, board_python,
                                                       tiny_onnx, calib_dir, tmp_path):
    roots = {}
    for name, server in (("left", sshd), ("right", second_sshd)):
        roots[name] = tmp_path / name
        assert cli("board", "add", name, "--host", "127.0.0.1", "--user", server.user, "--port", server.port,
                   "--key", server.client_key, "--python", board_python, "--root", roots[name]).exit_code == 0
        assert cli("board", "check", name, "--trust").exit_code == 0
    window.show_page("Deploy")
    page = window.page("Deploy")
    page.refresh()
    page.boards.selectAll()
    assert page.selected_all() == ["left", "right"]
    page.model.setText(str(tiny_onnx))
    page.source.setText(str(calib_dir))
    page.backend.setCurrentText("ort")
    page.workers.setValue(1)
    page.run_live()
    live = window.page("Live")
    assert [t.title() for t in live.wall.tiles] == ["left", "right"] and not live.view.isVisible()
    qtbot.waitUntil(lambda: all(t.frames_shown >= 3 for t in live.wall.tiles), timeout=90000)
    assert all("frames/s" in t.numbers.text() and not t.view.pixmap().isNull() for t in live.wall.tiles)
    live.stop_button.click()
    qtbot.waitUntil(lambda: not live.wall.running(), timeout=30000)
    for root in roots.values():
        assert subprocess.run(["pgrep", "-f", str(root)], capture_output=True).stdout == b""


@pytest.mark.slow  # runs the split on the board and on the host (~15 s here)
def test_deploy_page_evaluates_on_the_board_beside_the_host(window, qtbot, sshd, board_python, tiny_onnx, tmp_path,
                                                             monkeypatch):
    from studio.core.data.synth import SynthConfig, generate

    data = generate(SynthConfig(tmp_path / "data", images=30, size=96))
    window.show_page("Deploy")
    page = window.page("Deploy")
    add_board(page, sshd, tmp_path / "board", board_python)
    page.trusted["desk"] = True
    page.model.setText(str(tiny_onnx))
    page.backend.setCurrentText("ort")
    page.data.setText(str(data))
    monkeypatch.setattr("studio.gui.pages.deploy_page.EVAL_LIMIT", 4)
    page.evaluate()
    qtbot.waitUntil(lambda: "…" not in page.status.text(), timeout=120000)
    assert "on the board over 4 images" in page.status.text(), page.status.text()
    view = page.accuracy
    assert page.results.currentWidget() is view and view.summary.rowCount() == 2
    assert [view.summary.item(r, 1).text() for r in range(2)] == ["host", "desk"]
    assert view.summary.item(0, 2).text() == view.summary.item(1, 2).text()  # the same mAP50-95 on both
    assert view.classes.columnCount() == 3 and "same detections as float, host on 4 of 4" in view.findings.text()


def test_evaluating_without_data_asks_for_it(window, monkeypatch, tiny_onnx):
    window.show_page("Deploy")
    page = window.page("Deploy")
    errors = []
    monkeypatch.setattr(window, "show_error", errors.append)
    page.evaluate()  # no board yet
    assert errors == ["add a board first, then select it in the list"]
