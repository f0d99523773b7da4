"""Training through the job API: progress per epoch, cancel mid-run, resume to the end, provenance."""
from __future__ import annotations

import json

import pytest

from studio.core.data.synth import SynthConfig, generate
from studio.core.jobs import Cancelled, CancelToken, Job, ProgressEvent
from studio.core.train import TrainRequest, is_finished, train


@pytest.mark.slow  # trains
def test_cancel_after_first_epoch_then_resume_to_the_end(tmp_path):
    data = generate(SynthConfig(tmp_path / "data", images=8, size=64))
    req = TrainRequest(model="yolov8n.yaml", data=data, epochs=2, imgsz=64, batch=4, project=tmp_path / "runs",
                       name="tiny", workers=0)
    token = CancelToken()
    events: list[ProgressEvent] = []

    def progress(event: ProgressEvent) -> None:
        events.append(event)
        if event.stage == "train" and event.done == 1:
            token.cancel()  # the user stops the run after one epoch

    with pytest.raises(Cancelled):
        train(req, Job(progress, token))
    last = tmp_path / "runs" / "tiny" / "weights" / "last.pt"
    assert last.is_file() and not is_finished(last)

    resumed = train(TrainRequest(**{**req.__dict__, "resume": True}))
    assert is_finished(last) and resumed.epochs == 2
    record = json.loads((tmp_path / "runs" / "tiny" / "provenance.json").read_text())
    assert record["resumed"] is True and record["epochs"] == 2 and len(record["source_sha256"]) == 64
    assert record["train_seconds"] > 0 and record["command"].startswith("studio train yolov8n.yaml")
    assert [e.done for e in events if e.stage == "train"][:2] == [0, 1]


def test_resume_of_a_finished_or_missing_run_is_refused(cli, tmp_path):
    data = generate(SynthConfig(tmp_path / "data", images=4, size=64))
    result = cli("train", "yolov8n.yaml", "--data", data, "--project", tmp_path / "runs", "--name", "none",
                 "--resume")
    assert result.exit_code == 2 and "nothing to resume" in result.stderr
