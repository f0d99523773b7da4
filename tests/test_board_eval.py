"""`studio board eval` on the stand-in board (a real sshd, Python 3.9, ONNX Runtime on its CPU)."""
from __future__ import annotations

import json

import pytest

from studio.core.data.synth import SynthConfig, generate

BOARD = "desk"


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    return generate(SynthConfig(tmp_path_factory.mktemp("board-eval"), images=40, size=96))


@pytest.mark.slow  # the agent runs the split on the board over SSH, twice (~15 s)
def test_board_eval_matches_the_host_and_sends_the_images_once(cli, board, tiny_onnx, labelled, tmp_path):
    data = labelled
    first = cli("board", "eval", BOARD, tiny_onnx, "--backend", "ort", "--data", data, "--json")
    assert first.exit_code == 0, first.stderr
    report = json.loads(first.stdout)
    host, on_board = report["columns"]
    assert (host["where"], on_board["where"]) == ("host", BOARD) and report["images"] >= 6
    assert abs(host["map50_95"] - on_board["map50_95"]) <= 0.001 and abs(host["map50"] - on_board["map50"]) <= 0.001
    agree = report["agreement"]
    assert agree["share"] >= 0.99 and agree["images"] == report["images"]
    assert report["settings"]["multi_label"] and report["settings"]["conf"] == 0.001
    sent = report["transfer"]
    assert sent["files_sent"] == report["images"] and sent["image_bytes"] <= sent["bytes_sent"] <= \
        1.05 * sent["image_bytes"]
    assert board.joinpath("studio", "data").is_dir()

    again = cli("board", "eval", BOARD, tiny_onnx, "--backend", "ort", "--data", data, "--board-only",
                "--report", tmp_path / "report")
    assert again.exit_code == 0, again.stderr
    assert "0 file(s) sent, 0.00 MiB" in again.stdout  # the board kept them: nothing travels twice
    written = json.loads((tmp_path / "report" / "board-eval.json").read_text())
    assert written["transfer"]["bytes_sent"] == 0 and len(written["columns"]) == 1
    assert written["columns"][0]["map50_95"] == on_board["map50_95"]  # the same run on the board, the same figure
    assert "| float, board | desk |" in (tmp_path / "report" / "board-eval.md").read_text()


def test_board_eval_refuses_a_mismatched_backend_before_connecting(cli, tiny_onnx, tmp_path):
    result = cli("board", "eval", "nowhere", tiny_onnx, "--data", tmp_path / "data.yaml")
    assert result.exit_code == 2 and "--backend rknnlite runs a .rknn model" in result.stderr
