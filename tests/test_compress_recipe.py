"""`studio compress --recipe`: checked recipes, and the whole chain on tiny models, interrupted and resumed."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml


def _recipe(tmp_path: Path, tiny_pair, **changes) -> Path:
    data, teacher, student = tiny_pair
    recipe = {"model": str(student), "teacher": str(teacher), "data": str(data), "imgsz": 64,
              "prune": {"target_flops": 0.8, "criterion": "l1", "round_to": 16, "val_limit": 4},
              "distill": {"epochs": 1, "kd": "response,feature", "batch": 8, "val_limit": 4},
              "qat": {"epochs": 1, "batch": 8, "calib_batches": 1, "val_limit": 4},
              "export": {"platform": "rk3588", "ptq": ["normal"], "calib_count": 8},
              "verify": {"limit": 4}}
    for key, value in changes.items():  # None: leave the key out
        if value is None:
            recipe.pop(key, None)
        else:
            recipe[key] = value
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize("changes, message", [
    ({"qat": {"epoch": 1}}, "unknown qat option(s) epoch; known: epochs"),
    ({"stages": []}, "unknown key(s) stages"),
    ({"data": "missing/data.yaml"}, "studio assets --only data"),
    ({"imgsz": 100}, "multiple of 32"),
    ({"teacher": None}, "distill stage needs a teacher"),
    ({"export": {"ptq": ["best"]}}, "export: ptq ['best'] must be a list of normal"),
    ({"qat": None, "export": {"ptq": []}}, "nothing to deploy"),
    ({"imgsz": "big"}, "imgsz 'big' must be a whole number"),
    ({"qat": {"bits": [16]}}, "ends at 8"),
    ({"qat": {"epochs": 2.5}}, "epochs 2.5 must be a whole number"),
    ({"qat": {"tune_teacher": "yes"}}, "must be true or false"),
    ({"distill": {"w_relation": "high"}}, "w_relation 'high' must be a number"),
    ({"distill": {"epochs": None}}, "epochs has no value"),
    ({"qat": {"w_relation": -1}}, "w_relation -1 must not be negative"),
])
def test_bad_recipes_get_one_line_naming_the_file(cli, tiny_pair, tmp_path, changes, message):
    path = _recipe(tmp_path, tiny_pair, **changes)
    result = cli("compress", "--recipe", path, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert message in result.stderr and str(path) in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_section_without_options_runs_with_defaults_and_bits_may_be_text(tiny_pair, tmp_path):
    from studio.core.compress.recipe import load_recipe

    data, teacher, student = tiny_pair
    path = tmp_path / "r.yaml"
    path.write_text(f"model: {student}\nteacher: {teacher}\ndata: {data}\ndistill:\nqat:\n  bits: 16,8\n")
    recipe = load_recipe(path)
    assert recipe.distill == {} and recipe.qat == {"bits": [16, 8]} and recipe.prune is None
    assert recipe.stages() == ["distill", "qat", "export", "verify", "bundle"]


def test_distillation_weights_in_a_recipe_reach_the_stage(tiny_pair, tmp_path):
    from studio.core.compress.chain import _kd
    from studio.core.compress.recipe import load_recipe

    path = _recipe(tmp_path, tiny_pair, distill={"epochs": 1, "kd": "response,relation", "w_relation": 0.5},
                   qat={"epochs": 1, "w_box": 1})
    recipe = load_recipe(path)
    distill_options, qat_options = dict(recipe.distill), dict(recipe.qat)
    kd = _kd(distill_options, "response")
    assert kd.terms == ("response", "relation") and kd.relation == 0.5 and kd.cls == 1.0
    assert distill_options == {"epochs": 1}  # the weights are taken out, the rest goes to the stage as options
    assert _kd(qat_options, "response,feature").box == 1.0 and qat_options == {"epochs": 1}


def test_recipe_that_is_not_yaml(cli, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: [unclosed\n")
    result = cli("compress", "--recipe", path)
    assert result.exit_code == 2 and "not valid YAML" in result.stderr


def test_an_existing_run_is_continued_only_with_resume(cli, tiny_pair, tmp_path):
    """(The chain itself runs, is interrupted and resumes in test_wizard.py and test_demo.py.)"""
    out = tmp_path / "run"
    (out / "prune").mkdir(parents=True)
    refused = cli("compress", "--recipe", _recipe(tmp_path, tiny_pair), "--out", out)
    assert refused.exit_code == 2 and "--resume" in refused.stderr and "Traceback" not in refused.stderr
    assert sorted(p.name for p in out.iterdir()) == ["prune"]  # nothing written, nothing removed


@pytest.mark.parametrize("run", ["int8-recipe", "obb-int8-recipe/seed-0", "obb-int8-recipe/seed-1",
                                 "obb-ablations/qat-8-bits-only", "obb-ablations/qat-inner-grids",
                                 "obb-ablations/distill-no-teacher", "obb-ablations/unpruned-finetune"])
def test_a_bundled_recipe_report_renders_from_its_json_byte_for_byte(run):
    """assets/reports/...: the Markdown is exactly what the report code makes of the JSON beside it."""
    import json

    from studio.core.compress.int8_report import _markdown

    folder = Path(__file__).resolve().parent.parent / "assets" / "reports" / run
    report = json.loads((folder / "compress_report.json").read_text())
    assert _markdown(report) == (folder / "compress_report.md").read_text()


def test_the_bundled_two_seed_report_renders_from_its_json_byte_for_byte():
    """assets/reports/obb-int8-recipe: the seeds' side-by-side Markdown is what the report code makes of its JSON,
    and each seed's column is that seed's own bundled report."""
    import json

    from studio.core.compress.seeds import seeds_markdown

    folder = Path(__file__).resolve().parent.parent / "assets" / "reports" / "obb-int8-recipe"
    summary = json.loads((folder / "compress_report.json").read_text())
    assert seeds_markdown(summary) == (folder / "compress_report.md").read_text() and summary["seeds"] == ["0", "1"]
    for seed in summary["seeds"]:
        own = json.loads((folder / f"seed-{seed}" / "compress_report.json").read_text())["rows"]
        assert [row["map50_95"][seed] for row in summary["rows"]] == [row["map50_95"] for row in own]


def test_relative_paths_start_at_the_recipe_files_folder(tiny_pair, tmp_path, monkeypatch):
    from studio.core.compress.recipe import anchored, load_recipe

    data, teacher, student = tiny_pair
    project = tmp_path / "project"
    (project / "recipes").mkdir(parents=True)
    for source, name in ((student, "student.pt"), (teacher, "teacher.pt")):
        (project / name).symlink_to(source)
    raw = {"model": "../student.pt", "teacher": "../teacher.pt", "data": str(data), "distill": None,
           "qat": {"teacher": "../teacher.pt"}}
    path = project / "recipes" / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)  # another working folder than the recipe's
    recipe = load_recipe(path)
    assert recipe.model.resolve() == (project / "student.pt").resolve() and recipe.model.is_file()
    assert recipe.qat["teacher"].resolve() == (project / "teacher.pt").resolve()
    moved = anchored(raw, path)  # written elsewhere (a sweep's candidates), it names the same files
    assert moved["model"] == str((project / "student.pt").resolve()) and moved["data"] == str(Path(data).resolve())
    assert moved["qat"]["teacher"] == str((project / "teacher.pt").resolve()) and raw["model"] == "../student.pt"

    (project / "recipes" / "bad.yaml").write_text(yaml.safe_dump({**raw, "model": "student.pt"}))
    with pytest.raises(Exception, match=r"model student.pt does not exist \(relative paths start at the recipe"):
        load_recipe(project / "recipes" / "bad.yaml")


def _bundled(name: str) -> tuple[Path, dict]:
    """A recipe under assets/recipes, its paths anchored at its folder; every option known and in range (the data
    may not be built here)."""
    import studio
    from studio.core.compress.recipe import SECTIONS, anchored

    path = Path(studio.__file__).resolve().parents[1] / "assets" / "recipes" / name
    raw = anchored(yaml.safe_load(path.read_text()), path)
    for section in set(raw) & set(SECTIONS):
        SECTIONS[section].check(raw[section] or {}, str(path), section=section)
    return path, raw


@pytest.mark.parametrize("name, model, data", [("demo.yaml", "student.pt", "data"),
                                               ("int8.yaml", "student.pt", "data"),
                                               ("obb-int8.yaml", "student-obb.pt", "dense-obb")])
def test_the_bundled_recipes_name_the_bundled_models_from_anywhere(name, model, data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path, raw = _bundled(name)
    assert Path(raw["model"]).is_file() and Path(raw["model"]).name == model
    assert not raw.get("teacher") or Path(raw["teacher"]).is_file()
    assert Path(raw["data"]) == path.parents[2] / "out" / "assets" / data / "data.yaml"


def test_a_model_of_other_classes_is_fitted_first_and_an_architecture_teacher_is_trained(tiny_pair, tmp_path):
    import torch

    from studio.core.compress.recipe import load_recipe
    from tests.conftest import make_detector

    coco = tmp_path / "coco80.pt"  # stands for a COCO-pretrained checkpoint
    torch.save({"model": make_detector(nc=80), "ema": None}, coco)
    own = load_recipe(_recipe(tmp_path, tiny_pair))  # the user's model and teacher know the data's classes
    assert own.stages() == ["prune", "distill", "qat", "export", "verify", "bundle"]
    pretrained = load_recipe(_recipe(tmp_path, tiny_pair, model=str(coco), teacher="yolov8s.yaml"))
    assert pretrained.stages() == ["finetune", "teacher", "prune", "distill", "qat", "export", "verify", "bundle"]
    assert pretrained.teacher == Path("yolov8s.yaml")
    asked = load_recipe(_recipe(tmp_path, tiny_pair, finetune={"epochs": 2}, distill=None, prune=None))
    assert asked.stages() == ["finetune", "qat", "export", "verify", "bundle"] and asked.finetune["epochs"] == 2
    with pytest.raises(Exception, match="teacher yolov9q.yaml: no such architecture"):
        load_recipe(_recipe(tmp_path, tiny_pair, teacher="yolov9q.yaml"))


def test_a_verify_split_the_data_lacks_is_refused_before_anything_runs(cli, tiny_pair, tmp_path):
    data = tiny_pair[0]
    raw = yaml.safe_load(Path(data).read_text())
    raw.pop("test")
    raw["path"] = str(Path(data).parent)
    without = tmp_path / "no-test.yaml"
    without.write_text(yaml.safe_dump(raw))
    path = _recipe(tmp_path, tiny_pair, data=str(without), verify={"split": "test"})
    result = cli("compress", "--recipe", path, "--out", tmp_path / "run")
    assert result.exit_code == 2 and f"verify split test: {without} has no test split" in result.stderr
    assert not (tmp_path / "run").exists()


def test_verify_scores_every_variant_on_the_split_the_recipe_names(tiny_pair, detector_pt, tiny_onnx, tmp_path):
    from studio.core.compress.chain import _verify
    from studio.core.compress.recipe import load_recipe
    from studio.core.data.formats import read_yaml, split_dirs
    from studio.core.jobs import Job

    data = tiny_pair[0]
    held_back = sorted(split_dirs(read_yaml(data), data)["test"].glob("*.png"))
    assert held_back and len(held_back) != len(list(split_dirs(read_yaml(data), data)["val"].glob("*.png")))
    recipe = load_recipe(_recipe(tmp_path, tiny_pair, verify={"split": "test"}))
    reports = {"export": {"model": str(detector_pt), "variants": [
        {"variant": "float", "path": str(tiny_onnx), "format": "onnx", "quant": "float32", "algorithm": None}]}}
    rows = _verify(recipe, tmp_path / "verify", reports, False, Job())["rows"]
    assert [(r["variant"], r["split"], r["images"]) for r in rows] == [("float", "test", len(held_back))]


def test_a_seeded_recipe_changes_the_training_stages_seed_and_nothing_else(tiny_pair, tmp_path):
    from studio.core.compress.recipe import load_recipe

    recipe = load_recipe(_recipe(tmp_path, tiny_pair, distill={"epochs": 1, "seed": 2}))
    seeded = recipe.seeded(5)
    assert seeded.distill == {**recipe.distill, "seed": 5} and seeded.qat == {**recipe.qat, "seed": 5}
    assert seeded.prune == recipe.prune and recipe.distill["seed"] == 2 and "seed" not in recipe.qat
    assert load_recipe(_recipe(tmp_path, tiny_pair, qat=None)).seeded(1).qat is None


def _same_files(recipe: dict, other: dict) -> bool:
    """Two bundled recipes start from the same model file and read the same data, wherever their folders are."""
    return all(Path(recipe[k]).resolve() == Path(other[k]).resolve() for k in ("model", "data"))


def _without(recipe: dict, *keys: str) -> dict:
    """A recipe's sections and options but its files and the given keys: what two ablations must share."""
    return {k: v for k, v in recipe.items() if k not in ("model", "data", *keys)}


