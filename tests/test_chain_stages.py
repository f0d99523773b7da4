"""The chain's stages are all one shape: done by their report, resumed by their checkpoint, reports handed on."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.core.compress.chain import STAGES, TRAINING, Stage, _run_stage
from studio.core.compress.recipe import FITTING, OPTIONAL, planned
from studio.core.compress.recipe import STAGES as STAGE_NAMES
from studio.core.jobs import Job, ProgressEvent


def test_the_chain_runs_the_stages_the_recipe_names_in_its_order():
    assert tuple(stage.name for stage in STAGES) == STAGE_NAMES
    assert set(TRAINING) == set(OPTIONAL) | set(FITTING)
    assert planned(["qat", "finetune"]) == ["finetune", "qat", "export", "verify", "bundle"]
    assert planned({"qat": {}, "prune": {}}) == ["prune", "qat", "export", "verify", "bundle"]
    assert planned(iter(["distill"])) == ["distill", "export", "verify", "bundle"]  # any iterable of section names


class Recorder:
    """A stage body that records how it was called and returns a report naming its model."""

    def __init__(self):
        self.calls = []

    def __call__(self, recipe, folder: Path, reports: dict, resume: bool, job: Job) -> dict:
        self.calls.append({"resume": resume, "reports": dict(reports)})
        folder.mkdir(parents=True, exist_ok=True)
        return {"model": str(folder / "made.pt"), "seconds": 1.0}


@pytest.mark.parametrize("checkpoint", ["state.pt", None])
def test_a_stage_starts_fresh_resumes_from_its_checkpoint_and_is_skipped_once_done(tmp_path, checkpoint):
    body = Recorder()
    stage = Stage("export", "exports", "export_report.json", checkpoint, body)
    earlier = {"prune": {"model": "p.pt"}}
    first = _run_stage(stage, None, tmp_path, earlier, Job())
    assert body.calls == [{"resume": False, "reports": earlier}]
    assert first == json.loads((tmp_path / "exports" / "export_report.json").read_text())  # written by the chain

    (tmp_path / "exports" / "export_report.json").unlink()  # interrupted after it had started
    (tmp_path / "exports" / (checkpoint or "partial.bin")).write_text("x")
    _run_stage(stage, None, tmp_path, earlier, Job())
    assert body.calls[-1]["resume"] is True

    again = _run_stage(stage, None, tmp_path, earlier, Job())  # done: read back, not run
    assert len(body.calls) == 2 and again == first


def test_a_training_stage_writes_its_own_report(tmp_path):
    """prune, distill and qat write their report as their commands do; the chain only reads it back."""
    def body(recipe, folder, reports, resume, job):
        folder.mkdir(parents=True)
        (folder / "qat_report.json").write_text(json.dumps({"model": "q.pt", "seconds": 2.0}))
        return {"model": "ignored: the file is what counts"}

    stage = Stage("qat", "qat", "qat_report.json", None, body)
    assert _run_stage(stage, None, tmp_path, {}, Job()) == {"model": "q.pt", "seconds": 2.0}


def test_events_carry_their_part_as_a_field():
    events: list[ProgressEvent] = []
    job = Job(progress=events.append)
    part = job.within("distill")
    part.stage("distill", None, "(2 of 5)")
    part.step("epoch", 1, 3)
    job.step("verify float", 0, 1)
    assert [(e.part, e.stage) for e in events] == [("distill", "distill"), ("distill", "epoch"), ("", "verify float")]
    assert [e.label for e in events] == ["distill", "distill: epoch", "verify float"]
    part.cancel.cancel()
    assert job.cancel.cancelled  # one cancel token for the whole run
