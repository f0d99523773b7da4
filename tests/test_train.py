"""Training through the job API: progress per epoch, cancel mid-run, resume to the end, provenance."""
from __future__ import annotations

import json

import pytest

from studio.core.data.synth import SynthConfig, generate
from studio.core.jobs import Cancelled, CancelToken, Job, ProgressEvent
from studio.core.train import TrainRequest, is_finished, train, training_seconds


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
    times = [float(r.split(",")[1]) for r in (tmp_path / "runs" / "tiny" / "results.csv").read_text().split()[1:]]
    assert json.loads((tmp_path / "runs" / "tiny" / "resumes.json").read_text()) == [1]  # after one epoch's row
    assert record["train_seconds"] == round(times[0] + times[1], 1)  # the resumed run's clock started again
    assert record["command"].startswith("studio train yolov8n.yaml")
    assert record["convergence"] == {"epochs": 2, "gain_last_10": None, "flat": None}  # too short to tell
    assert [e.done for e in events if e.stage == "train"][:2] == [0, 1]


def test_until_flat_ends_the_run_after_the_epoch_that_made_it_flat_as_a_finished_run(tmp_path, monkeypatch):
    """... and --no-mosaic keeps mosaic off from the first epoch (ultralytics' no-mosaic phase spans the run), --lr
    trains with AdamW at that rate and no warm-up."""
    import torch

    import studio.core.train as training
    from studio.core.convergence import convergence

    seen = []

    def flat_from_the_second_epoch(maps):
        seen.append(len(maps))
        return {**convergence(maps), "flat": len(maps) >= 2}

    monkeypatch.setattr(training, "convergence", flat_from_the_second_epoch)
    data = generate(SynthConfig(tmp_path / "data", images=8, size=64))
    result = train(TrainRequest(model="yolov8n.yaml", data=data, epochs=6, imgsz=64, batch=4,
                                project=tmp_path / "runs", name="flat", workers=0, until_flat=True, mosaic=False,
                                lr=1e-4))
    run = tmp_path / "runs" / "flat"
    assert result.epochs == 2 and seen[:2] == [1, 2]  # asked after each epoch, from results.csv
    assert len((run / "results.csv").read_text().split()) == 1 + 2 and is_finished(run / "weights" / "last.pt")
    assert json.loads((run / "provenance.json").read_text())["command"].endswith("--until-flat --no-mosaic --lr 0.0001")
    args = torch.load(run / "weights" / "last.pt", weights_only=False)["train_args"]
    assert args["close_mosaic"] == 6 and (args["optimizer"], args["lr0"], args["warmup_epochs"]) == ("AdamW", 1e-4, 0)


def test_training_seconds_add_up_each_resumed_stretch(tmp_path):
    rows = [(1, 100.0), (2, 200.5), (3, 300.0), (4, 95.0), (5, 190.0), (6, 80.0)]  # resumed after 3 and after 5
    (tmp_path / "results.csv").write_text("epoch,time\n" + "".join(f"{e},{t}\n" for e, t in rows))
    assert training_seconds(tmp_path) == 570.0
    assert training_seconds(tmp_path / "nowhere") is None
    # a resumed first epoch (350 s) that outlasts the whole run before it (300 s) shows no drop; a noted resume does
    (tmp_path / "results.csv").write_text("epoch,time\n1,100.0\n2,200.0\n3,300.0\n4,350.0\n5,700.0\n")
    assert training_seconds(tmp_path) == 700.0
    (tmp_path / "resumes.json").write_text("[3]")
    assert training_seconds(tmp_path) == 1000.0


def test_resume_of_a_finished_or_missing_run_is_refused(cli, tmp_path):
    data = generate(SynthConfig(tmp_path / "data", images=4, size=64))
    result = cli("train", "yolov8n.yaml", "--data", data, "--project", tmp_path / "runs", "--name", "none",
                 "--resume")
    assert result.exit_code == 2 and "nothing to resume" in result.stderr


class _Saves:
    """Stands for ultralytics' trainer: save_model writes self.last and self.best in place."""

    cut_after = None  # bytes written before the write is interrupted (None: never)

    def __init__(self, weights):
        self.last, self.best = weights / "last.pt", weights / "best.pt"

    def save_model(self) -> bool:
        new = b"new checkpoint " * 100
        for path in (self.last, self.best):
            path.write_bytes(new[: self.cut_after])
            if self.cut_after is not None:
                raise KeyboardInterrupt
        return True


def test_a_save_interrupted_halfway_keeps_the_earlier_checkpoints_whole(tmp_path):
    from studio.core.train import with_whole_checkpoints

    for name in ("last.pt", "best.pt"):
        (tmp_path / name).write_bytes(b"earlier checkpoint")
    trainer = with_whole_checkpoints(_Saves)(tmp_path)
    trainer.cut_after = 100
    with pytest.raises(KeyboardInterrupt):
        trainer.save_model()
    assert (tmp_path / "last.pt").read_bytes() == (tmp_path / "best.pt").read_bytes() == b"earlier checkpoint"
    assert trainer.last == tmp_path / "last.pt" and trainer.best == tmp_path / "best.pt"

    trainer.cut_after = None
    assert trainer.save_model() is True
    assert (tmp_path / "last.pt").read_bytes() == (tmp_path / "best.pt").read_bytes() == b"new checkpoint " * 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # the cut part was replaced


def test_a_damaged_checkpoint_is_one_line_naming_force(cli, tmp_path):
    data = generate(SynthConfig(tmp_path / "data", images=4, size=64))
    weights = tmp_path / "runs" / "cut" / "weights"
    weights.mkdir(parents=True)
    (weights / "last.pt").write_bytes(b"PK\x03\x04 cut short")
    result = cli("train", "yolov8n.yaml", "--data", data, "--project", tmp_path / "runs", "--name", "cut",
                 "--resume")
    assert result.exit_code == 2 and "last.pt is damaged" in result.stderr and "--force" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_init_starts_an_oriented_box_architecture_from_a_detectors_matching_layers(detector_pt):
    import torch

    from studio.core.train import started_model

    detector = torch.load(detector_pt, map_location="cpu", weights_only=False)["model"].state_dict()
    fresh = started_model(TrainRequest(model="yolov8n-obb.yaml", data=detector_pt)).model.state_dict()
    started = started_model(TrainRequest(model="yolov8n-obb.yaml", data=detector_pt, init=str(detector_pt)))
    weights = started.model.state_dict()
    same = [k for k in weights if k in detector and weights[k].shape == detector[k].shape]
    assert len(same) > 0.8 * len(weights) and started.task == "obb"
    assert all(torch.equal(weights[k], detector[k].float()) for k in same)
    assert not torch.equal(fresh["model.0.conv.weight"], weights["model.0.conv.weight"])
    assert any(k not in same for k in weights if ".cv4." in k)  # the angle branch has no counterpart: as built


def test_init_that_does_not_exist_is_one_line(cli, tmp_path):
    result = cli("train", "yolov8n-obb.yaml", "--data", str(tmp_path / "data.yaml"), "--init",
                 str(tmp_path / "none.pt"))
    assert result.exit_code == 2 and "none.pt" in result.stderr and "Traceback" not in result.stderr