def test_the_no_teacher_ablation_recipe_is_the_obb_recipes_prune_and_distillation_without_teacher_terms():
    """assets/recipes/ablations/obb-distill-no-teacher.yaml: the same model, data, pruning and schedule, kd none."""
    from studio.core.compress.recipe import plan_problem

    main = _bundled("obb-int8.yaml")[1]
    raw = _bundled("ablations/obb-distill-no-teacher.yaml")[1]
    assert _same_files(raw, main) and "teacher" not in raw
    assert (raw["imgsz"], raw["prune"], raw["verify"]["split"]) == (main["imgsz"], main["prune"], "test")
    assert raw["distill"] == {**main["distill"], "kd": "none", "seed": 0} and main["distill"]["kd"] != "none"
    assert "qat" not in raw and plan_problem(raw) is None


def test_the_unpruned_control_recipe_is_the_no_teacher_recipe_without_pruning():
    """assets/recipes/ablations/obb-unpruned-finetune.yaml: the same schedule on the labels, the student not pruned."""
    from studio.core.compress.recipe import plan_problem

    no_teacher = _bundled("ablations/obb-distill-no-teacher.yaml")[1]
    raw = _bundled("ablations/obb-unpruned-finetune.yaml")[1]
    assert _same_files(raw, no_teacher)
    assert _without(raw, "verify") == _without(no_teacher, "verify", "prune")
    assert raw["verify"] == {**no_teacher["verify"], "original": True} and plan_problem(raw) is None


