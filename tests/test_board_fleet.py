"""Several boards at once (a,b or @group), against two real OpenSSH servers on 127.0.0.1."""
from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import cv2
import pytest


@pytest.fixture
def pair(cli, sshd, second_sshd, board_python, tmp_path, monkeypatch) -> dict[str, Path]:
    """Boards a and b (two servers, two folders), trusted, in group @pair; returns their folders."""
    monkeypatch.setenv("EDGE_STUDIO_HOME", str(tmp_path / "home"))
    roots = {}
    for name, server in (("a", sshd), ("b", second_sshd)):
        roots[name] = tmp_path / f"board-{name}"
        assert cli("board", "add", name, "--host", "127.0.0.1", "--user", server.user, "--port", server.port,
                   "--key", server.client_key, "--python", board_python, "--root", roots[name]).exit_code == 0
        assert cli("board", "check", name, "--trust").exit_code == 0
    assert cli("board", "group", "pair", "a", "b").exit_code == 0
    return roots


@pytest.fixture(scope="module")
def scenes(tmp_path_factory, calib_dir) -> Path:
    folder = tmp_path_factory.mktemp("scenes")
    for i, path in enumerate(sorted(calib_dir.iterdir())):
        cv2.imwrite(str(folder / f"s{i}.png"), cv2.imread(str(path)))
    return folder


@pytest.mark.slow  # pushes to two boards over SSH (12-18 s here)
def test_push_to_a_group_reaches_every_board_with_a_bar_each(cli, pair, tiny_onnx):
    result = cli("board", "push", "@pair", tiny_onnx)
    assert result.exit_code == 0, result.stderr
    assert "- a: push" in result.stdout and "- b: push" in result.stdout
    assert result.stdout.count("pushed to") == 2
    for root in pair.values():
        assert (root / "studio" / "models" / tiny_onnx.name).read_bytes() == tiny_onnx.read_bytes()
    again = json.loads(cli("board", "push", "a,b", tiny_onnx, "--json").stdout)
    assert [(b["board"], b["ok"], b["result"]["bytes_sent"]) for b in again["boards"]] == [("a", True, 0),
                                                                                          ("b", True, 0)]


@pytest.mark.slow  # pushes to two boards over SSH (12-18 s here)
def test_one_unreachable_board_does_not_stop_the_others(cli, pair, tiny_onnx):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    cli("board", "add", "gone", "--host", "127.0.0.1", "--user", "nobody", "--port", dead_port)
    result = cli("board", "push", "gone,a,b", tiny_onnx, "--json")
    assert result.exit_code == 3 and "gone: cannot reach" in result.stderr
    outcomes = {b["board"]: b for b in json.loads(result.stdout)["boards"]}
    assert not outcomes["gone"]["ok"] and outcomes["a"]["ok"] and outcomes["b"]["ok"]
    assert all((root / "studio" / "models" / tiny_onnx.name).exists() for root in pair.values())


@pytest.mark.slow  # pushes to two boards over SSH (12-18 s here)
def test_run_and_bench_on_two_boards_at_once(cli, pair, tiny_onnx, scenes):
    result = cli("board", "run", "@pair", tiny_onnx, "--backend", "ort", "--source", scenes, "--workers", 1,
                 "--frames", 6, "--loop", "--conf", 0.05, "--json")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    frames, last = lines[:-1], lines[-1]
    for board in ("a", "b"):
        assert [f["frame"] for f in frames if f["board"] == board] == list(range(6))
    assert {s["board"]: s["result"]["agent"]["frames"] for s in last["summaries"]} == {"a": 6, "b": 6}
    for root in pair.values():
        assert subprocess.run(["pgrep", "-f", str(root)], capture_output=True).stdout == b""

    bench = cli("board", "bench", "a,b", tiny_onnx, "--backend", "ort", "--source", scenes, "--workers", "1",
                "--frames", 12, "--json")
    assert bench.exit_code == 0, bench.stderr
    runs = {b["board"]: b["result"]["runs"] for b in json.loads(bench.stdout)["boards"]}
    assert set(runs) == {"a", "b"} and all(r[0]["frames"] == 12 and r[0]["fps"] > 0 for r in runs.values())


def test_groups_are_checked(cli, pair):
    assert cli("board", "group", "bad", "a", "nosuch").exit_code == 2
    unknown = cli("board", "push", "@nosuch", "m.onnx")
    assert unknown.exit_code == 2 and "no group named @nosuch" in unknown.stderr
    assert json.loads(cli("board", "list", "--json").stdout)["groups"] == {"pair": ["a", "b"]}
    assert cli("board", "group", "pair", "--remove").exit_code == 0
    assert json.loads(cli("board", "list", "--json").stdout)["groups"] == {}
