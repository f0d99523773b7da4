"""Inputs checked before work starts: model files against their sidecars, datasets before training and
evaluation, board profiles before they are saved; and the messages: one line, markup shown as typed,
no third-party noise, nothing installed behind the user's back."""
from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import torch

from deploy.errors import UserError
from studio.core.data.synth import SynthConfig, generate
from tests.conftest import make_detector
from tests.test_bad_input import assert_user_error, files_in


def _copy_model(src: Path, dest: Path, **sidecar) -> Path:
    """The model and its sidecar under another name, with sidecar fields changed."""
    shutil.copy(src, dest)
    meta = json.loads(Path(f"{src}.json").read_text())
    meta.update(sidecar)
    Path(f"{dest}.json").write_text(json.dumps(meta))
    return dest


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return generate(SynthConfig(tmp_path_factory.mktemp("checks") / "data", images=12, size=160))


@pytest.fixture
def fake_rknn(tmp_path, tiny_onnx) -> Path:
    """A file with the toolkit's header and a sidecar recording its digest, built from the tiny ONNX."""
    path = tmp_path / "m.rknn"
    path.write_bytes(b"RKNN" + bytes(range(256)) * 64)
    meta = json.loads(Path(f"{tiny_onnx}.json").read_text())
    meta.update(format="rknn", sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                build={"platform": "rk3588", "quant": "fp16", "onnx": str(tiny_onnx)})
    Path(f"{path}.json").write_text(json.dumps(meta))
    return path


# --- model files ---------------------------------------------------------------------------------


def test_onnx_whose_input_disagrees_with_its_sidecar(cli, tiny_onnx, data, tmp_path):
    model = _copy_model(tiny_onnx, tmp_path / "m.onnx", imgsz=64)
    assert_user_error(cli("predict", model, data.parent / "images" / "val"), "input is 96x96", "imgsz 64")
    assert_user_error(cli("eval", model, "--data", data, "--backend", "ort"), "input is 96x96", "imgsz 64")


def test_imgsz_is_refused_for_a_fixed_size_model(cli, tiny_onnx, data):
    assert_user_error(cli("eval", tiny_onnx, "--data", data, "--backend", "ort", "--imgsz", 128),
                      "--imgsz 128", "exported for 96 px")
    assert_user_error(cli("models", "inspect", tiny_onnx, "--imgsz", 128), "--imgsz 128", "exported for 96 px")


def test_a_folder_given_as_the_model(cli, data, tmp_path):
    assert_user_error(cli("predict", tmp_path, data.parent / "images" / "val"), "is a folder")


def test_rknn_without_the_toolkit_header(cli, fake_rknn, data):
    fake_rknn.write_bytes(b"PK\x03\x04" + fake_rknn.read_bytes()[4:])
    assert_user_error(cli("models", "inspect", fake_rknn), "not an RKNN model")
    assert_user_error(cli("predict", fake_rknn, data.parent / "images" / "val", "--backend", "rknn-sim"),
                      "not an RKNN model")