def test_the_unpruned_teacher_recipe_is_the_obb_recipes_distillation_with_the_controls_model_as_teacher():
    """assets/recipes/ablations/obb-distill-unpruned-teacher.yaml: the no-teacher recipe plus obb-int8's terms,
    taught by the model the unpruned control trains (read from that recipe's documented --out)."""
    from studio.core.compress.recipe import plan_problem

    main = _bundled("obb-int8.yaml")[1]
    no_teacher = _bundled("ablations/obb-distill-no-teacher.yaml")[1]
    control_path = _bundled("ablations/obb-unpruned-finetune.yaml")[0]
    raw = _bundled("ablations/obb-distill-unpruned-teacher.yaml")[1]
    assert _same_files(raw, no_teacher)
    assert _without(raw, "teacher", "distill") == _without(no_teacher, "distill")
    assert raw["distill"] == {**no_teacher["distill"], "kd": main["distill"]["kd"]}
    control_out = control_path.read_text().split("--out ")[1].split()[0]
    assert Path(raw["teacher"]).resolve() == (control_path.parents[3] / control_out / "distill" / "best.pt").resolve()
    assert plan_problem(raw) is None


@pytest.mark.parametrize("kd, refused", [("none", False), ([], False), ("response", True), (None, True)])
def test_only_a_distill_section_with_teacher_terms_needs_a_teacher(kd, refused):
    from studio.core.compress.recipe import plan_problem

    section = {"epochs": 3} if kd is None else {"epochs": 3, "kd": kd}  # no kd: every term
    problem = plan_problem({"distill": section, "export": {"ptq": ["normal"]}})
    assert (problem is not None and "needs a teacher" in problem) == refused


