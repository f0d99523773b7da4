"""`studio board eval` on the stand-in board (a real sshd, Python 3.9, ONNX Runtime on its CPU)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from studio.core.data.synth import SynthConfig, generate
from tests.conftest import BOARD, NAMES


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
    raw = report["raw"]  # the board's own inputs and outputs of its first 4 images, against ONNX Runtime here
    assert raw["samples"] == 4 and raw["agrees"] and raw["min_cosine"] > 0.9999 and raw["causes"] == []
    assert report["doctor"] == []  # ONNX Runtime on the board has all it needs
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


@pytest.mark.slow  # the agent runs the split on the board over SSH (~10 s)
def test_board_eval_scores_an_oriented_box_model_as_the_host_does(cli, board, obb_onnx, tmp_path):
    """Turned boxes travel exactly: every image's detections are the host's (matched by rotated IoU), scored with
    the OBB metric on both sides."""
    data = generate(SynthConfig(tmp_path / "obb", images=24, size=96, generator="dense-1", task="obb"))
    result = cli("board", "eval", BOARD, obb_onnx, "--backend", "ort", "--data", data, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    host, on_board = report["columns"]
    assert report["settings"]["metric"].startswith("probiou") and report["settings"]["task"] == "obb"
    assert host["map50_95"] == on_board["map50_95"] and host["map50"] == on_board["map50"]
    assert report["agreement"]["share"] == 1.0 and report["raw"]["agrees"]


def test_board_eval_refuses_a_mismatched_backend_before_connecting(cli, tiny_onnx, tmp_path):
    result = cli("board", "eval", "nowhere", tiny_onnx, "--data", tmp_path / "data.yaml")
    assert result.exit_code == 2 and "--backend rknnlite runs a .rknn model" in result.stderr


STANDIN = Path(__file__).parent / "standins" / "rknnlite"


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory, calib_dir) -> Path:
    """The bundled student at 96 px, int8: trained, so its outputs follow its input (an untrained model's int8
    outputs are the same for every image, and no fault would show)."""
    from typer.testing import CliRunner

    from studio.cli import app

    out = tmp_path_factory.mktemp("board-int8") / "student.rknn"
    student = Path(__file__).parent.parent / "assets" / "models" / "student.pt"
    result = CliRunner().invoke(app, ["export", str(student), "--format", "rknn", "--imgsz", "96", "--calib",
                                      str(calib_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def serve(board_root: Path, sim, images: list[Path], fault=None) -> None:
    """Install the stand-in rknnlite on the board, serving the simulator's outputs for each image's input tensor
    (as the agent letterboxes it), computed on the input as `fault` turns it (None: faithfully)."""
    import hashlib

    import cv2

    from deploy.runtime.preprocess import letterbox, to_nhwc_uint8

    site = board_root / "site" / "rknnlite"
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(STANDIN, site, ignore=shutil.ignore_patterns("__pycache__"))
    (site / "served").mkdir()
    for path in images:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        tensor = to_nhwc_uint8(letterbox(rgb, 96)[0])
        outputs = sim.infer(fault(tensor) if fault else tensor)
        key = hashlib.sha256(np.ascontiguousarray(tensor).tobytes()).hexdigest()
        np.savez(site / "served" / f"{key}.npz", **{f"out{k}": o for k, o in enumerate(outputs)})


class _Lent:
    """The test's simulator lent to each `board eval`: its close() leaves it built for the next one (a rebuild
    per eval is what the other board eval tests cover; here it would only repeat the same build four times)."""

    def __init__(self, sim):
        self._sim = sim

    def __getattr__(self, name):
        return getattr(self._sim, name)

    def close(self) -> None:
        pass


@pytest.mark.slow  # builds an RKNN, simulates on the host and runs the NPU path on the board (~30 s)
def test_board_eval_names_each_fault_of_the_stand_in_npu(cli, board, int8_model, labelled, monkeypatch):
    from deploy.convert import rknn_sim
    from studio.core.board_truth import CAUSES
    from studio.core.evaluate_obb import eval_split

    images = eval_split(labelled, "val", NAMES, 4)[0]
    sim = rknn_sim.RknnSimBackend(int8_model, verify=True)
    built = []
    monkeypatch.setattr(rknn_sim, "RknnSimBackend", lambda model, verify=False: built.append(model) or _Lent(sim))
    try:
        _faithful_then_each_fault(cli, board, sim, int8_model, labelled, images, CAUSES)
    finally:
        sim.close()
    assert built == [Path(int8_model)] * (1 + len(CAUSES))  # every eval asked for the model's simulator twin


def _faithful_then_each_fault(cli, board, sim, int8_model, labelled, images, causes):
    serve(board, sim, images)
    faithful = cli("board", "eval", BOARD, int8_model, "--data", labelled, "--limit", 4, "--json")
    assert faithful.exit_code == 0, faithful.stderr
    report = json.loads(faithful.stdout)
    names = [c["name"] for c in report["columns"]]
    assert names == ["float, host", "int8, simulator", "int8, board"]
    simulated, on_board = report["columns"][1:]
    assert on_board["map50_95"] == simulated["map50_95"] and report["agreement"]["share"] == 1.0
    assert report["raw"]["agrees"] and min(o["min_cosine"] for o in report["raw"]["outputs"]) >= 0.99
    assert report["quantization_differences"] == []  # the deployed file's grids are the rebuild's
    assert "missing: librknnrt.so" in {f["rule"] for f in report["doctor"]}  # the stand-in is no real NPU runtime

    for cause in causes:  # the stand-in NPU now sees each image as that cause turns it
        serve(board, sim, images, cause.seen)
        result = cli("board", "eval", BOARD, int8_model, "--data", labelled, "--limit", 4, "--compare", 2, "--json")
        assert result.exit_code == 0, result.stderr
        raw = json.loads(result.stdout)["raw"]
        assert not raw["agrees"], cause.name
        likely = [c["cause"] for c in raw["causes"] if c["likely"]]
        assert likely == [cause.name], (cause.name, raw["causes"])  # only re-simulating that cause agrees
        assert raw["causes"][0]["min_cosine"] >= 0.99 and all(c["min_cosine"] < 0.99 for c in raw["causes"][1:])
