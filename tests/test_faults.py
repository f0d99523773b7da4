"""Faults every writing command meets: an existing output, an output over its input, a read-only or full
destination, Ctrl-C, a kill and a rerun. Each ends in one line and exit code 2 (130 for Ctrl-C), no traceback,
and the destination unchanged or complete, never half-written or mixed.

Read-only and full destinations are real mounts: a tmpfs in a private mount namespace (`unshare -m`), since
CI runs as root and root writes into a chmod'ed folder. Where that is impossible the tests fail saying so.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from studio.core.data.synth import SynthConfig, generate

STUDIO = [sys.executable, "-m", "studio"]


def _spawn(args, **kwargs) -> subprocess.Popen:
    """The studio in a child that takes Ctrl-C as a user's would, even when the tests run under `nohup` or in a
    background job (whose children inherit SIGINT ignored, so Python never raises KeyboardInterrupt)."""
    return subprocess.Popen(list(map(str, args)), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            **kwargs)


def _one_line_error(result, code: int = 2) -> str:
    err = result.stderr.strip()
    assert result.returncode == code, (result.returncode, result.stdout[-500:], err[-2000:])
    assert "Traceback" not in err and len(err.splitlines()) == 1, err[-2000:]
    return err


def _beside(dest: Path) -> list[str]:
    """What lies beside an output: staging or set-aside folders would show here."""
    return sorted(p.name for p in dest.parent.iterdir()) if dest.parent.is_dir() else []


def _mounted(args: list[str], mount: Path, size: str, read_only: bool, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run `studio ARGS` with a fresh tmpfs of `size` at `mount` (read-only if asked), in a private namespace."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to mount a read-only or full destination")
    mount.mkdir(parents=True, exist_ok=True)
    remount = f" && mount -o remount,ro {mount}" if read_only else ""
    script = f'mount -t tmpfs -o size={size} tmpfs {mount}{remount} && exec "$@"'
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs in a private mount namespace here: {probe.stderr.strip()}")
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *STUDIO,
                           *map(str, args)], capture_output=True, text=True, timeout=240, cwd=tmp_path,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))


def _studio(*args, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([*STUDIO, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return generate(SynthConfig(tmp_path_factory.mktemp("faults") / "data", images=6, size=96, scenes=1,
                                scene_size=200))


def _writers(dataset: Path, tiny_onnx: Path, out: Path) -> dict[str, list]:
    """Each writing command with `out` as its destination."""
    images = dataset.parent / "images" / "train"
    return {
        "synth": ["data", "synth", "--out", out, "--images", 6, "--size", 96],
        "import": ["data", "import", "yolo", dataset, "--out", out],
        "tile": ["data", "tile", dataset, "--out", out, "--size", 96],
        "predict": ["predict", tiny_onnx, images, "--save", out],
    }


@pytest.mark.parametrize("command", ["synth", "import", "tile", "predict"])
def test_an_existing_output_is_kept_unless_forced_then_replaced_whole(command, dataset, tiny_onnx, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    args = _writers(dataset, tiny_onnx, out)[command]
    err = _one_line_error(_studio(*args))
    assert "already exists; add --force" in err and (out / "mine.txt").read_text() == "keep"
    done = _studio(*args, "--force")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (out / "mine.txt").exists() and any(out.iterdir())  # replaced, never mixed
    assert _beside(out) == ["out"]


@pytest.mark.parametrize("command", ["synth", "import", "tile", "predict"])
def test_ctrl_c_mid_work_over_an_earlier_output_keeps_it_as_it_was(command, cli, dataset, tiny_onnx, tmp_path,
                                                                  monkeypatch):
    """Ctrl-C arrives once the writer has reported its first item (in-process, so it lands mid-work every time)."""
    from studio.cli_support import ProgressView

    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.txt").write_text("an earlier output")
    show = ProgressView._show

    def interrupted(view, event):
        show(view, event)
        if event.done:
            raise KeyboardInterrupt

    monkeypatch.setattr(ProgressView, "_show", interrupted)
    result = cli(*_writers(dataset, tiny_onnx, out)[command], "--force")
    assert result.exit_code == 130 and result.stderr.strip() == "error: cancelled; earlier results are untouched"
    assert [p.name for p in out.iterdir()] == ["earlier.txt"] and _beside(out) == ["out"]


@pytest.mark.parametrize("command", ["import", "tile", "predict"])
def test_an_output_inside_its_input_is_refused(command, dataset, tiny_onnx, tmp_path):
    inside = dataset.parent / "images" / "train" / "out"
    before = sorted(p.relative_to(dataset.parent) for p in dataset.parent.rglob("*"))
    err = _one_line_error(_studio(*_writers(dataset, tiny_onnx, inside)[command], "--force"))
    assert "overlaps the input" in err
    assert sorted(p.relative_to(dataset.parent) for p in dataset.parent.rglob("*")) == before


@pytest.mark.parametrize("command", ["synth", "import", "tile", "predict"])
def test_a_read_only_destination_is_one_line(command, dataset, tiny_onnx, tmp_path):
    mount = tmp_path / "ro"
    err = _one_line_error(_mounted(_writers(dataset, tiny_onnx, mount / "out")[command], mount, "1m", True,
                                   tmp_path))
    assert "Read-only file system" in err


def test_stats_plots_on_a_read_only_destination_is_one_line(dataset, tmp_path):
    mount = tmp_path / "ro"
    err = _one_line_error(_mounted(["data", "stats", dataset, "--plots", mount / "plots"], mount, "1m", True,
                                   tmp_path))
    assert "Read-only file system" in err


@pytest.mark.parametrize("command, size, said", [
    ("synth", "64k", "MiB free"),  # its size is known up front: refused before any work
    ("predict", "24k", "No space left on device"),  # found out while writing: staging removed, nothing published
    ("tile", "24k", "No space left on device"),
])
def test_a_full_destination_is_one_line_and_leaves_nothing(command, size, said, dataset, tiny_onnx, tmp_path):
    mount = tmp_path / "full"
    err = _one_line_error(_mounted(_writers(dataset, tiny_onnx, mount / "out")[command], mount, size, False,
                                   tmp_path))
    assert said in err


def _wait_for_staging(parent: Path, process: subprocess.Popen, seconds: float = 60, pattern: str = "*.png") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        if any(".staging-" in p.name for p in parent.iterdir()) and any(
                f for s in parent.iterdir() if ".staging-" in s.name for f in s.rglob(pattern)):
            return
        time.sleep(0.05)
    pytest.fail("the writer never began writing into its staging folder")


def test_ctrl_c_leaves_nothing_and_a_killed_runs_leftovers_go_with_the_next_run(tmp_path):
    out = tmp_path / "synth"
    # 4000 images: ~10 s uninterrupted, so a loaded machine cannot finish them between the first file and the signal
    args = [*STUDIO, "data", "synth", "--out", str(out), "--images", 4000, "--size", 128]
    interrupted = _spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_staging(tmp_path, interrupted)
    interrupted.send_signal(signal.SIGINT)
    _, err = interrupted.communicate(timeout=60)
    assert interrupted.returncode == 130 and "cancelled" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []

    killed = _spawn(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_staging(tmp_path, killed)
    killed.kill()
    killed.wait()
    assert not out.exists() and any(".staging-" in p.name for p in tmp_path.iterdir())  # what a kill leaves
    rerun = _studio("data", "synth", "--out", out, "--images", 6, "--size", 96)
    assert rerun.returncode == 0, rerun.stderr
    assert _beside(out) == ["synth"] and len(list((out / "images" / "train").iterdir())) == 4


def test_ctrl_c_during_predict_video_save_keeps_no_truncated_video(tiny_onnx, tmp_path):
    import cv2

    video = tmp_path / "in" / "flight.avi"
    video.parent.mkdir()
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15, (96, 96))
    for i in range(600):
        writer.write(np.full((96, 96, 3), i % 256, np.uint8))
    writer.release()
    out = tmp_path / "out" / "saved"
    out.parent.mkdir()
    args = [*STUDIO, "predict", tiny_onnx, video, "--save", out]
    running = _spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_staging(out.parent, running, pattern="*.avi")
    running.send_signal(signal.SIGINT)
    _, err = running.communicate(timeout=60)
    assert running.returncode == 130 and "cancelled" in err and "Traceback" not in err, err[-2000:]
    assert list(out.parent.iterdir()) == []  # no video under its final name, and no staging left


@pytest.mark.parametrize("command, args, what", [
    ("train", ["yolov8n.yaml", "--data", "D", "--project", "P", "--name", "run"], "training run"),
    ("prune", ["M", "--target-flops", 0.8, "--out", "O"], "pruning run"),
    ("distill", ["--student", "M", "--data", "D", "--kd", "none", "--out", "O"], "distillation run"),
    ("qat", ["M", "--data", "D", "--out", "O"], "QAT run"),
    ("sweep", ["--recipe", "R", "--grid", "prune.target_flops=0.5,0.6", "--out", "O"], "sweep"),
])
def test_a_resumable_writer_refuses_an_earlier_run_naming_resume_and_force(cli, command, args, what, tiny_pair,
                                                                           tmp_path):
    data, _, student = tiny_pair
    out = tmp_path / ("P/run" if command == "train" else "O")
    out.mkdir(parents=True)
    (out / "last.pt").write_text("an earlier run")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"model: {student}\ndata: {data}\nimgsz: 64\nprune:\n  target_flops: 0.5\n")
    given = [{"D": data, "M": student, "P": tmp_path / "P", "O": out, "R": recipe}.get(a, a) for a in args]
    result = cli(command, *given)
    assert result.exit_code == 2 and f"holds an earlier {what}; --resume continues it, --force starts over" in (
        result.stderr)
    assert (out / "last.pt").read_text() == "an earlier run"
    both = cli(command, *given, "--resume", "--force")
    assert both.exit_code == 2 and "give one of them" in both.stderr


@pytest.mark.parametrize("command, args, size, read_only, said", [
    ("train", ["yolov8n.yaml", "--data", "D", "--project", "OUT", "--name", "run"], "1m", True,
     "Read-only file system"),
    ("distill", ["--student", "M", "--data", "D", "--kd", "none", "--out", "OUT"], "1m", False, "MiB free"),
    ("prune", ["M", "--target-flops", 0.8, "--out", "OUT"], "1m", True, "Read-only file system"),
    ("qat", ["M", "--data", "D", "--out", "OUT"], "1m", False, "MiB free"),
])
def test_a_resumable_writer_on_a_read_only_or_full_place_stops_before_the_work(command, args, size, read_only, said,
                                                                              tiny_pair, tmp_path):
    data, _, student = tiny_pair
    mount = tmp_path / "place"
    given = [{"D": data, "M": student, "OUT": mount / "out"}.get(a, a) for a in args]
    err = _one_line_error(_mounted([command, *given], mount, size, read_only, tmp_path))
    assert said in err


def test_an_rknn_export_keeps_an_existing_build_log_unless_forced(cli, detector_pt, calib_dir, tmp_path):
    out = tmp_path / "m.rknn"
    log = out.with_suffix(".rknn.log")
    log.write_text("the log of an earlier build")
    result = cli("export", detector_pt, "--format", "rknn", "--imgsz", 96, "--calib", calib_dir, "--out", out)
    assert result.exit_code == 2 and f"{log} already exist(s); add --force" in result.stderr
    assert log.read_text() == "the log of an earlier build" and not out.exists()


def test_a_failed_rknn_build_leaves_only_its_log_where_the_message_says(cli, detector_pt, calib_dir, tmp_path,
                                                                       monkeypatch):
    from deploy.errors import UserError

    def toolkit_fails(onnx, rknn_out, options, outputs, workdir, log_path, **kwargs):
        Path(log_path).write_text("E build: unsupported operator")
        raise UserError(f"rknn-toolkit2 could not convert {Path(onnx).name}: E (log: {kwargs['log_shown']})")

    monkeypatch.setattr("studio.core.export.build_rknn", toolkit_fails)
    out = tmp_path / "out" / "m.rknn"
    result = cli("export", detector_pt, "--format", "rknn", "--imgsz", 96, "--calib", calib_dir, "--out", out)
    assert result.exit_code == 2 and result.stderr.strip().endswith(f"(log: {out.with_suffix('.rknn.log')})")
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.rknn.log"]
    assert out.with_suffix(".rknn.log").read_text() == "E build: unsupported operator"


def test_what_a_killed_export_left_goes_with_the_next_one(tmp_path):
    """Its staging folder beside the outputs and the toolkit's work folder in the temp folder (tens of MB)."""
    from deploy.runtime.output import clear_dead
    from studio.core.artifacts import STAGING_PREFIX, Staging

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    left = tmp_path / f"{STAGING_PREFIX}{dead}-x1"
    work = tmp_path / f"studio-rknn-{dead}-x2"
    alive = tmp_path / f"{STAGING_PREFIX}{os.getpid()}-x3"  # this process's own: never touched
    for folder in (left, work, alive):
        (folder / "big.bin").parent.mkdir()
        (folder / "big.bin").write_bytes(b"0" * 1024)
    with Staging(tmp_path):
        assert not left.exists() and alive.exists()
    clear_dead(tmp_path, "studio-rknn-")
    assert not work.exists() and alive.exists()