def test_rknn_whose_bytes_differ_from_the_recorded_digest(cli, fake_rknn, data):
    from deploy.runtime.metadata import read_model_meta

    assert read_model_meta(fake_rknn).format == "rknn"  # the intact file passes
    damaged = bytearray(fake_rknn.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    fake_rknn.write_bytes(bytes(damaged))
    for args in (("models", "inspect", fake_rknn),
                 ("predict", fake_rknn, data.parent / "images" / "val", "--backend", "rknn-sim"),
                 ("eval", fake_rknn, "--data", data, "--backend", "rknn-sim")):
        assert_user_error(cli(*args), "its bytes differ", "SHA-256")


def test_models_inspect_reports_the_size_a_checkpoint_was_trained_at(cli, tmp_path):
    model = make_detector()
    model.args = {"imgsz": 320}
    torch.save({"model": model, "ema": None}, tmp_path / "m320.pt")
    result = cli("models", "inspect", tmp_path / "m320.pt", "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["imgsz"] == 320 and info["inputs"]["images"] == [1, 3, 320, 320]


def test_simulator_start_that_fails_leaves_no_temp_folder(fake_rknn, tmp_path, monkeypatch):
    from deploy.convert.rknn_sim import RknnSimBackend

    meta = json.loads(Path(f"{fake_rknn}.json").read_text())
    meta["build"].update(quant="int8", calibration=[str(tmp_path / "gone.png")])
    Path(f"{fake_rknn}.json").write_text(json.dumps(meta))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(UserError, match="calibration images recorded in the sidecar are missing") as caught:
        RknnSimBackend(fake_rknn)
    assert caught.value is not None and files_in(scratch) == []  # checked while the error is still held


# --- datasets ------------------------------------------------------------------------------------


def _broken(data: Path, tmp_path: Path) -> Path:
    """A copy of the dataset with a NaN coordinate in train and a class id past the names in val."""
    root = tmp_path / "broken"
    shutil.copytree(data.parent, root)
    train = sorted((root / "labels" / "train").glob("*.txt"))[0]
    train.write_text(train.read_text() + "0 nan 0.5 0.1 0.1\n")
    val = sorted((root / "labels" / "val").glob("*.txt"))[0]
    val.write_text(val.read_text() + "9 0.5 0.5 0.1 0.1\n")
    return root / "data.yaml"


def test_stats_finds_nan_repeated_lines_and_a_wrong_nc(cli, data, tmp_path):
    broken = _broken(data, tmp_path)
    label = next(p for p in sorted((broken.parent / "labels" / "train").glob("*.txt"))[1:] if p.read_text().strip())
    first = label.read_text().splitlines()[0]
    label.write_text(label.read_text() + first + "\n")
    broken.write_text(broken.read_text() + "nc: 7\n")
    result = cli("data", "stats", broken, "--json", "--plots", tmp_path / "plots")
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)
    assert any("not a finite number" in p for p in stats["corrupt_labels"])
    assert any("class id 9 out of range" in p for p in stats["corrupt_labels"])
    assert stats["repeated_labels"] == [f"{label}:{len(label.read_text().splitlines())}: the same object as line 1"]
    assert stats["config"] == [f"{broken}: nc is 7 but 4 class names are given"]
    assert stats["problems"] == 4


def test_training_refuses_bad_labels_before_a_run_folder_exists(cli, data, detector_pt, tmp_path):
    broken = _broken(data, tmp_path)
    result = cli("train", detector_pt, "--data", broken, "--epochs", 1, "--imgsz", 64,
                 "--project", tmp_path / "runs", "--name", "bad")
    assert_user_error(result, "2 problem(s)", "not a finite number", "class id 9", "studio data stats")
    assert not (tmp_path / "runs").exists()


def test_evaluation_checks_the_split_it_reads(cli, data, tiny_onnx, tmp_path):
    broken = _broken(data, tmp_path)
    assert_user_error(cli("eval", tiny_onnx, "--data", broken, "--backend", "ort"), "1 problem(s)", "class id 9")
    val = sorted((broken.parent / "labels" / "val").glob("*.txt"))[0]
    val.write_text("".join(line + "\n" for line in val.read_text().splitlines() if not line.startswith("9 ")))
    result = cli("eval", tiny_onnx, "--data", broken, "--backend", "ort", "--json")
    assert result.exit_code == 0, result.stderr  # the train split's NaN is not the evaluation's concern


# --- board profiles ------------------------------------------------------------------------------


def test_board_add_refuses_hosts_users_and_keys_that_cannot_work(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_STUDIO_HOME", str(tmp_path / "home"))
    (tmp_path / "id.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB user@host\n")
    (tmp_path / "notes.txt").write_text("not a key\n")
    cases = [(("--host", "bad_host!", "--user", "root"), "not a host name"),
             (("--host", "root@10.0.0.2", "--user", "root"), "give the user with --user"),
             (("--host", "10.0.0.2", "--user", "a b"), "not a user name"),
             (("--host", "rk3588.local", "--user", "root", "--key", tmp_path / "id.pub"), "this is a public key"),
             (("--host", "rk3588.local", "--user", "root", "--key", tmp_path / "notes.txt"), "not an SSH private key")]
    for args, fragment in cases:
        assert_user_error(cli("board", "add", "rk", *args), fragment)
    assert not (tmp_path / "home" / "boards.json").exists()
    assert cli("board", "add", "rk", "--host", "fe80::1", "--user", "linaro").exit_code == 0


def test_board_check_on_a_port_that_is_not_ssh(tmp_path):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer_like_a_web_server():
        for _ in range(3):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n" * 20)
            conn.close()

    threading.Thread(target=answer_like_a_web_server, daemon=True).start()
    env = {"EDGE_STUDIO_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    studio = [sys.executable, "-m", "studio", "board"]
    add = subprocess.run([*studio, "add", "web", "--host", "127.0.0.1", "--user", "root", "--port", str(port)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert add.returncode == 0, add.stderr
    check = subprocess.run([*studio, "check", "web"], capture_output=True, text=True, env=env, timeout=120)
    server.close()
    assert check.returncode == 2, check.stderr
    assert check.stderr.strip().splitlines() == [
        f"error: web: 127.0.0.1 port {port} answers, but not as an SSH server; is the port right? "
        "(studio board add ... --port, usually 22)"]


# --- messages ------------------------------------------------------------------------------------


def test_markup_and_emoji_codes_in_user_text_are_shown_as_typed(cli, tiny_onnx):
    assert_user_error(cli("predict", tiny_onnx, "camera:abc"), "camera:abc:")
    assert_user_error(cli("predict", tiny_onnx, "[bold]shots:smile:/*.jpg"), "[bold]shots:smile:")


def test_a_damaged_video_gives_no_ffmpeg_lines(tiny_onnx, tmp_path):
    import cv2
    import numpy as np

    video = tmp_path / "flight.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15, (96, 96))
    for i in range(20):
        writer.write(np.random.default_rng(i).integers(0, 256, (96, 96, 3), dtype=np.uint8))
    writer.release()
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])  # cut in the middle of a frame
    result = subprocess.run([sys.executable, "-m", "studio", "predict", str(tiny_onnx), str(video), "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "summary" in result.stdout.splitlines()[-1]
    assert result.stderr.strip() == "", result.stderr  # ffmpeg's "[mjpeg @ 0x...] overread" stays out


def test_ultralytics_never_installs_packages(monkeypatch):
    from ultralytics.utils import checks

    import studio  # noqa: F401  (sets the environment ultralytics reads at import)

    said = []
    monkeypatch.setattr(subprocess, "check_output", lambda *a, **k: said.append(f"ran {a}"))
    monkeypatch.setattr(checks.LOGGER, "info", said.append)
    monkeypatch.setattr(checks.LOGGER, "warning", said.append)
    assert checks.check_requirements("surely-not-an-installed-package==0.0.1") is False
    assert said and not any("attempting" in line or line.startswith("ran") for line in said), said
