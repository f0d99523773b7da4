"""A deploy bundle: the one folder to take to a board, written at the end of a compress run (and by the wizard).

It holds the chosen variant's model and sidecar, for an RKNN model the ONNX twin it was built
from (to run on the host) and its verification report, then bundle.json (what it is and what it
scored) and a README.md that says how to run it. `studio board push|run|bench|install` take the
folder where they take a model file.
"""
from __future__ import annotations

import filecmp
import json
import os
import shlex
import shutil
from pathlib import Path

from deploy.errors import UserError
from deploy.runtime.metadata import sidecar_path

BUNDLE_FILE = "bundle.json"


def suggested(rows: list[dict]) -> str:
    """The deployable variant to pick: the most accurate int8 one (float when there is none)."""
    int8 = [r for r in rows if r["format"] == "rknn"]
    return max(int8 or rows, key=lambda r: r["map50_95"])["variant"]


def variant_files(row: dict) -> list[Path]:
    """A variant's model, its sidecar, and for RKNN the ONNX it was built from (for the host) and its reports."""
    path = Path(row["path"])
    files = [path, sidecar_path(path)]
    if row["format"] == "rknn":
        files += [path.with_suffix(".onnx"), sidecar_path(path.with_suffix(".onnx")),
                  path.with_suffix(".report.md"), path.with_suffix(".report.json")]
    return [f for f in files if f.is_file()]


def manifest(report: dict, row: dict, files: list[Path]) -> dict:
    """bundle.json: the variant, its files, and how it scored on the run's val split."""
    twin = next((f.name for f in files[1:] if f.suffix == ".onnx"), None)
    return {"variant": row["variant"], "model": files[0].name, "onnx": twin if row["format"] == "rknn" else None,
            "format": row["format"], "quant": row["quant"], "platform": report["platform"],
            "imgsz": report["imgsz"], "map50_95": row["map50_95"], "map50": row["map50"], "val_images": row["images"],
            "measured_in": "rknn-toolkit2 simulator" if row["format"] == "rknn" else "torch (float)",
            "data": report["data"], "recipe": report["recipe"]}


def readme(made: dict, dest: Path) -> str:
    """How to run the bundle, with its own path in the commands."""
    where = shlex.quote(str(dest))
    host = made["onnx"] or made["model"]
    lines = [f"# Deploy bundle: {made['variant']} ({made['quant']}) for {made['platform']}", "",
             f"Made by `studio compress` from `{made['recipe']}`. On the val split of `{made['data']}` "
             f"({made['val_images']} images, {made['measured_in']}): mAP50-95 {made['map50_95']:.4f}, "
             f"mAP50 {made['map50']:.4f}.", "",
             f"- `{made['model']}` and `{made['model']}.json`: the model and its sidecar (input size, classes, "
             "output scales), which the runtime reads",
             *([f"- `{made['onnx']}`: the same model for ONNX Runtime, on this machine or a board's CPU"]
               if made["onnx"] else []),
             "- `bundle.json`: what this is and what it scored", "", "Run it:", "",
             f"    studio predict {where}/{host} IMAGES_OR_VIDEO --save out/predictions   # here",
             f"    studio board push BOARD {where}                    # to a board (add it first: studio board add)",
             f"    studio board run BOARD {where} --source camera:0   # detections streamed home",
             f"    studio board install BOARD {where} --source camera:0   # a service that keeps running", ""]
    return "\n".join(lines)


def write_bundle(report: dict, row: dict, dest: Path) -> Path:
    """Copy the chosen variant into `dest` with bundle.json and README.md; returns the model's new path.

    A file of other contents already there is never replaced (choose another folder); everything
    is written under temporary names first and renamed at the end, the model last, so a failed
    write leaves no model beside a sidecar that does not match it.
    """
    files = variant_files(row)
    if not files or files[0] != Path(row["path"]):
        raise UserError(f"{row['path']}: the {row['variant']} model is gone; run the chain again (it resumes)")
    made = manifest(report, row, files)
    texts = {BUNDLE_FILE: json.dumps(made, indent=2) + "\n", "README.md": readme(made, dest)}
    dest.mkdir(parents=True, exist_ok=True)
    clashes = [dest / f.name for f in files
               if (dest / f.name).exists() and not filecmp.cmp(f, dest / f.name, shallow=False)]
    clashes += [dest / name for name, text in texts.items()
                if (dest / name).exists() and (dest / name).read_text() != text]
    if clashes:
        raise UserError(f"{clashes[0]} exists with other contents; choose another folder (nothing was written)")
    parts = []
    try:
        for name, text in texts.items():
            parts.append((dest / (name + ".part"), dest / name))
            parts[-1][0].write_text(text)
        for f in files:
            parts.append((dest / (f.name + ".part"), dest / f.name))
            shutil.copyfile(f, parts[-1][0])
        for part, final in reversed(parts):  # the model is the first file: renamed last
            os.replace(part, final)
    finally:
        for part, _ in parts:
            part.unlink(missing_ok=True)
    return dest / files[0].name


def bundle_model(path: Path, backend: str = "rknnlite") -> Path:
    """The model a path names: a bundle folder gives its model (its ONNX twin for --backend ort); a file is itself."""
    path = Path(path)
    if not path.is_dir():
        return path
    found = path / BUNDLE_FILE
    if not found.is_file():
        raise UserError(f"{path} is a folder without {BUNDLE_FILE}; give a model file or a deploy bundle "
                        "(studio compress writes one in OUT/bundle)")
    made = json.loads(found.read_text())
    if backend == "ort":
        name = made["onnx"] or (made["model"] if made["format"] == "onnx" else None)
        if name is None:
            raise UserError(f"{path}: the bundle holds no ONNX model for --backend ort")
        return path / name
    return path / made["model"]
