"""The deploy bundle: one folder with the chosen model, its twin and how to run it, taken by the board commands."""
from __future__ import annotations

import json

import pytest

from deploy.errors import UserError
from studio.core.bundle import bundle_model, write_bundle

RUN = {"platform": "rk3588", "imgsz": 320, "data": "data/mine/data.yaml", "recipe": "recipe.yaml"}


def _variant(folder, name: str = "qat") -> dict:
    """A chain's RKNN variant on disk: the model, its sidecar, the ONNX twin with its sidecar, the report."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".rknn", "RKNN model"), (".rknn.json", "{}"), (".onnx", "ONNX twin"), (".onnx.json", "{}"),
                         (".report.md", "# report"), (".report.json", "{}")):
        (folder / f"{name}{suffix}").write_text(text)
    return {"variant": name, "path": str(folder / f"{name}.rknn"), "format": "rknn", "quant": "qdq",
            "map50_95": 0.61, "map50": 0.83, "images": 40}


def test_a_bundle_holds_the_model_its_twin_and_how_to_run_it(tmp_path):
    row = _variant(tmp_path / "exports")
    dest = tmp_path / "bundle"
    model = write_bundle(RUN, row, dest)
    assert model == dest / "qat.rknn" and model.read_text() == "RKNN model"
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "bundle.json", "qat.onnx", "qat.onnx.json",
                                                        "qat.report.json", "qat.report.md", "qat.rknn", "qat.rknn.json"]
    made = json.loads((dest / "bundle.json").read_text())
    assert made["model"] == "qat.rknn" and made["onnx"] == "qat.onnx" and made["map50_95"] == 0.61
    readme = (dest / "README.md").read_text()
    assert "mAP50-95 0.6100" in readme and f"studio board install BOARD {dest} --source camera:0" in readme
    assert bundle_model(dest) == dest / "qat.rknn" and bundle_model(dest, "ort") == dest / "qat.onnx"
    assert bundle_model(dest / "qat.rknn") == dest / "qat.rknn"  # a file is itself

    assert write_bundle(RUN, row, dest) == model  # the same bundle again (a resumed run): nothing changes


def test_a_bundle_never_replaces_other_files_and_a_plain_folder_is_no_bundle(tmp_path):
    row = _variant(tmp_path / "exports")
    dest = tmp_path / "bundle"
    dest.mkdir()
    (dest / "qat.rknn").write_text("someone else's model")
    with pytest.raises(UserError, match="exists with other contents"):
        write_bundle(RUN, row, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["qat.rknn"]  # nothing written beside it
    with pytest.raises(UserError, match="a folder without bundle.json"):
        bundle_model(tmp_path / "exports")


def test_a_file_of_the_wrong_kind_for_the_backend_names_the_right_backend(cli, tiny_onnx):
    result = cli("board", "run", "rock5b", tiny_onnx, "--source", "camera:0")
    assert result.exit_code == 2 and result.stderr.strip().endswith("not tiny.onnx; use --backend ort")
