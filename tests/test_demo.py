"""`studio demo` at toy size: the whole chain, the pipeline run and the report beside the bundled full-budget run."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

import studio.core.demo as demo_module


@pytest.mark.slow  # trains
def test_demo_runs_the_chain_reports_it_and_resumes(cli, tmp_path, monkeypatch):
    # the bundled trained pair (as the demo's defaults), named explicitly: the val mAP is above zero at 64 px,
    # so the report's figures can be checked against evaluations made here
    student, teacher = demo_module.BUNDLED_STUDENT, demo_module.BUNDLED_TEACHER
    scene = tmp_path / "scene.jpg"  # a small scene keeps the tiled step quick at 64-px tiles
    cv2.imwrite(str(scene), np.random.default_rng(0).integers(0, 255, (200, 260, 3), dtype=np.uint8))
    monkeypatch.setattr(demo_module, "SAMPLE_SCENE", scene)
    dense = tmp_path / "dense_scene.jpg"  # and a corner of the dense scene for the oriented-box student
    cv2.imwrite(str(dense), cv2.imread(str(demo_module.DENSE_SCENE))[:256, :256])
    monkeypatch.setattr(demo_module, "DENSE_SCENE", dense)
    out = tmp_path / "demo"
    args = ("demo", "--out", out, "--model", student, "--teacher", teacher, "--images", 20, "--imgsz", 64)
    first = cli(*args, "--json")
    assert first.exit_code == 0, first.stderr
    result = json.loads(first.stdout)
    chain = result["chain"]
    assert chain["stages"] == ["prune", "distill", "qat", "export", "verify", "bundle"]
    from studio.core.bundle import bundle_model

    bundle = Path(chain["bundle"])  # the most accurate int8 variant, with its ONNX twin and how to run it
    best_int8 = max((r for r in chain["rows"] if r["format"] == "rknn"), key=lambda r: r["map50_95"])
    assert bundle_model(bundle).read_bytes() == Path(best_int8["path"]).read_bytes()
    assert bundle_model(bundle, "ort").suffix == ".onnx" and (bundle / "README.md").is_file()
    assert [r["variant"] for r in chain["rows"]] == ["float", "ptq-normal", "qat"]
    assert chain["val_images"] == 4  # the val split of 20 images, all scored
    float_row, ptq, qat = chain["rows"]
    assert float_row["host_ort_ms"] > 0 and float_row["npu_build"] is None
    for row in (ptq, qat):
        assert Path(row["path"]).is_file() and row["bytes"] == Path(row["path"]).stat().st_size
        assert row["images"] == 4
        # pruned to multiples of 16 channels, QAT compiles to int8 throughout as PTQ does (with odd widths the
        # toolkit's concat+conv rewrite leaves float16 partial convs in a QDQ graph: docs/quantization.md)
        assert row["npu_build"]["convs"] >= 40 and row["npu_build"]["int8_convs"] == row["npu_build"]["convs"]
    assert ptq["quant"] == "int8" and ptq["algorithm"] == "normal" and qat["quant"] == "qdq"
    assert qat["host_ort_ms"] > 0  # the QDQ ONNX runs on the host too
    # scores checked against evaluations made here on the demo's val split: the bundled student scores well
    # above zero before the chain (as the prune stage recorded), and the float row is the score of the chain's
    # float model (near zero after the toy budget), not that of the student it started from
    data_yaml = out / "data" / "data.yaml"

    def evaluated(model) -> dict:
        run = cli("eval", model, "--data", data_yaml, "--imgsz", 64, "--json")
        assert run.exit_code == 0, run.stderr
        return json.loads(run.stdout)

    start = evaluated(student)
    pruned = json.loads((out / "chain" / "prune" / "prune_report.json").read_text())
    assert start["images"] == 4 and pruned["map50_95"]["before"] == start["map50_95"] > 0.3
    end = evaluated(chain["float_model"])
    assert (float_row["map50_95"], float_row["map50"]) == (end["map50_95"], end["map50"])
    for row in chain["rows"]:  # each row is the verification its variant wrote
        assert json.loads((out / "chain" / "verify" / f"{row['variant']}.json").read_text()) == row
    table = (out / "chain" / "compress_report.md").read_text()
    assert table.count("\n| ") == 4
    png = out / "chain" / "compress_report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plot = cv2.imread(str(png))
    assert plot.shape[:2] == (440, 1210) and plot.std() > 10  # 11 x 4 inches at 110 dpi, drawn on
    runs = result["pipeline"]["runs"]
    assert [r["workers"] for r in runs] == [1, 2] and all(r["fps"] > 0 and r["in_order"] for r in runs)
    assert result["scene"]["frames"] == 1
    assert cv2.imread(result["scene"]["picture"]).shape[:2] == (200, 260)  # the whole scene, annotated
    turned = result["obb_scene"]  # the bundled oriented-box student, exported by the demo, over the dense scene
    assert turned["frames"] == 1 and turned["tiles"] == 25 and Path(turned["model"]).name == "student-obb.onnx"
    assert cv2.imread(turned["picture"]).shape[:2] == (256, 256)

    md = Path(result["report"]).read_text()
    assert "**Short-budget run.**" in md and "Bundled full-budget run" in md and "Oriented boxes on a dense scene" in md
    assert f"(YOLOv8n-OBB, {turned['epochs']} epochs on the dense benchmark)" in md
    bundled = json.loads((demo_module.BUNDLED_REPORT / "compress_report.json").read_text())
    assert f"| qat | {bundled['rows'][-1]['map50_95']:.4f} |" in md  # the full-budget table, beside this run's
    assert f"| qat | {chain['rows'][-1]['map50_95']:.4f} |" in md
    for picture in re.findall(r"!\[[^]]*\]\(([^)]+)\)", md):
        assert (out / picture).is_file(), picture
    page = Path(result["html"]).read_text()
    assert page.count("<table>") == 3 and "<strong>Short-budget run.</strong>" in page

    trained = [out / "chain" / p for p in ("prune/prune_report.json", "distill/best.pt", "qat/qat.pt")]
    mtimes = [p.stat().st_mtime for p in trained]
    shutil.rmtree(out / "chain" / "verify")  # as if interrupted after training and export
    (out / "chain" / "compress_report.json").unlink()
    again = cli(*args)
    assert again.exit_code == 0, again.stderr
    assert "short-budget run" in again.stdout and "frames/s" in again.stdout
    assert [p.stat().st_mtime for p in trained] == mtimes  # resumed: nothing trained twice
    resumed = json.loads((out / "chain" / "compress_report.json").read_text())
    assert [r["map50_95"] for r in resumed["rows"]] == [r["map50_95"] for r in chain["rows"]]

    data = sorted(str(p.relative_to(out)) for p in (out / "data").rglob("*"))
    other = cli(*args[:-4], "--images", 24, "--imgsz", 64)
    assert other.exit_code == 2 and "--fresh" in other.stderr and "Traceback" not in other.stderr
    assert sorted(str(p.relative_to(out)) for p in (out / "data").rglob("*")) == data  # refused before writing


def test_demo_without_models_says_how_to_get_them(cli, tmp_path):
    result = cli("demo", "--out", tmp_path / "demo", "--model", tmp_path / "absent.pt", "--images", 20,
                 "--imgsz", 64)
    assert result.exit_code == 2 and "studio assets" in result.stderr and "absent.pt" in result.stderr


def test_demo_refuses_a_size_the_models_cannot_take(cli, tmp_path):
    result = cli("demo", "--out", tmp_path / "demo", "--imgsz", 100)
    assert result.exit_code == 2 and "--imgsz 100 must be a positive multiple of 32" in result.stderr
    assert not (tmp_path / "demo").exists()


def test_a_bundled_models_epochs_count_what_each_stage_ran(tmp_path):
    from studio.core.demo import epochs_trained

    card = tmp_path / "student-obb.json"
    card.write_text(json.dumps({"stages": [{"epochs": 40}, {"epochs": 40, "convergence": None},
                                           {"epochs": 60, "convergence": {"epochs": 23, "flat": True}}]}))
    assert epochs_trained(card) == 40 + 40 + 23  # the third stopped flat after 23 of its 60


def test_an_export_counts_as_the_bundled_models_only_while_that_model_is_unchanged(tiny_onnx, detector_pt, tmp_path):
    import shutil

    from studio.core.demo import exported_from

    source = tmp_path / "student.pt"
    shutil.copyfile(detector_pt, source)
    onnx = tmp_path / "tiny.onnx"
    for suffix in ("", ".json"):
        shutil.copyfile(f"{tiny_onnx}{suffix}", f"{onnx}{suffix}")
    assert exported_from(onnx, source)  # the fixture exported this very checkpoint
    source.write_bytes(source.read_bytes() + b"\0")  # a pull brought another version
    assert not exported_from(onnx, source)
    assert not exported_from(tmp_path / "missing.onnx", detector_pt)
