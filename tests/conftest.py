"""Shared fixtures: tiny detectors and images made on the spot (nothing is downloaded)."""
from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # Qt widgets under test need no screen

NAMES = ["vehicle", "storage-tank", "plane", "ship"]

# The per-test limit of a test marked slow that sets none of its own (@pytest.mark.timeout); the others have
# pyproject.toml's `timeout`. Above every deadline inside the slow tests (test_distributed's two-process QAT
# waits up to 900 + 600 s for its subprocesses), so those fail first, with their own message.
SLOW_TIMEOUT_S = 1800
# pytest-timeout's signal method fails a test that runs over while Python code runs in the main thread. Inside
# a Qt event loop (a modal dialog, QEventLoop.exec) Python may never run, and an exception raised in a slot is
# swallowed; BACKSTOP_S after its limit such a test is ended the thread method's way: every thread's stack is
# dumped and the run exits with status 1, after stopping the sshd servers (nothing else would end them).
BACKSTOP_S = 60
_HARD_STOP: list = []  # callables run before a backstop ends the run


def pytest_collection_modifyitems(config, items):
    slow_files = set()
    for item in items:
        if item.get_closest_marker("slow") is not None:
            slow_files.add(item.path)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))
    # Files with slow tests first: `make test`'s workers take whole files in this order, and the many short files
    # then fill the end evenly instead of one worker finishing a long file alone.
    items.sort(key=lambda item: item.path not in slow_files)


def _backstop(item, settings) -> None:
    import pytest_timeout

    for stop in list(_HARD_STOP):
        try:
            stop()
        except Exception:  # noqa: BLE001 (the run is ending anyway)
            pass
    pytest_timeout.timeout_timer(item, settings)  # dumps the stacks and calls os._exit(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_timeout_set_timer(item, settings):
    yield
    if settings.method == "signal" and settings.timeout:
        timer = threading.Timer(settings.timeout + BACKSTOP_S, _backstop, (item, settings))
        timer.daemon = True
        timer.start()
        item.timeout_backstop = timer


@pytest.hookimpl(hookwrapper=True)
def pytest_timeout_cancel_timer(item):
    timer = getattr(item, "timeout_backstop", None)
    if timer is not None:
        timer.cancel()
    yield


def make_detector(nc: int = len(NAMES), seed: int = 0, obb: bool = False):
    """An untrained yolov8n DetectionModel (obb: OBBModel) with `nc` named classes and a deterministic init."""
    from ultralytics.nn.tasks import DetectionModel, OBBModel

    torch.manual_seed(seed)
    model = (OBBModel("yolov8n-obb.yaml", nc=nc, verbose=False) if obb else
             DetectionModel("yolov8n.yaml", nc=nc, verbose=False)).eval()
    model.names = {i: n for i, n in enumerate(NAMES[:nc])} if nc <= len(NAMES) else {i: f"c{i}" for i in range(nc)}
    # Spread the head's biases: at initialisation every box output is 2.0 and every class score
    # ~1e-4, and such constant tensors make quantization ranges (and tests of them) degenerate.
    head = model.model[-1]
    for seq in list(head.cv2) + list(head.cv3) + list(getattr(head, "cv4", [])):
        torch.nn.init.normal_(seq[-1].bias, 0.0, 2.0)
    return model


def coloured_near(rgb: np.ndarray, point, colour, reach: int = 1) -> bool:
    """Whether a pixel of an RGB picture within `reach` of `point` (x, y) has `colour`, give or take anti-aliasing."""
    x, y = (int(round(v)) for v in point)
    patch = rgb[max(y - reach, 0):y + reach + 1, max(x - reach, 0):x + reach + 1].reshape(-1, 3).astype(int)
    return bool((np.abs(patch - np.array(colour)).max(1) <= 60).any())


@pytest.fixture(scope="session")
def detector_pt(tmp_path_factory) -> Path:
    """A .pt checkpoint in ultralytics' layout ({'model': ..., 'ema': None, ...})."""
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    torch.save({"model": make_detector(), "ema": None, "epoch": -1}, path)
    return path


@pytest.fixture(scope="session")
def obb_pt(tmp_path_factory) -> Path:
    """The tests' one oriented-box model: an untrained yolov8n-obb checkpoint of the four synthetic classes."""
    path = tmp_path_factory.mktemp("obb") / "tiny-obb.pt"
    torch.save({"model": make_detector(obb=True), "ema": None, "epoch": -1}, path)
    return path


