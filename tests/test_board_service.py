"""A model kept running on the stand-in board as a service: installed, surviving a dropped connection and a
crash of its agent, watched, and removed leaving no process (the stand-in runs no systemd, so the studio's
supervisor keeps it; the unit systemd would get is checked as text)."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from deploy.board.service import unit_text
from tests.conftest import BOARD, processes_with


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"{what} did not happen within {seconds} s")


def test_the_unit_runs_the_agent_from_the_pushed_runtime_and_restarts_it_on_failure():
    text = unit_text(["/usr/bin/python3", "-s", "-m", "deploy.board.agent", "--source", "camera:0", "--run-file",
                      "/home/rock/studio/service/run.json", "--conf", "0.25"], "/home/rock/studio/runtime",
                     {"PYTHONPATH": "/home/rock/studio/runtime:/home/rock/.edge-studio/site"},
                     "/home/rock/studio/service/service.log", "Edge Deploy Studio: m.rknn on 50% of camera:0", "rock")
    assert "User=rock\n" in text and "WantedBy=multi-user.target" in text and "Restart=on-failure" in text
    assert ('ExecStart="/usr/bin/python3" "-s" "-m" "deploy.board.agent" "--source" "camera:0" "--run-file" '
            '"/home/rock/studio/service/run.json" "--conf" "0.25"') in text
    assert "WorkingDirectory=/home/rock/studio/runtime" in text
    assert "StandardOutput=append:/home/rock/studio/service/service.log" in text
    assert "Description=Edge Deploy Studio: m.rknn on 50%% of camera:0" in text  # a specifier kept literal
    user_unit = unit_text(["python3"], "/r", {}, "/l", "d", None)
    assert "User=" not in user_unit and "WantedBy=default.target" in user_unit


@pytest.mark.slow  # starts the service, crashes it, streams it (about 20 s)
def test_a_service_outlives_its_host_and_a_crash_and_leaves_nothing_when_removed(cli, board, tiny_onnx, scenes):
    installed = cli("board", "install", BOARD, tiny_onnx, "--backend", "ort", "--source", scenes, "--loop",
                    "--workers", 1, "--json")
    assert installed.exit_code == 0, installed.stderr
    status = json.loads(installed.stdout)
    assert status["running"] and status["manager"] == "supervisor"  # no systemd on the stand-in
    assert any("neither systemd nor cron" in note for note in status["notes"])  # nor a crontab: said so
    service = board / "studio" / "service"
    results = service / "results.jsonl"
    # the install's SSH connection is closed: the service goes on writing results
    seen = _lines(results)
    _wait(lambda: _lines(results) > seen + 5, 30, "results after the host left")
    line = json.loads(results.read_text().splitlines()[-1])
    assert {"time", "frame", "boxes", "scores", "classes", "names"} <= line.keys()

    agent = json.loads((service / "run.json").read_text())["pid"]
    os.kill(agent, signal.SIGKILL)  # the agent crashes: its supervisor starts it again
    _wait(lambda: json.loads((service / "run.json").read_text()).get("pid") not in (None, agent)
          and json.loads((service / "run.json").read_text()).get("state") == "running", 30, "a restart")
    again = json.loads(cli("board", "status", BOARD, "--json").stdout)
    assert again["running"] and again["restarts"] == 1 and again["results_written"] > seen

    watched = cli("board", "stream", BOARD, "--service", "--frames", 3, "--json")
    assert watched.exit_code == 0, watched.stderr
    assert len(watched.stdout.splitlines()) == 4  # three frames, then the summary
    assert json.loads(cli("board", "status", BOARD, "--json").stdout)["running"]  # watching did not stop it

    logs = cli("board", "logs", BOARD, "--lines", 200)
    assert "starting it again" in logs.stdout and logs.exit_code == 0

    removed = cli("board", "uninstall", BOARD)
    assert removed.exit_code == 0, removed.stderr
    assert processes_with(str(service)) == [] and not service.exists()
    gone = cli("board", "status", BOARD, "--json")
    assert json.loads(gone.stdout) == {"installed": False}


@pytest.mark.slow  # pushes and starts a service from the GUI (about 15 s)
def test_the_wizard_leaves_the_exported_model_running_as_a_service(window, qtbot, cli, board, tiny_onnx, scenes,
                                                                   tmp_path):
    from studio.core.bundle import write_bundle

    model = write_bundle({"platform": "rk3588", "imgsz": 96, "data": "d/data.yaml", "recipe": "r.yaml"},
                         {"variant": "float", "path": str(tiny_onnx), "format": "onnx", "quant": "float32",
                          "map50_95": 0.5, "map50": 0.7, "images": 4}, tmp_path / "deploy")  # what Export wrote
    window.show_page("Compress")
    page = window.page("Compress")
    page.state.exported = model
    deploy = page.step("Deploy")
    deploy.enter()
    deploy.service.setChecked(True)
    deploy.backend.setCurrentText("ort")
    deploy.source.setText(str(scenes))
    deploy.workers.setValue(1)
    assert deploy.go_button.text() == "Install the service"
    assert deploy.cli() == (f"studio board install {BOARD} {tmp_path / 'deploy'} --source {scenes} --workers 1 "
                            "--backend ort --loop")
    try:
        deploy.go_button.click()
        qtbot.waitUntil(lambda: "The service runs on" in deploy.installed.text(), timeout=90_000)
        results = board / "studio" / "service" / "results.jsonl"
        _wait(lambda: _lines(results) > 3, 30, "the service's results")
    finally:
        cli("board", "uninstall", BOARD)
    assert processes_with(str(board / "studio" / "service")) == []
