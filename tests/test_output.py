"""The output transaction: whole or nothing, never mixed, never over an input, leftovers of killed runs cleared."""
from __future__ import annotations

import subprocess
import sys

import pytest

from deploy.errors import UserError
from deploy.runtime.output import Output, claim_run


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _write(staging, names):
    for name in names:
        (staging / name).write_text(name)


def test_a_new_folder_appears_whole_and_nothing_else_is_left(tmp_path):
    dest = tmp_path / "out"
    with Output(dest) as staging:
        _write(staging, ["a", "b"])
        assert not dest.exists()  # nothing under the final name until the end
    assert sorted(p.name for p in dest.iterdir()) == ["a", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_existing_output_is_refused_unless_forced_and_then_replaced_whole(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old").write_text("keep")
    with pytest.raises(UserError, match="already exists; add --force"):
        with Output(dest):
            pytest.fail("the work must not start")
    assert (dest / "old").read_text() == "keep"
    with Output(dest, force=True) as staging:
        _write(staging, ["new"])
    assert sorted(p.name for p in dest.iterdir()) == ["new"]  # replaced, not mixed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("fault", [RuntimeError("bug"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_run_leaves_the_destination_as_it_was(tmp_path, fault):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old").write_text("keep")
    with pytest.raises(type(fault)):
        with Output(dest, force=True) as staging:
            _write(staging, ["half"])
            raise fault
    assert [p.name for p in dest.iterdir()] == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_single_file_is_published_by_rename(tmp_path):
    dest = tmp_path / "model.onnx"
    dest.write_text("old")
    with Output(dest, force=True, folder=False, suffix=".onnx") as staging:
        assert staging.name.endswith(".onnx") and staging.parent == tmp_path
        staging.write_text("new")
    assert dest.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


@pytest.mark.parametrize("where", ["same", "inside", "holds"])
def test_an_output_that_overlaps_an_input_is_refused(tmp_path, where):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    dest = {"same": data, "inside": data / "tiles", "holds": tmp_path}[where]
    with pytest.raises(UserError, match="overlaps the input"):
        with Output(dest, force=True, inputs=[data]):
            pytest.fail("the work must not start")
    assert (data / "images").is_dir()


def test_a_killed_runs_leftovers_are_cleared_and_a_set_aside_output_restored(tmp_path):
    dead = _dead_pid()
    dest = tmp_path / "out"
    (tmp_path / f".out.staging-{dead}-abc123").mkdir()
    (tmp_path / f".out.aside-{dead}-abc123").mkdir()  # killed between the two renames of a publish
    (tmp_path / f".out.aside-{dead}-abc123" / "old").write_text("keep")
    with pytest.raises(UserError, match="already exists"):
        Output(dest).check()
    assert (dest / "old").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_not_enough_room_is_said_before_the_work(tmp_path):
    with pytest.raises(UserError, match="MiB free"):
        with Output(tmp_path / "out", need_bytes=2**62):
            pytest.fail("the work must not start")
    assert list(tmp_path.iterdir()) == []


def test_a_resumable_run_continues_or_starts_over_only_when_asked(tmp_path):
    run = tmp_path / "run"
    claim_run(run, resume=False, force=False, what="training run")  # nothing there: start
    run.mkdir()
    (run / "last.pt").write_text("epoch 3")
    with pytest.raises(UserError, match="--resume continues it, --force starts over"):
        claim_run(run, resume=False, force=False, what="training run")
    claim_run(run, resume=True, force=False, what="training run")
    assert (run / "last.pt").is_file()
    with pytest.raises(UserError, match="give one of them"):
        claim_run(run, resume=True, force=True, what="training run")
    claim_run(run, resume=False, force=True, what="training run")
    assert not run.exists()
