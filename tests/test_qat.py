"""Quantization-aware training on tiny models: a step learns, the CLI runs a bit-width schedule and resumes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from studio.core.compress import fakequant as fq
from tests.conftest import make_detector


@pytest.fixture
def tiny(tiny_pair):
    """(data.yaml, float student .pt): an untrained yolov8n and 16 synthetic images."""
    data, _, student = tiny_pair
    return data, student


def test_two_qat_steps_with_distillation_lower_the_loss(tiny):
    from studio.core.compress.kd_config import KdConfig
    from studio.core.compress.kd_step import Distiller
    from studio.core.compress.loop import LoopConfig, optimizer_for, prepare_training, train_step, training_batches
    from studio.core.compress.qat import QAT_TERMS
    from studio.core.models import load_detector

    data, student_pt = tiny
    float_model = load_detector(str(student_pt))[0]
    cfg = LoopConfig(data=Path(data), epochs=1, out=Path("unused"), imgsz=64, batch=4, lr=1e-3, workers=0)
    student = fq.quantize_model(float_model, imgsz=64)
    hyp = prepare_training(student, cfg)
    batch = training_batches(cfg, hyp, student, 1)[0]
    fq.calibrate(student, [batch["img"]])
    distiller = Distiller(float_model, student, KdConfig(terms=QAT_TERMS), 64)
    trainable = torch.nn.ModuleList([student, distiller.adapters])
    optimizer = optimizer_for(trainable, cfg)
    scales = [q.scale.item() for q in fq.activation_quantizers(student) if not q.fixed and not q.export_only]
    student.train()
    losses = [train_step(student, batch, optimizer, distiller, trainable) for _ in range(3)]
    assert {"kd_cls", "kd_box", "kd_fg", "kd_bg"} <= losses[0][1].keys()
    assert losses[2][0] < losses[0][0]  # after two steps, the same batch costs less
    moved = [q.scale.item() for q in fq.activation_quantizers(student) if not q.fixed and not q.export_only]
    assert sum(a != b for a, b in zip(scales, moved)) > len(scales) // 2  # LSQ trains the grids too


def test_a_narrower_stage_starts_from_grids_observed_at_its_width_not_the_ranges_the_wider_one_left(tiny, tmp_path):
    """At 16 bits AdamW lets the scales wander wide; the int8 stage must not inherit those ranges (stepped.pt)."""
    from studio.core.compress.loop import LoopConfig, prepare_training, training_batches
    from studio.core.compress.qat import QatRequest, _step_down
    from studio.core.jobs import Job
    from studio.core.models import load_detector

    data, student_pt = tiny
    cfg = LoopConfig(data=Path(data), epochs=1, out=tmp_path, imgsz=64, batch=4, workers=0, val_limit=4)
    student = fq.quantize_model(load_detector(str(student_pt))[0], 16, 64)
    hyp = prepare_training(student, cfg)
    fq.calibrate(student, [b["img"] for b in training_batches(cfg, hyp, student, 2)])
    grids = [q for q in fq.activation_quantizers(student) if not q.fixed and not q.export_only]
    for q in grids:  # what a 16-bit stage left: every range 100 times what its tensor holds
        low, high = q.represented_range()
        q.set_range(100 * low, 100 * high)
    wandered = [q.represented_range() for q in grids]

    folder = tmp_path / "stage2-int8"
    req = QatRequest(model=student_pt, data=Path(data), out=tmp_path, imgsz=64, batch=4, calib_batches=2)
    stepped = _step_down(student, 8, req, cfg, {}, folder, True, Job())
    assert fq.model_bits(stepped) == 8
    observed = [q.represented_range() for q in fq.activation_quantizers(stepped) if not q.fixed and not q.export_only]
    assert len(observed) == len(wandered)
    assert all(new[1] - new[0] < (old[1] - old[0]) / 10 for new, old in zip(observed, wandered))
    assert json.loads((folder / "stepped.json").read_text())["bits"] == 8

    written = (folder / "stepped.pt").stat().st_mtime  # a rerun (the stage not started yet) reads it back
    again = _step_down(load_detector(str(student_pt))[0], 8, req, cfg, {}, folder, True, Job())
    assert (folder / "stepped.pt").stat().st_mtime == written and fq.model_bits(again) == 8


def _cancel_after(event_text: str):
    """A Job that cancels itself once a progress message contains `event_text` (an interruption)."""
    from studio.core.jobs import Job

    job = Job()

    def progress(event):
        if event_text in event.message:
            job.cancel.cancel()

    job.progress = progress
    return job


@pytest.mark.slow
def test_qat_runs_a_bit_width_schedule_resumes_and_exports(cli, tiny, tmp_path):
    from studio.core.compress.qat import QatRequest, qat
    from studio.core.jobs import Cancelled
    from studio.core.models import load_detector

    data, student_pt = tiny
    out = tmp_path / "qat"
    req = QatRequest(model=student_pt, data=Path(data), out=out, epochs=3, bits=(16, 8), imgsz=64, batch=4,
                     calib_batches=2, lr=1e-3, tune_teacher=True, tune_every=2)
    with pytest.raises(Cancelled):  # interrupted in the int8 stage, after its first epoch
        qat(req, _cancel_after("epoch 1/2: val"))
    assert not (out / "qat.pt").exists()
    int16 = json.loads((out / "stage1-int16" / "stage.json").read_text())  # the finished first stage
    assert int16["bits"] == 16 and int16["epochs"] == 1 and [h["epoch"] for h in int16["history"]] == [1]
    assert fq.model_bits(load_detector(int16["model"])[0]) == 16
    calibrated_at = (out / "calibrated.pt").stat().st_mtime

    again = cli("qat", student_pt, "--data", data, "--out", out, "--epochs", 3, "--bits", "16,8", "--imgsz", 64)
    assert again.exit_code == 2 and "--resume" in again.stderr
    result = cli("qat", student_pt, "--data", data, "--out", out, "--epochs", 3, "--bits", "16,8", "--imgsz", 64,
                 "--batch", 4, "--calib-batches", 2, "--lr", 1e-3, "--tune-teacher", "--tune-every", 2, "--resume",
                 "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (out / "calibrated.pt").stat().st_mtime == calibrated_at  # not calibrated again
    assert [s["bits"] for s in report["stages"]] == [16, 8] and [s["epochs"] for s in report["stages"]] == [1, 2]
    assert [h["epoch"] for h in report["stages"][1]["history"]] == [1, 2]  # the second epoch followed the first
    stepped = json.loads((out / "stage2-int8" / "stepped.json").read_text())  # int8 started from grids observed anew
    assert report["stages"][1]["calibrated_map50_95"] == stepped["calibrated"]["map50_95"]
    from studio.core.compress.chain import _widths
    from studio.core.compress.int8_report import _markdown

    widths = _widths(report)
    assert [(w["bits"], w["trained"]) for w in widths] == [(s["bits"], s["map50_95"]) for s in report["stages"]]
    assert widths[0]["calibrated"] == report["calibrated_map50_95"]
    row = {"variant": "qat", "map50_95": 0.5, "map50": 0.6, "bytes": 1}
    text = _markdown({"platform": "rk3588", "imgsz": 64, "val_images": 4, "recipe": "r", "stages": ["qat"],
                      "float_model": "f", "rows": [row], "qat": {**report, "bits": [16, 8], "widths": widths}})
    assert f"int8 {stepped['calibrated']['map50_95']:.4f} -> {report['stages'][1]['map50_95']:.4f}" in text
    assert {"kd_cls", "kd_fg", "tune_query"} <= report["stages"][1]["history"][0].keys()
    # the adapted teacher carried into the int8 stage: the float model's own weights (no --teacher), moved
    adapted = torch.load(out / "stage1-int16" / "teacher.pt", map_location="cpu")
    float_model = load_detector(str(student_pt))[0].float()
    original = float_model.state_dict()
    assert adapted.keys() == original.keys()
    params = [name for name, _ in float_model.named_parameters()]
    assert sum(not torch.equal(adapted[n], original[n]) for n in params) > len(params) // 2  # tuned (by ~1e-5)
    assert json.loads((out / "qat_report.json").read_text()) == report

    model = load_detector(report["model"])[0]
    assert fq.is_quantized(model) and fq.model_bits(model) == 8
    saved = torch.load(report["model"], map_location="cpu", weights_only=False)
    assert saved["studio"]["operation"] == "qat" and saved["studio"]["bits"] == [16, 8]
    for conv in fq.quant_convs(model):  # baked: weights on their int8 grids, float32 kept
        assert conv.weight.dtype == torch.float32
        steps = conv.weight / conv.weight_quant.scale.view(-1, 1, 1, 1)
        assert torch.allclose(steps, steps.round(), atol=1e-3) and steps.abs().max() <= 127 + 1e-3

    onnx_out = tmp_path / "qat.onnx"
    exported = cli("export", report["model"], "--format", "onnx", "--imgsz", 64, "--out", onnx_out)
    assert exported.exit_code == 0, exported.stderr
    import onnx

    assert sum(n.op_type == "QuantizeLinear" for n in onnx.load(str(onnx_out)).graph.node) > 60


def test_bad_qat_requests_get_one_line(cli, tiny, tmp_path):
    data, student_pt = tiny
    cases = [
        (("--bits", "16,6"), "ends at 8"),
        (("--bits", "8,x"), "whole numbers"),
        (("--epochs", 1, "--bits", "16,8"), "one epoch per bit width"),
        (("--teacher", tmp_path / "none.pt"), "no such file"),
        (("--kd", "response,magic"), "must be known terms: response, feature, relation"),
    ]
    for extra, message in cases:
        result = cli("qat", student_pt, "--data", data, "--out", tmp_path / "q", *extra)
        assert result.exit_code == 2, (extra, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "q").exists()
    missing = cli("qat", tmp_path / "nope.pt", "--data", data)
    assert missing.exit_code == 2 and "no such checkpoint" in missing.stderr


@pytest.mark.slow
def test_teacher_fine_tuning_changes_the_teacher_and_lowers_the_pseudo_students_query_loss(tiny):
    from studio.core.compress.kd_config import KdConfig
    from studio.core.compress.kd_step import Distiller
    from studio.core.compress.loop import LoopConfig, prepare_training, training_batches
    from studio.core.compress.qat import QAT_TERMS
    from studio.core.compress.teacher_tuning import TeacherTuner

    data, _ = tiny
    cfg = LoopConfig(data=Path(data), epochs=1, out=Path("unused"), imgsz=64, batch=8, workers=0)
    student = fq.quantize_model(make_detector(), imgsz=64)
    hyp = prepare_training(student, cfg)
    batch = training_batches(cfg, hyp, student, 1)[0]
    fq.calibrate(student, [batch["img"]])
    teacher = make_detector(seed=1)
    before = [p.detach().clone() for p in teacher.parameters()]
    # the meta-gradient alone (no task term): only through it can the teacher help the pseudo student
    tuner = TeacherTuner(Distiller(teacher, student, KdConfig(terms=QAT_TERMS), 64), hyp, every=1, inner_lr=0.05,
                         teacher_lr=1e-3, task_weight=0.0)
    student_state = {k: v.clone() for k, v in student.state_dict().items()}
    query = [tuner.adapt(batch, student)["tune_query"] for _ in range(5)]
    assert query[-1] < query[0] and all(b <= a + 1e-3 for a, b in zip(query, query[1:]))
    assert max((a - b).abs().max().item() for a, b in zip(before, teacher.parameters())) > 1e-3
    after = student.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in student_state.items())  # the real student is untouched
