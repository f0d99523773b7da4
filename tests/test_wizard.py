"""The compress wizard walked end to end on tiny models: choose, run (cancel, resume), compare, export, deploy."""
from __future__ import annotations

import json

import pytest
import yaml


def _next(page, title: str) -> None:
    assert page.next.isEnabled(), page.why.text()
    page.next.click()
    assert page.steps[page.current].title == title


@pytest.mark.slow  # trains
def test_wizard_end_to_end_with_tiny_budgets(window, qtbot, tiny_pair, tmp_path):
    import torch

    from studio.core.data.formats import import_dataset
    from tests.conftest import coco_from, make_detector

    synth, teacher, _ = tiny_pair
    student = tmp_path / "coco80.pt"  # the user's own start: a pretrained checkpoint of 80 other classes
    torch.save({"model": make_detector(nc=80), "ema": None}, student)
    coco = tmp_path / "coco"  # and their own dataset, in COCO format, imported split by split
    for split in ("train", "val"):
        coco_from(synth.parent, split, coco)
        data = import_dataset("coco", coco / "annotations" / f"{split}.json", tmp_path / "mine", coco / split, split)
    window.show_page("Compress")
    page = window.page("Compress")

    model = page.step("Model")
    model.model.setText(str(tmp_path / "missing.pt"))
    assert not page.next.isEnabled() and "choose the float model" in page.why.text()
    model.model.setText(str(student))
    model.teacher.setText(str(teacher))
    assert page.command.text() == f"studio models inspect {student}"
    _next(page, "Data")

    page.step("Data").data.setText(str(data))
    assert "train 11" in page.step("Data").splits.text()
    assert page.command.text() == f"studio data stats {data}"
    _next(page, "Recipe")

    recipe = page.step("Recipe")
    recipe.preset.setCurrentText("PTQ only")
    assert not recipe.prune.isChecked() and recipe.algorithms["mmse"].isChecked()
    recipe.preset.setCurrentText("Quick look")
    for term in recipe.terms.values():
        term.setChecked(False)
    assert not page.next.isEnabled() and "distillation term" in page.why.text()
    recipe.terms["response"].setChecked(True)
    assert not recipe.fit.isHidden()  # its classes are not the data's: a finetune stage first
    recipe.fit_epochs.setValue(1)
    recipe.imgsz.setValue(64)
    recipe.finetune.setValue(0)
    recipe.distill_epochs.setValue(1)
    recipe.val_images.setValue(4)
    recipe.calib.setValue(8)
    shown = yaml.safe_load(recipe.yaml.toPlainText())
    assert shown["imgsz"] == 64 and shown["model"] == str(student) and shown["distill"]["kd"] == "response"
    assert shown["qat"]["epochs"] == 1 and shown["export"]["ptq"] == ["normal"] and shown["verify"]["limit"] == 4
    assert shown["finetune"] == {"epochs": 1, "val_limit": 4}
    _next(page, "Run")

    run = page.step("Run")
    run.folder.setText(str(tmp_path / "wizard"))
    chain = tmp_path / "wizard" / "chain"
    assert page.command.text() == f"studio compress --recipe {tmp_path / 'wizard' / 'recipe.yaml'} --out {chain}"
    assert not page.next.isEnabled()
    run.start_button.click()
    qtbot.waitUntil(lambda: run.bars["distill"][2].text() != "–" and run.bars["prune"][2].text() == "done",
                    timeout=120000)
    page.go(2)  # the recipe cannot change under a running chain
    assert page.current == 3 and "cancel it" in window.last_error.text()
    pruned_at = (chain / "prune" / "prune_report.json").stat().st_mtime
    run.cancel_button.click()
    qtbot.waitUntil(lambda: run.start_button.text() == "Resume", timeout=120000)
    assert run.thread.outcome == "cancelled" and page.command.text().endswith("--resume")
    run.start_button.click()
    qtbot.waitUntil(lambda: window.page("Compress").state.report is not None, timeout=400000)
    assert (chain / "prune" / "prune_report.json").stat().st_mtime == pruned_at  # resumed, not redone
    assert all(run.bars[s][2].text() == "done" for s in ("finetune", "prune", "distill", "qat", "export", "verify"))
    assert run.bars["teacher"][0].isHidden()  # the teacher knows the data's classes: no teacher stage
    page.go(2)  # back to the recipe, changed: the finished run no longer stands for it
    recipe.val_images.setValue(3)
    page.go(3)
    assert page.state.report is None and run.start_button.text() == "Resume" and not page.next.isEnabled()
    page.go(2)
    recipe.val_images.setValue(4)
    page.go(3)
    assert page.state.report is not None and run.start_button.text() == "Done"  # read back from the folder
    _next(page, "Compare")

    compare = page.step("Compare")
    variants = [compare.table.item(i, 0).text() for i in range(compare.table.rowCount())]
    assert variants == ["float", "ptq-normal", "qat"]
    report = json.loads((chain / "compress_report.json").read_text())
    assert compare.table.item(2, 1).text() == f"{report['rows'][2]['map50_95']:.4f}"
    assert len(compare.plot.figure.axes) == 2 and compare.plot.figure.axes[1].collections  # points drawn
    compare.choose("qat")
    assert page.state.chosen == "qat"
    _next(page, "Export")

    export = page.step("Export")
    export.dest.setText(str(tmp_path / "deploy"))
    assert page.command.text().startswith(f"studio export {report['qat_model']} --format rknn --platform rk3588 "
                                          "--quant qdq --imgsz 64")
    assert not page.next.isEnabled()
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "qat.rknn.json").write_text("{}")  # someone else's file: never replaced
    export.export_button.click()
    assert "exists with other contents" in window.last_error.text() and not page.next.isEnabled()
    assert sorted(p.name for p in (tmp_path / "deploy").iterdir()) == ["qat.rknn.json"]
    (tmp_path / "deploy" / "qat.rknn.json").unlink()
    export.export_button.click()
    assert (tmp_path / "deploy" / "qat.rknn").read_bytes() == (chain / "exports" / "qat.rknn").read_bytes()
    assert (tmp_path / "deploy" / "qat.rknn.json").is_file() and (tmp_path / "deploy" / "qat.onnx").is_file()
    made = json.loads((tmp_path / "deploy" / "bundle.json").read_text())  # a deploy bundle, as compress writes
    assert made["model"] == "qat.rknn" and made["onnx"] == "qat.onnx" and made["variant"] == "qat"
    assert f"studio board push BOARD {tmp_path / 'deploy'}" in (tmp_path / "deploy" / "README.md").read_text()
    _next(page, "Deploy")

    deploy = page.step("Deploy")
    assert not deploy.board.isEnabled() and deploy.here.isChecked()
    val_images = data.parent / "images" / "val"
    deploy.source.setText(str(val_images))
    assert page.command.text() == f"studio predict {tmp_path / 'deploy' / 'qat.rknn'} {val_images} " \
                                  "--backend rknn-sim --workers 2"
    deploy.go_button.click()
    live = window.page("Live")
    assert window.stack.currentWidget() is live and live.backend.currentText() == "rknn-sim"
    qtbot.waitUntil(lambda: live.frames_shown > 0, timeout=60000)


