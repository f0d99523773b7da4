"""Training on two processes (torchrun, DDP, gloo on the CPU), and as two torchrun nodes on 127.0.0.1."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.sshd import free_port


def torchrun(*args: str, log_dir: Path | None = None) -> list[str]:
    logs = ["--log-dir", str(log_dir), "--redirects", "3"] if log_dir else []
    return [sys.executable, "-m", "torch.distributed.run", *logs, *args]


def distill_args(tiny_pair, out: Path, epochs: int) -> list[str]:
    data, _, student = tiny_pair
    return ["-m", "studio", "distill", "--student", str(student), "--data", str(data), "--kd", "none",
            "--epochs", str(epochs), "--imgsz", "96", "--batch", "8", "--lr", "0.002", "--out", str(out)]


def total_loss(entry: dict) -> float:
    return sum(v for k, v in entry.items() if k.endswith("_loss"))


def rank_stdout(log_dir: Path, rank: int) -> str:
    return "".join(p.read_text() for p in log_dir.rglob(f"attempt_*/{rank}/stdout.log"))


@pytest.mark.slow  # trains on two processes
def test_two_processes_train_with_ddp_rank0_writes_and_resume_continues(tiny_pair, tmp_path):
    out, logs = tmp_path / "ddp", tmp_path / "logs"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    first = subprocess.run(torchrun("--standalone", "--nproc_per_node", "2", *distill_args(tiny_pair, out, 2),
                                    log_dir=logs), capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "best weights" in rank_stdout(logs, 0) and "best weights" not in rank_stdout(logs, 1)
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "distill_report.json", "last.pt", "state.pt"]
    state = torch.load(out / "state.pt", map_location="cpu", weights_only=False)
    assert state["world_size"] == 2 and state["epoch"] == 1
    assert torch.load(out / "last.pt", map_location="cpu", weights_only=False)["world_size"] == 2

    # --nproc launches torchrun itself; --resume continues from epoch 3 with the saved optimizer and EMA
    resumed = subprocess.run([sys.executable, *distill_args(tiny_pair, out, 3)[:-2], "--out", str(out), "--resume",
                              "--nproc", "2"], capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    history = json.loads((out / "distill_report.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert total_loss(history[-1]) < total_loss(history[0])
    assert resumed.stdout.count("best weights") == 1  # one rank speaks


@pytest.mark.slow  # trains on two processes
def test_two_torchrun_nodes_on_localhost_train_together(tiny_pair, tmp_path):
    port = free_port()
    out = tmp_path / "nodes"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    nodes = [subprocess.Popen(torchrun("--nnodes", "2", "--node_rank", str(rank), "--nproc_per_node", "1",
                                       "--master_addr", "127.0.0.1", "--master_port", str(port),
                                       *distill_args(tiny_pair, out, 1)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for rank in (0, 1)]
    results = [node.communicate(timeout=600) for node in nodes]
    assert [n.returncode for n in nodes] == [0, 0], results[0][1][-2000:] + results[1][1][-2000:]
    assert torch.load(out / "last.pt", map_location="cpu", weights_only=False)["world_size"] == 2
    assert "best weights" in results[0][0] and "best weights" not in results[1][0]


ADAPT_ON_EACH_RANK = """
import json, sys
from pathlib import Path

import torch
import torch.distributed as dist

from studio.core.compress import fakequant as fq
from studio.core.compress.kd_config import KdConfig
from studio.core.compress.kd_step import Distiller
from studio.core.compress.loop import LoopConfig, prepare_training, training_batches
from studio.core.compress.qat import QAT_TERMS
from studio.core.compress.teacher_tuning import TeacherTuner
from tests.conftest import make_detector


def main():  # locals, freed on return: a tuned teacher's graph left in globals to interpreter shutdown can abort it
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    cfg = LoopConfig(data=Path(sys.argv[1]), epochs=1, out=Path("unused"), imgsz=64, batch=4, workers=0)
    student = fq.quantize_model(make_detector(), imgsz=64)
    hyp = prepare_training(student, cfg)
    batch = training_batches(cfg, hyp, student, 2)[rank]  # each process its own images
    fq.calibrate(student, [batch["img"]])
    teacher = make_detector(seed=1)
    start = torch.cat([p.detach().flatten() for p in teacher.parameters()])
    tuner = TeacherTuner(Distiller(teacher, student, KdConfig(terms=QAT_TERMS), 64), hyp, every=1, teacher_lr=1e-3)
    for _ in range(2):
        tuner.adapt(batch, student)
    mine = torch.cat([p.detach().flatten() for p in teacher.parameters()])
    both = [torch.empty_like(mine) for _ in range(2)]
    dist.all_gather(both, mine)
    if rank == 0:
        Path(sys.argv[2]).write_text(json.dumps({"apart": float((both[0] - both[1]).abs().max()),
                                                 "moved": float((mine - start).abs().max())}))