@pytest.fixture(scope="session")
def obb_student_onnx(tmp_path_factory) -> Path:
    """The bundled oriented-box student exported at 320 px (trained: it finds real objects, so drawings can be
    checked at known boxes)."""
    from studio.cli import app

    student = Path(__file__).parent.parent / "assets" / "models" / "student-obb.pt"
    assert student.is_file(), f"{student} is missing: run `make assets`"
    out = tmp_path_factory.mktemp("obb-student") / "student-obb.onnx"
    result = CliRunner().invoke(app, ["export", str(student), "--imgsz", "320", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def obb_onnx(tmp_path_factory, obb_pt) -> Path:
    """The OBB model exported at 96 px (ONNX, split layout with angle outputs, sidecar task obb)."""
    return _exported_at_96(obb_pt, tmp_path_factory.mktemp("obb-onnx") / "tiny-obb.onnx")


def _exported_at_96(model: Path, out: Path) -> Path:
    """`studio export MODEL --imgsz 96 --out OUT` (ONNX + sidecar), which must succeed."""
    from studio.cli import app

    result = CliRunner().invoke(app, ["export", str(model), "--imgsz", "96", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory):
    """(data.yaml, teacher yolov8s .pt, student yolov8n .pt): untrained, 4 classes, 16 synthetic images."""
    from ultralytics.nn.tasks import DetectionModel

    from studio.core.data.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("kd")
    data = generate(SynthConfig(root / "data", images=16, size=160))
    torch.manual_seed(1)
    teacher = DetectionModel("yolov8s.yaml", nc=4, verbose=False).eval()
    teacher.names = dict(enumerate(NAMES))
    torch.save({"model": teacher, "ema": None}, root / "teacher.pt")
    torch.save({"model": make_detector(), "ema": None}, root / "student.pt")
    return Path(data), root / "teacher.pt", root / "student.pt"


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory, detector_pt) -> Path:
    """The tiny detector exported at 96 px through `studio export` (ONNX + sidecar)."""
    return _exported_at_96(detector_pt, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture(scope="session")
def calib_dir(tmp_path_factory) -> Path:
    """A few synthetic aerial images of mixed sizes for calibration and verification."""
    from studio.core.data.synth import SynthConfig, render_image

    folder = tmp_path_factory.mktemp("calib")
    cfg = SynthConfig(folder, size=128)
    for i in range(4):
        image, _ = render_image(cfg, i)
        if i % 2:  # a non-square one exercises the letterbox
            image = cv2.resize(image, (128, 96))
        cv2.imwrite(str(folder / f"img{i}.png"), image)
    return folder


@pytest.fixture(scope="session")
def board_python() -> str:
    """The stand-in board's interpreter: Python 3.9 with numpy, OpenCV and ONNX Runtime (make board-python)."""
    path = Path(__file__).resolve().parent.parent / ".venv-board" / "bin" / "python"
    if not path.exists():
        pytest.fail("the board tests run the agent under Python 3.9, as on a Debian 11 board: make board-python")
    return str(path)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A real OpenSSH server on 127.0.0.1 standing in for a board (tests/sshd.py)."""
    from tests.sshd import start_sshd

    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    _HARD_STOP.append(server.stop)
    yield server
    server.stop()
    _HARD_STOP.remove(server.stop)


@pytest.fixture(scope="session")
def second_sshd(tmp_path_factory):
    """Another one, for tests of several boards at once."""
    from tests.sshd import start_sshd

    server = start_sshd(tmp_path_factory.mktemp("sshd2"))
    _HARD_STOP.append(server.stop)
    yield server
    server.stop()
    _HARD_STOP.remove(server.stop)


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    """The studio's main window with its own settings and config home (no boards, no remembered folders)."""
    from PySide6.QtCore import QSettings

    from studio.gui.main_window import MainWindow

    monkeypatch.setenv("EDGE_STUDIO_HOME", str(tmp_path / "home"))
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    yield win
    if "Live" in win.pages:
        win.page("Live").stop()
    win.jobs.cancel_all()


@pytest.fixture
def cli():
    """Invoke `studio ...` in-process; returns click's Result (exit_code, stdout, stderr)."""
    from studio.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def rng_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


BOARD = "desk"  # the stand-in board's name in the board tests


@pytest.fixture
def board(cli, sshd, board_python, tmp_path, monkeypatch) -> Path:
    """A fresh studio config with the board added and its host key trusted; returns the board's folder."""
    monkeypatch.setenv("EDGE_STUDIO_HOME", str(tmp_path / "home"))
    root = tmp_path / "board"
    result = cli("board", "add", BOARD, "--host", "127.0.0.1", "--user", sshd.user, "--port", sshd.port,
                 "--key", sshd.client_key, "--python", board_python, "--root", root)
    assert result.exit_code == 0, result.stderr
    assert cli("board", "check", BOARD, "--trust", "--json").exit_code == 0
    return root


@pytest.fixture(scope="module")
def scenes(tmp_path_factory, calib_dir) -> Path:
    folder = tmp_path_factory.mktemp("scenes")
    for i, path in enumerate(sorted(calib_dir.iterdir()) * 2):
        cv2.imwrite(str(folder / f"scene{i:02d}.png"), cv2.imread(str(path)))
    return folder


def processes_with(text: str) -> list[int]:
    """Pids whose command line contains text (the test machine is the board)."""
    out = subprocess.run(["pgrep", "-f", text], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def coco_from(synth: Path, split: str, out: Path) -> None:
    """The synthetic split as COCO: images in coco/SPLIT, annotations in coco/annotations/SPLIT.json."""
    names = yaml.safe_load((synth / "data.yaml").read_text())["names"]
    images, annotations = [], []
    (out / split).mkdir(parents=True)
    for index, image in enumerate(sorted((synth / "images" / split).glob("*.png"))):
        pixels = cv2.imread(str(image))
        cv2.imwrite(str(out / split / f"{image.stem}.jpg"), pixels)
        h, w = pixels.shape[:2]
        images.append({"id": index, "file_name": f"{image.stem}.jpg", "width": w, "height": h})
        for line in (synth / "labels" / split / f"{image.stem}.txt").read_text().splitlines():
            c, x, y, bw, bh = (float(v) for v in line.split())
            annotations.append({"id": len(annotations), "image_id": index, "category_id": int(c) + 1,
                                "bbox": [(x - bw / 2) * w, (y - bh / 2) * h, bw * w, bh * h], "iscrowd": 0})
    categories = [{"id": i + 1, "name": n} for i, n in sorted(names.items())]
    (out / "annotations").mkdir(exist_ok=True)
    (out / "annotations" / f"{split}.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": categories}))
