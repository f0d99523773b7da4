"""docs/your-own-model.md, run as written: its commands in its order, on tiny data, against the stand-in board.

What stands in for the reader's world: a COCO dataset made from synthetic images, an untrained 80-class
yolov8n as the COCO checkpoint, the guide's own recipe with minute budgets (same keys), the stand-in
board's address, and a folder of images played in a loop instead of camera:0 (ONNX Runtime instead of
the NPU). Each stand-in must still match the guide's text, so a guide that changes fails here."""
from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path

import pytest
import torch
import yaml

from studio.core.data.synth import SynthConfig, generate
from tests.conftest import coco_from, make_detector
from tests.test_docs_commands import command_lines

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "your-own-model.md"
TINY = {"imgsz": 64, "finetune": {"epochs": 1, "batch": 8, "val_limit": 4},
        "prune": {"finetune_epochs": 0, "batch": 8, "val_limit": 4},
        "distill": {"epochs": 1, "batch": 8, "val_limit": 4},
        "qat": {"epochs": 2, "batch": 8, "calib_batches": 1, "val_limit": 4},
        "export": {"calib_count": 8}, "verify": {"limit": 4}}


def _recipe(text: str) -> dict:
    block = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    return yaml.safe_load(block)


def _tiny(recipe: dict) -> dict:
    tiny = dict(recipe, imgsz=TINY["imgsz"])
    for section, budget in TINY.items():
        if section != "imgsz":
            assert section in recipe, f"the guide's recipe has no {section} section"
            tiny[section] = {**recipe[section], **budget}
    return tiny


@pytest.mark.slow  # the whole chain, a service on the stand-in board (about a minute)
def test_the_guide_runs_as_written(cli, sshd, board_python, scenes, tmp_path, monkeypatch):
    text = GUIDE.read_text()
    commands = [line for line, whole in command_lines(text) if whole]
    assert 0 < len(commands) <= 10  # the journey in at most ten commands
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EDGE_STUDIO_HOME", str(tmp_path / "home"))
    synth = generate(SynthConfig(tmp_path / "synth", images=20, size=160)).parent
    for split in ("train", "val"):
        coco_from(synth, split, tmp_path / "coco")
    torch.save({"model": make_detector(nc=80), "ema": None}, tmp_path / "yolov8n.pt")  # "COCO-pretrained"
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(_tiny(_recipe(text)), sort_keys=False))
    board = tmp_path / "board"
    stand_ins = {"--host 192.168.1.42 --user rock --key ~/.ssh/id_ed25519":
                 f"--host 127.0.0.1 --user {sshd.user} --port {sshd.port} --key {sshd.client_key} "
                 f"--python {board_python} --root {board}",
                 "--source camera:0": f"--source {scenes} --loop --backend ort"}
    used, seconds = set(), {}
    try:
        for line in commands:
            typed = line
            for guide_text, stand_in in stand_ins.items():
                if guide_text in typed:
                    typed, used = typed.replace(guide_text, stand_in), used | {guide_text}
            started = time.monotonic()
            result = cli(*shlex.split(typed)[1:])
            seconds[line] = round(time.monotonic() - started, 1)
            assert result.exit_code == 0, (line, result.stderr[-2000:])
        assert used == set(stand_ins)
        print("\n" + "\n".join(f"{s:7.1f} s  {line}" for line, s in seconds.items()))

        report = json.loads((tmp_path / "out" / "mine" / "compress_report.json").read_text())
        assert report["stages"] == ["finetune", "teacher", "prune", "distill", "qat", "export", "verify", "bundle"]
        results = board / "studio" / "service" / "results.jsonl"
        line = json.loads(results.read_text().splitlines()[-1])  # the service's own output, read on the board
        assert set(line["names"]) <= {"vehicle", "storage-tank", "plane", "ship"} and "frame" in line
    finally:
        cli("board", "uninstall", "rock5b")