main()
"""


@pytest.mark.slow  # two processes
def test_a_teacher_tuned_on_two_processes_stays_the_same_on_both(tiny_pair, tmp_path):
    """Each process adapts the teacher on other images; averaging its gradients keeps the two teachers equal."""
    data, _, _ = tiny_pair
    script, result = tmp_path / "adapt.py", tmp_path / "teachers.json"
    script.write_text(ADAPT_ON_EACH_RANK)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    run = subprocess.run(torchrun("--standalone", "--nproc_per_node", "2", str(script), str(data), str(result)),
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    teachers = json.loads(result.read_text())
    assert teachers["moved"] > 1e-4  # the teacher was tuned
    assert teachers["apart"] == 0.0  # and is the same teacher on both processes


@pytest.mark.slow  # trains on two processes
def test_the_compress_chain_trains_on_two_processes_and_rank0_exports(tiny_pair, tmp_path):
    import yaml

    data, _, student = tiny_pair
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": str(student), "data": str(data), "imgsz": 64,
        "prune": {"target_flops": 0.8, "criterion": "l1", "round_to": 16, "finetune_epochs": 1, "batch": 8,
                  "val_limit": 4},
        "qat": {"epochs": 1, "batch": 8, "calib_batches": 1, "val_limit": 4, "tune_teacher": True, "tune_every": 1},
        "export": {"platform": "rk3588", "ptq": ["normal"], "calib_count": 4},
        "verify": {"limit": 4, "original": True}}))
    out = tmp_path / "chain"
    result = subprocess.run([sys.executable, "-m", "studio", "compress", "--recipe", str(recipe), "--out", str(out),
                             "--nproc", "2", "--json"], capture_output=True, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)  # rank 0 alone printed (two objects would not parse)
    assert [r["variant"] for r in report["rows"]] == ["original", "float", "ptq-normal", "qat"]
    pruned = json.loads((out / "prune" / "prune_report.json").read_text())
    assert pruned["gflops"]["ratio"] < 0.95
    original, *made = report["rows"]  # the unpruned model first, scored as it came in: the Δ reference
    assert original["source"] == str(student) and original["format"] == "onnx"
    assert all(r["gflops"] == pytest.approx(original["gflops"] * pruned["gflops"]["ratio"], rel=0.02) for r in made)
    assert report["float_model"] == pruned["model"]  # the chain exported the pruned model
    pruned_params = sum(p.numel() for p in torch.load(pruned["model"], map_location="cpu",
                                                      weights_only=False)["ema"].parameters())
    original_params = sum(p.numel() for p in torch.load(student, map_location="cpu",
                                                        weights_only=False)["model"].parameters())
    assert pruned_params == pruned["params"]["after"] < original_params
    for row, quant in zip(report["rows"][2:], ("int8", "qdq")):  # the RKNN files rank 0 built, as recorded
        assert Path(row["path"]).stat().st_size == row["bytes"]
        assert json.loads(Path(row["path"] + ".json").read_text())["build"]["quant"] == quant
    tuned = torch.load(out / "prune" / "step1" / "state.pt", map_location="cpu", weights_only=False)
    assert tuned["world_size"] == 2  # the fine-tuning after pruning ran on both processes
    assert torch.load(out / "qat" / "stage1-int8" / "state.pt", map_location="cpu",
                      weights_only=False)["world_size"] == 2
    from studio.core.compress import fakequant as fq
    from studio.core.models import load_detector

    qat = json.loads((out / "qat" / "qat_report.json").read_text())
    saved = torch.load(qat["model"], map_location="cpu", weights_only=False)
    assert saved["studio"]["operation"] == "qat" and saved["studio"]["bits"] == [8]
    model = load_detector(qat["model"])[0]  # what rank 0 wrote: the int8 fake-quantized student
    assert fq.is_quantized(model) and fq.model_bits(model) == 8
    tuned_teacher = torch.load(out / "qat" / "stage1-int8" / "teacher.pt", map_location="cpu")
    float_teacher = load_detector(pruned["model"])[0].float().state_dict()  # the student's own float self
    assert any(not torch.equal(v, float_teacher[k]) for k, v in tuned_teacher.items())  # adapted on two processes


@pytest.mark.slow  # trains on two processes
def test_train_from_an_architecture_on_two_cpu_processes(tiny_pair, tmp_path):
    data, _, _ = tiny_pair
    result = subprocess.run([sys.executable, "-m", "studio", "train", "yolov8n.yaml", "--data", str(data), "--epochs",
                             "1", "--imgsz", "64", "--batch", "8", "--project", str(tmp_path), "--name", "ddp",
                             "--nproc", "2", "--json"], capture_output=True, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    assert out["epochs"] == 1
    best = torch.load(out["best"], map_location="cpu", weights_only=False)
    assert list(best["ema"].names.values()) == ["vehicle", "storage-tank", "plane", "ship"]  # the data's names
    assert best["train_args"]["imgsz"] == 64 and best["train_args"]["batch"] == 8
    ckpt = torch.load(out["last"], map_location="cpu", weights_only=False)
    assert ckpt["world_size"] == 2 and len(ckpt["ema"].names) == 4  # built for the data's 4 classes
    provenance = json.loads((tmp_path / "ddp" / "provenance.json").read_text())
    assert provenance["world_size"] == 2
