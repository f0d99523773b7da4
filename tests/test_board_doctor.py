"""`studio board doctor`: its rules on probe outputs recorded from three boards, and the command on the stand-in."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.board.check import read_report
from deploy.board.doctor import EXIT_BLOCKED, TABLE, ModelFacts, board_platform, diagnose, model_facts
from deploy.runtime.digest import sha256_of
from deploy.runtime.metadata import BuildOptions, ModelMeta, save_meta
from deploy.runtime.model_file import RKNN_MAGIC

PROBES = Path(__file__).parent / "data" / "board" / "probe"
MODEL = ModelFacts("m.rknn", "rknnlite", toolkit="2.5.0", platform="rk3588")


def recorded(name: str):
    return read_report((PROBES / name).read_text(), "b", "u@h", "python3")


def rules(findings) -> dict[str, bool]:
    return {f.rule: f.blocks for f in findings}


def test_a_board_set_up_from_one_release_has_no_finding():
    report = recorded("rock5b-good.txt")
    assert (report.librknnrt, report.rknn_toolkit_lite2, report.npu_driver) == ("2.5.0", "2.5.0", "0.9.8")
    assert report.npu_devfreq == {"governor": "performance", "cur_mhz": 1000, "max_mhz": 1000}
    assert diagnose(report, MODEL) == [] and diagnose(report, None) == []


def test_an_old_runtime_blocks_a_newer_model_and_names_the_fix_and_the_source():
    found = diagnose(recorded("orangepi5-old-runtime.txt"), MODEL)
    assert rules(found) == {"runtime-older-than-toolkit": True, "lite-and-runtime-differ": False,
                            "driver-older-than-runtime": False, "governor-not-performance": False}
    block = found[0]
    assert "librknnrt 1.4.0" in block.says and "rknn-toolkit2 2.5.0" in block.says and "m.rknn" in block.says
    assert "studio board setup b --wheels" in block.fix and "rknn-toolkit2/issues/281" in block.sources[0]
    driver = next(f for f in found if f.rule == "driver-older-than-runtime")
    assert "0.8.2 is older than 0.9.6" in driver.says  # what the runtime the model needs was released with
    assert "Rockchip Linux SDK NPU release notes" in driver.sources[0]
    older = ModelFacts("m.rknn", "rknnlite", toolkit="1.4.0", platform="rk3588")  # the board's own release
    assert "runtime-older-than-toolkit" not in rules(diagnose(recorded("orangepi5-old-runtime.txt"), older))


def test_a_model_for_another_soc_is_blocked_and_rk3588s_counts_as_rk3588():
    found = diagnose(recorded("rk3566-board.txt"), MODEL)
    assert rules(found) == {"platform-differs": True}
    assert "--platform rk3566" in found[0].fix and "(RK3566)" in found[0].says
    assert board_platform("Orange Pi 5 (RK3588S)") == "rk3588s"
    assert "platform-differs" not in rules(diagnose(recorded("orangepi5-old-runtime.txt"), MODEL))


def test_fewer_cores_unknown_toolkit_and_an_onnx_model(tmp_path):
    good = recorded("rock5b-good.txt")
    good.npu_load = {"core0": 3}
    assert rules(diagnose(good, MODEL)) == {"fewer-npu-cores": False}
    onnx = ModelFacts("m.onnx", "ort")
    assert rules(diagnose(recorded("rock5b-good.txt"), onnx)) == {"missing: onnxruntime": True}
    model = tmp_path / "m.rknn"
    model.write_bytes(RKNN_MAGIC + b"rest of the model")
    meta = ModelMeta("rknn", ["a"], 96, "rknn-split", ["o"], build=BuildOptions("rk3566", "int8"),
                     provenance={"tools": {"rknn-toolkit2": "2.5.0"}}, sha256=sha256_of(model))
    save_meta(model, meta)
    assert model_facts(model) == ModelFacts("m.rknn", "rknnlite", "2.5.0", "rk3566")
    meta.provenance = {}
    save_meta(model, meta)
    assert rules(diagnose(recorded("rk3566-board.txt"), model_facts(model))) == {"toolkit-unknown": False}


def test_every_rule_has_a_fix_and_a_public_source():
    for name, rule in TABLE["rules"].items():
        assert rule["says"] and rule["fix"], name
        assert rule["sources"] or name == "toolkit-unknown", name
        assert all(s in TABLE or s.startswith(("https://", "rknn-", "Rockchip")) for s in rule["sources"]), name


@pytest.mark.slow  # two probes of the stand-in board over SSH (~3 s)
def test_doctor_on_the_stand_in_board(cli, board, tiny_onnx):
    onnx = cli("board", "doctor", "desk", str(tiny_onnx), "--json")
    assert onnx.exit_code == 0, onnx.stderr
    doc = json.loads(onnx.stdout)
    assert doc["findings"] == [] and doc["model"]["backend"] == "ort"  # x86, no NPU: none of this model's business
    npu = cli("board", "doctor", "desk")
    assert npu.exit_code == EXIT_BLOCKED
    assert "BLOCKS  missing: rknn-toolkit-lite2" in npu.stdout and "finding(s) block the NPU path on desk" in npu.stdout
    assert cli("board", "doctor", "desk", "nothing.rknn").exit_code == 2