def test_the_original_row_is_planned_only_when_asked_and_the_chain_changed_the_model(tiny_pair, tmp_path):
    from studio.core.compress.chain import _float_rows
    from studio.core.compress.recipe import load_recipe

    asked = load_recipe(_recipe(tmp_path, tiny_pair, verify={"original": True}))
    made = tmp_path / "prune" / "pruned.pt"
    assert _float_rows(asked, made) == [("original", asked.model), ("float", made)]
    assert _float_rows(asked, asked.model) == [("float", asked.model)]  # PTQ only: the float row is the original
    assert _float_rows(load_recipe(_recipe(tmp_path, tiny_pair)), made) == [("float", made)]


@pytest.mark.parametrize("name, changed", [("obb-qat-fixed-teacher.yaml", {"tune_teacher": False}),
                                           ("obb-qat-8-bits-only.yaml", {"bits": [8]}),
                                           ("obb-qat-inner-grids.yaml", {"inner_grids": True}),
                                           ("obb-qat-low-lr.yaml", {"lr": 1e-5})])
def test_a_qat_ablation_recipe_is_the_obb_recipes_qat_with_one_change(name, changed):
    """assets/recipes/ablations: QAT from the distilled model of obb-int8.yaml's seed 0 (bundled), one change."""
    import json

    from studio.core.compress.recipe import plan_problem

    path, main = _bundled("obb-int8.yaml")
    raw = _bundled(f"ablations/{name}")[1]
    seed0 = path.parents[1] / "reports" / "obb-int8-recipe" / "seed-0" / "distill"  # seed 0's run, bundled
    assert Path(raw["model"]).resolve() == (seed0 / "best.pt").resolve() and Path(raw["model"]).is_file()
    assert json.loads((seed0 / "distill_report.json").read_text())["model"] == "out/obb-int8/seed-0/distill/best.pt"
    assert (raw["data"], raw["imgsz"], raw["verify"]["split"]) == (main["data"], main["imgsz"], "test")
    assert set(raw) & {"prune", "distill"} == set() and plan_problem(raw) is None
    assert raw["qat"] == {**main["qat"], "seed": 0, **changed} and raw["qat"] != {**main["qat"], "seed": 0}
