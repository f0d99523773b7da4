"""Distillation end to end on tiny models: different widths, ablation report, comparison report, bad input."""
from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch


def test_distiller_builds_adapters_only_where_widths_differ(tiny_pair):
    from studio.core.compress.kd_config import KdConfig
    from studio.core.compress.kd_step import Distiller
    from studio.core.models import load_detector

    _, teacher_pt, student_pt = tiny_pair
    teacher, student = load_detector(str(teacher_pt))[0], load_detector(str(student_pt))[0]
    distiller = Distiller(teacher, student, KdConfig(), 64)
    assert [(a.in_channels, a.out_channels) for a in distiller.adapters] == [(64, 128), (128, 256), (256, 512)]
    same = Distiller(student, load_detector(str(student_pt))[0], KdConfig(), 64)
    assert all(isinstance(a, torch.nn.Identity) for a in same.adapters)


@pytest.mark.slow
def test_distill_cli_trains_with_all_terms_and_saves_a_plain_student(cli, tiny_pair, tmp_path):
    data, teacher, student = tiny_pair
    out = tmp_path / "kd"
    result = cli("distill", "--student", student, "--teacher", teacher, "--data", data, "--epochs", 2,
                 "--imgsz", 64, "--batch", 4, "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["terms"] == ["response", "feature", "relation"] and len(report["history"]) == 2
    first = report["history"][0]
    assert {"kd_cls", "kd_box", "kd_fg", "kd_bg", "kd_rel", "map50_95"} <= first.keys()
    assert all(first[k] > 0 for k in ("kd_cls", "kd_box", "kd_fg", "kd_bg"))
    saved = torch.load(report["model"], map_location="cpu", weights_only=False)
    assert saved["studio"]["operation"] == "distill" and saved["studio"]["kd"]["temperature"] == 2.0
    state_names = saved["ema"].state_dict().keys()
    assert not any("adapter" in k or "teacher" in k for k in state_names)  # the student alone

    again = cli("distill", "--student", student, "--teacher", teacher, "--data", data, "--epochs", 2,
                "--imgsz", 64, "--batch", 4, "--out", out, "--resume")
    assert again.exit_code == 2 and "nothing to resume" in again.stderr


@pytest.mark.slow
def test_ablation_and_compare_reports(cli, tiny_pair, tmp_path):
    """On the bundled trained pair (they score above zero at 64 px), so the gain is a difference of real scores."""
    from studio.core.demo import BUNDLED_STUDENT, BUNDLED_TEACHER

    data, _, _ = tiny_pair
    out = tmp_path / "ablation"
    result = cli("distill", "--student", BUNDLED_STUDENT, "--teacher", BUNDLED_TEACHER, "--data", data, "--epochs", 1,
                 "--imgsz", 64, "--batch", 8, "--val-limit", 4, "--out", out, "--ablation", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    rows = summary["rows"]
    assert [r["variant"] for r in rows] == ["none", "response", "+feature", "+relation"]
    assert summary["budget"] == {"epochs": 1, "imgsz": 64, "batch": 8, "images": len(list(
        (Path(data).parent / "images" / "train").iterdir()))}
    assert json.loads((out / "ablation.json").read_text()) == summary
    for row, terms in zip(rows, ([], ["response"], ["response", "feature"], ["response", "feature", "relation"])):
        assert row["terms"] == terms
        saved = torch.load(row["model"], map_location="cpu", weights_only=False)
        assert list(saved["studio"]["kd"]["terms"]) == terms  # each variant really trained with its own terms
    assert rows[0]["map50_95"] > 0.2  # a trained student: the gain is measured on scores, not on zeros

    # `studio compare` evaluates the two ends of the ablation again, from their checkpoints
    compared = cli("compare", rows[0]["model"], rows[-1]["model"], "--data", data, "--imgsz", 64, "--val-limit", 4,
                   "--out", tmp_path / "cmp", "--json")
    assert compared.exit_code == 0, compared.stderr
    cards = json.loads(compared.stdout)["models"]
    assert [c["map50_95"] for c in cards] == [rows[0]["map50_95"], rows[-1]["map50_95"]]
    assert cards[1]["vs_first"]["map50_95_points"] == pytest.approx(100 * summary["gain_map50_95"], abs=0.011)
    assert cards[0]["params"] == cards[1]["params"] and cards[1]["vs_first"]["gflops"] == 1.0
    assert all(c["torch_ms"] > 0 and c["ort_ms"] > 0 and "small" in c for c in cards)

    table = (out / "ablation.md").read_text()
    for row in rows:  # one line per variant, its score and its points against the first
        assert f"| {row['variant']} | {row['map50_95']:.4f} | {row['map50']:.4f} | " in table
        assert f"| {100 * (row['map50_95'] - rows[0]['map50_95']):+.2f} |" in table
    assert table.count("\n| ") == 5
    assert _png_size(out / "ablation.png") == (715, 396)  # 6.5 x 3.6 inches at 110 dpi
    assert _png_size(tmp_path / "cmp" / "compare.png") == (1320, 396)
    compare_md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| model |" in compare_md and f"| {cards[1]['map50_95']:.4f} |" in compare_md


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG that decodes and is not blank."""
    import cv2

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    image = cv2.imread(str(path))
    assert image is not None and image.std() > 10, path  # a drawn figure, not an empty canvas
    return image.shape[1], image.shape[0]


def test_distill_rejects_bad_requests(cli, tiny_pair, tmp_path):
    data, teacher, student = tiny_pair
    no_teacher = cli("distill", "--student", student, "--data", data, "--out", tmp_path / "a")
    assert no_teacher.exit_code == 2 and "--teacher" in no_teacher.stderr
    bad_term = cli("distill", "--student", student, "--teacher", teacher, "--data", data, "--kd", "logits",
                   "--out", tmp_path / "b")
    assert bad_term.exit_code == 2 and "--kd 'logits' must be known terms" in bad_term.stderr
    missing = cli("compare", student, tmp_path / "nope.pt")
    assert missing.exit_code == 2 and "nope.pt" in missing.stderr


def test_a_student_of_other_classes_learns_the_datas_and_a_teacher_must_know_them(cli, tiny_pair, tmp_path):
    from studio.core.models import class_names, load_detector
    from tests.conftest import make_detector

    data, teacher, student = tiny_pair
    coco = tmp_path / "coco80.pt"  # stands for a COCO-pretrained checkpoint: 80 other classes
    torch.save({"model": make_detector(nc=80), "ema": None}, coco)
    result = cli("distill", "--student", coco, "--teacher", teacher, "--data", data, "--epochs", 1, "--imgsz", 64,
                 "--batch", 8, "--val-limit", 4, "--out", tmp_path / "kd", "--json")
    assert result.exit_code == 0, result.stderr
    saved = torch.load(json.loads(result.stdout)["model"], map_location="cpu", weights_only=False)["ema"]
    assert class_names(saved) == class_names(torch.load(teacher, weights_only=False)["model"])
    assert saved.model[-1].nc == 4
    architecture, _ = load_detector("yolov8n.yaml", nc=4)  # what --student yolov8n.yaml starts from
    assert architecture.model[-1].nc == 4

    refused = cli("distill", "--student", student, "--teacher", coco, "--data", data, "--epochs", 1,
                  "--imgsz", 64, "--out", tmp_path / "refused")
    assert refused.exit_code == 2 and "not the data's classes" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_until_flat_stops_once_the_best_map_stalls_for_ten_epochs_and_a_resume_trains_no_more(
        cli, tiny_pair, tmp_path, monkeypatch):
    from studio.core.compress import loop

    scores = iter([0.10, 0.20] + [0.201] * 30)  # +0.1 points after epoch 2: under the 0.3-point rule
    monkeypatch.setattr(loop, "validate", lambda weights, cfg: {"map50_95": next(scores), "map50": 0.5,
                                                                "small": None})
    ticks = iter(range(0, 10**6, 1000))  # the loop's clock: 1000 s a reading (start, each epoch's state, end)
    monkeypatch.setattr(loop, "time", SimpleNamespace(monotonic=lambda: next(ticks), strftime=time.strftime))
    data, teacher, student = tiny_pair
    out = tmp_path / "flat"
    args = ("distill", "--student", student, "--teacher", teacher, "--data", data, "--kd", "none", "--epochs", 20,
            "--until-flat", "--seed", 3, "--imgsz", 64, "--batch", 8, "--out", out, "--json")
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["epochs"] == 12 and len(report["history"]) == 12  # epoch 12: the best of its last 10 adds 0.1
    saved = torch.load(report["model"], map_location="cpu", weights_only=False)
    assert saved["train_args"]["seed"] == 3
    assert report["teacher"] is None and saved["studio"]["teacher"] is None  # named, but kd none never used it

    again = cli(*args[:-1], "--resume", "--json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["epochs"] == 12
    assert report["seconds"] == 13000 and json.loads(again.stdout)["seconds"] == 13000  # the first run's time counts


def test_an_until_flat_run_that_went_flat_early_cools_down_without_mosaic_then_stops_flat(tiny_pair, tmp_path,
                                                                                          monkeypatch):
    """The loop follows schedule.py: the epoch after it went flat trains without mosaic at a falling rate."""
    from ultralytics.data.dataset import YOLODataset

    from studio.core.compress import loop
    from studio.core.models import load_detector

    scores = [0.20] * 11 + [0.30] + [0.301] * 20  # flat after 11 epochs; the cool-down epoch gains 10 points
    validated, closed, rates = [], [], []
    monkeypatch.setattr(loop, "validate", lambda weights, cfg: validated.append(1) or {
        "map50_95": scores[len(validated) - 1], "map50": 0.5, "small": None})
    close = YOLODataset.close_mosaic
    monkeypatch.setattr(YOLODataset, "close_mosaic",
                        lambda self, hyp: closed.append(len(validated)) or close(self, hyp))
    step = loop.train_step
    monkeypatch.setattr(loop, "train_step", lambda model, batch, optimizer, *a: rates.append(
        (len(validated), optimizer.param_groups[0]["lr"])) or step(model, batch, optimizer, *a))
    data, _, student = tiny_pair
    cfg = loop.LoopConfig(data=data, epochs=40, out=tmp_path / "run", imgsz=64, batch=8, workers=0, close_mosaic=1,
                          until_flat=True)
    result = loop.fit(load_detector(str(student))[0], cfg)
    assert result.epochs == 22  # 11 flat, 1 cooling down, 10 at the floor without a gain worth 0.3 points
    assert closed == [11]  # mosaic off from the cool-down on, the workers restarted once
    by_epoch = {}
    for epoch, lr in rates:
        by_epoch.setdefault(epoch, []).append(lr)
    floor = cfg.lr * cfg.final_lr
    assert by_epoch[10][-1] > 0.5 * cfg.lr and by_epoch[11][0] > 2 * floor  # the cosine had far to go at epoch 11
    assert by_epoch[12][0] == pytest.approx(floor) and by_epoch[21][-1] == pytest.approx(floor)
    again = loop.fit(load_detector(str(student))[0], replace(cfg, resume=True))
    assert again.epochs == 22 and len(validated) == 22  # a resumed run that stopped flat trains no more


def test_a_loss_part_given_by_some_steps_only_is_averaged_over_those_steps(tiny_pair, tmp_path, monkeypatch):
    """Teacher tuning reports its figures from its first adaptation on: the epoch's mean is theirs, not diluted."""
    from studio.core.compress import loop
    from studio.core.models import load_detector

    monkeypatch.setattr(loop, "validate", lambda weights, cfg: {"map50_95": 0.1, "map50": 0.2, "small": None})
    calls = []

    def extra_loss(batch, preds, model):
        calls.append(1)
        return batch["img"].new_zeros(()), {"every": 1.0, **({"late": 2.0} if len(calls) > 2 else {})}

    data, _, student = tiny_pair
    cfg = loop.LoopConfig(data=data, epochs=1, out=tmp_path / "run", imgsz=64, batch=4, workers=0)
    history = loop.fit(load_detector(str(student))[0], cfg, extra_loss=extra_loss).history
    assert len(calls) >= 3  # so the late part came from fewer steps than the epoch had
    assert history[0]["every"] == 1.0 and history[0]["late"] == 2.0


def test_training_loader_workers_are_not_forked_from_the_training_process(tiny_pair):
    """A worker forked from a multi-GB distillation rank keeps every page the rank rewrites after the fork: the
    workers come from a small server process instead, and still deliver the same batches for the same seed."""
    from studio.core.compress import loop
    from studio.core.models import load_detector

    data, _, student = tiny_pair
    model = load_detector(str(student))[0]
    batches = []
    for _ in range(2):
        cfg = loop.LoopConfig(data=data, epochs=1, out=Path("unused"), imgsz=64, batch=4, workers=2)
        torch.manual_seed(cfg.seed)
        _, loader = loop._dataloader(cfg, loop.prepare_training(model, cfg), model)
        batches.append(next(iter(loader))["img"])
        parents = {int(Path(f"/proc/{w.pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                   for w in loader.iterator._workers}
        loader.close()
        assert len(parents) == 1 and os.getpid() not in parents
    assert torch.equal(*batches)