def test_the_demo_never_replaces_a_folder_it_did_not_make(cli, tmp_path):
    out = tmp_path / "mine"
    (out / "data").mkdir(parents=True)
    (out / "data" / "data.yaml").write_text("the user's own dataset")
    for extra in ((), ("--fresh",)):
        result = cli("demo", "--out", out, *extra)
        assert result.exit_code == 2 and "holds files the demo did not write" in result.stderr, result.stderr
    assert (out / "data" / "data.yaml").read_text() == "the user's own dataset"
    assert sorted(p.name for p in out.iterdir()) == ["data"]


@pytest.mark.parametrize("size, read_only, said", [("1m", False, "No space left on device"),
                                                   ("1m", True, "Read-only file system")])
def test_an_export_to_a_full_or_read_only_place_is_one_line(size, read_only, said, detector_pt, tmp_path):
    mount = tmp_path / "place"
    err = _one_line_error(_mounted(["export", detector_pt, "--imgsz", 96, "--out", mount / "m.onnx"], mount, size,
                                   read_only, tmp_path))
    assert said in err


def _wait_for(condition, process: subprocess.Popen, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"{what} never happened (exit code {process.poll()})")


@pytest.mark.slow  # four short trainings in subprocesses
def test_a_training_stopped_by_ctrl_c_or_killed_resumes_to_the_end(cli, tmp_path):
    from studio.core.train import is_finished

    data = generate(SynthConfig(tmp_path / "data", images=8, size=64))
    args = ["train", "yolov8n.yaml", "--data", data, "--epochs", 20, "--imgsz", 64, "--batch", 4,
            "--project", tmp_path / "runs", "--name", "t"]
    weights = tmp_path / "runs" / "t" / "weights"
    first = _spawn([*STUDIO, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    _wait_for((weights / "last.pt").is_file, first, 180, "the first epoch's checkpoint")
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130 and err.strip() == "error: cancelled; earlier results are untouched", err[-2000:]
    assert not is_finished(weights / "last.pt")

    again = cli(*args)
    assert again.exit_code == 2 and "--resume continues it, --force starts over" in again.stderr

    saved = (weights / "last.pt").stat().st_mtime_ns
    resumed = _spawn([*STUDIO, *args, "--resume"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=dict(os.environ, OMP_NUM_THREADS="1"))
    _wait_for(lambda: (weights / "last.pt").stat().st_mtime_ns != saved, resumed, 180, "a resumed epoch's save")
    resumed.kill()
    resumed.wait()

    rerun = _studio(*args, "--resume")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert is_finished(weights / "last.pt") and sorted(p.name for p in weights.iterdir()) == ["best.pt", "last.pt"]


def test_an_rknn_export_stopped_by_ctrl_c_or_killed_leaves_nothing_after_the_next(detector_pt, calib_dir, tmp_path):
    """Ctrl-C and kill while the toolkit builds: nothing under the final names, and a rerun clears what a kill left."""
    out, temp = tmp_path / "out", tmp_path / "temp"
    out.mkdir()
    temp.mkdir()
    args = [*STUDIO, "export", detector_pt, "--format", "rknn", "--imgsz", 96, "--calib", calib_dir,
            "--out", out / "m.rknn"]
    env = dict(os.environ, OMP_NUM_THREADS="1", TMPDIR=str(temp))

    def building() -> bool:
        return any(p.name.startswith("studio-rknn-") for p in temp.iterdir())

    stopped = _spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)
    _wait_for(building, stopped, 120, "the toolkit's build")
    stopped.send_signal(signal.SIGINT)
    _, err = stopped.communicate(timeout=60)
    assert stopped.returncode == 130 and err.strip() == "error: cancelled; earlier results are untouched", err[-2000:]
    assert list(out.iterdir()) == [] and list(temp.iterdir()) == []

    killed = _spawn(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _wait_for(building, killed, 120, "the toolkit's build")
    killed.kill()
    killed.wait()
    assert building() and [p.name for p in out.iterdir() if p.name.startswith(".studio-staging-")]

    rerun = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=240, env=env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["m.onnx", "m.onnx.json", "m.rknn", "m.rknn.json", "m.rknn.log"]
    assert not building()