@pytest.mark.slow  # builds an RKNN and measures it in the simulator
def test_wizard_runs_the_chain_on_an_oriented_box_model(window, qtbot, obb_pt, tmp_path):
    """An OBB model and its oriented data through the wizard: the chain exports and verifies it as OBB, and the
    Compare step shows its rows (measured with the OBB metric)."""
    from studio.core.data.synth import SynthConfig, generate

    data = generate(SynthConfig(tmp_path / "obb-data", images=20, size=96, generator="dense-1", task="obb"))
    window.show_page("Compress")
    page = window.page("Compress")
    page.step("Model").model.setText(str(obb_pt))
    _next(page, "Data")
    page.step("Data").data.setText(str(data))
    _next(page, "Recipe")
    recipe = page.step("Recipe")
    recipe.preset.setCurrentText("PTQ only")
    for name, box in recipe.algorithms.items():
        box.setChecked(name == "normal")
    recipe.imgsz.setValue(64)
    recipe.val_images.setValue(4)
    recipe.calib.setValue(8)
    _next(page, "Run")
    run = page.step("Run")
    run.folder.setText(str(tmp_path / "wizard"))
    run.start_button.click()
    qtbot.waitUntil(lambda: page.state.report is not None or window.last_error is not None, timeout=300000)
    assert window.last_error is None, window.last_error.text()
    _next(page, "Compare")
    compare = page.step("Compare")
    assert [compare.table.item(i, 0).text() for i in range(compare.table.rowCount())] == ["float", "ptq-normal"]
    verified = json.loads((tmp_path / "wizard" / "chain" / "verify" / "verify_report.json").read_text())
    assert [row["metric"] for row in verified["rows"]] == ["probiou, ultralytics OBB val"] * 2
    assert "mAP: probiou" in (tmp_path / "wizard" / "chain" / "compress_report.md").read_text()
