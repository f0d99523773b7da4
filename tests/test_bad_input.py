"""Bad input: one clear line on stderr, exit code 2, and no file written or damaged."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from deploy.convert.onnx_export import export_onnx
from tests.conftest import make_detector


def assert_user_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture
def float_onnx(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "float.onnx"
    export_onnx(make_detector(), path, 128, "rknn-split")
    return path


def test_missing_model_file(cli, tmp_path):
    result = cli("export", tmp_path / "nope.pt", "--out", tmp_path / "out" / "x.onnx")
    assert_user_error(result, "nope.pt", "no such file")
    assert files_in(tmp_path / "out") == []


def test_absent_pretrained_name_fails_at_once_without_download(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    reached = []  # every attempt at the network: a name lookup or a connection

    def no_network(*args, **kwargs):
        reached.append(args)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    for args in (("models", "inspect", "yolov8n.pt"), ("export", "yolov8n.pt")):
        result = cli(*args)
        assert_user_error(result, "yolov8n.pt", "cannot be downloaded")
    assert reached == []  # refused before any download was tried (a hang fails on the per-test timeout)
    assert files_in(tmp_path) == []


def test_corrupt_checkpoint(cli, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(os.urandom(2048))
    result = cli("export", bad, "--out", tmp_path / "out" / "x.onnx")
    assert_user_error(result, "bad.pt", "not a readable PyTorch checkpoint")
    assert files_in(tmp_path / "out") == []


def test_onnx_that_is_not_a_detector(cli, tmp_path):
    path = tmp_path / "relu.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    result = cli("export", path, "--format", "rknn", "--quant", "fp16", "--out", tmp_path / "out" / "x.rknn")
    assert_user_error(result, "not a YOLO detector")
    assert files_in(tmp_path / "out") == []
    assert_user_error(cli("models", "inspect", path), "not a YOLO detector")


def test_unknown_platform(cli, detector_pt, tmp_path):
    result = cli("export", detector_pt, "--format", "rknn", "--platform", "rk9999", "--out", tmp_path / "o" / "x.rknn")
    assert_user_error(result, "--platform", "rk9999", "rk3588")
    assert files_in(tmp_path / "o") == []


def test_empty_calibration_folder(cli, detector_pt, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("export", detector_pt, "--format", "rknn", "--imgsz", 128, "--calib", empty,
                 "--out", tmp_path / "o" / "x.rknn")
    assert_user_error(result, "holds no images")
    assert files_in(tmp_path / "o") == []


def test_unreadable_calibration_image(cli, detector_pt, calib_dir, tmp_path):
    folder = tmp_path / "calib"
    folder.mkdir()
    (folder / "a.png").write_bytes((calib_dir / "img0.png").read_bytes())
    (folder / "b.png").write_bytes(b"this is not a png")
    result = cli("export", detector_pt, "--format", "rknn", "--imgsz", 128, "--calib", folder,
                 "--out", tmp_path / "o" / "x.rknn")
    assert_user_error(result, "b.png", "cannot be read as an image")
    assert files_in(tmp_path / "o") == []


def test_output_folder_not_writable(cli, detector_pt, tmp_path):
    if os.geteuid() == 0:  # root ignores permission bits; sysfs refuses new files even to root
        target = Path("/sys/edge-studio-test/x.onnx")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        target = locked / "x.onnx"
    result = cli("export", detector_pt, "--imgsz", 128, "--out", target)
    assert_user_error(result, "not writable")
    assert not target.exists()


def test_output_folder_is_a_file(cli, detector_pt, tmp_path):
    (tmp_path / "file").write_text("x")
    assert_user_error(cli("export", detector_pt, "--out", tmp_path / "file" / "x.onnx"), "is a file")


def test_qdq_requested_for_onnx_without_qdq(cli, float_onnx, tmp_path):
    result = cli("export", float_onnx, "--format", "rknn", "--quant", "qdq", "--out", tmp_path / "o" / "x.rknn")
    assert_user_error(result, "no int8 grids of its own", "--quant int8")
    assert files_in(tmp_path / "o") == []


def test_qdq_requested_for_a_float_checkpoint(cli, detector_pt, tmp_path):
    result = cli("export", detector_pt, "--format", "rknn", "--quant", "qdq", "--out", tmp_path / "o" / "x.rknn")
    assert_user_error(result, "studio qat", "--quant int8")
    assert files_in(tmp_path / "o") == []


def test_standard_layout_to_rknn_is_refused_with_the_fix(cli, detector_pt, tmp_path):
    result = cli("export", detector_pt, "--format", "rknn", "--layout", "standard", "--out", tmp_path / "o" / "x.rknn")
    assert_user_error(result, "standard layout", "--layout rknn-split")


def test_existing_output_is_kept_without_force(cli, detector_pt, tmp_path):
    out = tmp_path / "x.onnx"
    out.write_bytes(b"precious")
    result = cli("export", detector_pt, "--imgsz", 128, "--out", out)
    assert_user_error(result, "already exist", "--force")
    assert out.read_bytes() == b"precious"
    assert cli("export", detector_pt, "--imgsz", 128, "--out", out, "--force").exit_code == 0
    assert onnx.load(str(out)).graph.output[0].name == "box0"


def test_output_that_appears_during_the_export_is_kept_without_force(detector_pt, tmp_path):
    from deploy.errors import UserError
    from studio.core.export import ExportRequest, export_model
    from studio.core.jobs import Job

    out = tmp_path / "x.onnx"

    def someone_writes_it(event):  # another process saves the same file while the export runs
        if event.stage == "write" and not out.exists():
            out.write_bytes(b"theirs")

    with pytest.raises(UserError, match="appeared while this ran"):
        export_model(ExportRequest(model=str(detector_pt), imgsz=128, out=out), Job(progress=someone_writes_it))
    assert out.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["x.onnx"]  # no sidecar of ours beside their file
