"""What the compress-and-deploy wizard decides, without Qt: presets, the recipe, CLI twins, picking, exporting.

The wizard is a front for `studio compress --recipe`: every choice ends up in a recipe
file the CLI can run, and every step can print the command that does the same thing,
so what someone clicked once can go into a script or CI.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from studio.core.compress.recipe import RECIPE_HEADER
from studio.core.compress.sweep_report import pareto
from studio.core.demo import SHORT_BUDGET

# name -> (what it is for, the stage sections of the recipe)
PRESETS: dict[str, tuple[str, dict]] = {
    "Quick look": ("Every stage with budgets of minutes (those of `studio demo`): checks the chain on your model "
                   "and data, not its accuracy.", SHORT_BUDGET),
    "Balanced": ("Half the compute, accuracy won back by distillation, QAT stepping 16 -> 8 bits with a teacher "
                 "tuned for the student (about an hour on a laptop CPU at 320 px).", {
        "prune": {"target_flops": 0.5, "criterion": "taylor", "round_to": 16},
        "distill": {"epochs": 10, "kd": "response,feature"},  # relation at its default weight cost 2 points
        "qat": {"epochs": 3, "bits": [16, 8], "tune_teacher": True},
        "export": {"ptq": ["normal", "kl_divergence"], "calib_count": 100}}),
    "Int8 only": ("No pruning: QAT from the model's own float self, against PTQ with each calibration algorithm.", {
        "qat": {"epochs": 3, "bits": [8], "kd": "response,feature"},
        "export": {"ptq": ["normal", "kl_divergence"], "calib_count": 100}}),
    "PTQ only": ("No training at all: post-training int8 with every calibration algorithm, side by side.", {
        "export": {"ptq": ["normal", "kl_divergence", "mmse"], "calib_count": 100}}),
}


@dataclass
class WizardState:
    """What the steps have chosen so far; each step reads what the ones before it wrote."""

    model: Path | None = None
    teacher: Path | None = None
    data: Path | None = None
    recipe: dict = field(default_factory=dict)  # imgsz and the stage sections; paths come from above
    folder: Path = Path("out/wizard")  # recipe.yaml and the chain's run go here
    report: dict | None = None  # the chain's compress report, once it has run
    chosen: str | None = None  # the variant picked in the comparison
    exported: Path | None = None  # where the chosen model was copied to

    @property
    def recipe_path(self) -> Path:
        return self.folder / "recipe.yaml"

    @property
    def chain(self) -> Path:
        return self.folder / "chain"

    def full_recipe(self) -> dict:
        paths = {"model": self.model, "teacher": self.teacher, "data": self.data}
        return {**{k: str(Path(v).resolve()) for k, v in paths.items() if v}, **self.recipe}  # see anchored()

    def set_report(self, report: dict | None) -> None:
        """A new (or no) run: what was picked and exported from the previous one no longer holds."""
        self.report, self.chosen, self.exported = report, None, None

    def chosen_row(self) -> dict | None:
        rows = self.report["rows"] if self.report else []
        return next((r for r in rows if r["variant"] == self.chosen), None)


def q(path) -> str:
    """A path or word quoted for a POSIX shell."""
    return shlex.quote(str(path))


def recipe_text(recipe: dict) -> str:
    return f"{RECIPE_HEADER}the studio's compress wizard\n" + yaml.safe_dump(recipe, sort_keys=False)


def compress_command(recipe_path: Path, chain: Path, resume: bool) -> str:
    return f"studio compress --recipe {q(recipe_path)} --out {q(chain)}" + (" --resume" if resume else "")


def front(rows: list[dict]) -> dict[str, list[str]]:
    """Variants not beaten on both accuracy and cost: by the toolkit's cycle estimate (RKNN rows), and by size."""
    compute = [(r["variant"], r["npu_build"]["mcycles"], r["map50_95"]) for r in rows if r.get("npu_build")]
    size = [(r["variant"], r["bytes"], r["map50_95"]) for r in rows]
    return {"compute": pareto(compute), "size": pareto(size)}


def export_command(row: dict, report: dict, dest: Path, calib_count: int) -> str:
    """The `studio export` line that builds the same variant from its checkpoint."""
    from studio.core.data.formats import read_yaml, split_dirs

    calib = split_dirs(read_yaml(Path(report["data"])), Path(report["data"])).get("train")
    out = dest / Path(row["path"]).name
    if row["format"] == "onnx":
        return f"studio export {q(report['float_model'])} --format onnx --imgsz {report['imgsz']} --out {q(out)}"
    model = report["qat_model"] if row["quant"] == "qdq" else report["float_model"]
    line = (f"studio export {q(model)} --format rknn --platform {report['platform']} --quant {row['quant']} "
            f"--imgsz {report['imgsz']} --calib {q(calib)} --report --out {q(out)}")
    if row.get("algorithm"):  # PTQ: the same calibration as the chain's
        line += f" --algorithm {row['algorithm']} --calib-count {calib_count}"
    return line


def live_backend(model: Path) -> str:
    """How this machine runs a model: ONNX Runtime for .onnx, rknn-toolkit2's simulator for .rknn."""
    return "rknn-sim" if Path(model).suffix == ".rknn" else "ort"


def board_backend(model: Path) -> str:
    """How a board runs a model: its NPU (rknn-toolkit-lite2) for .rknn, ONNX Runtime on its CPU for .onnx."""
    return "rknnlite" if Path(model).suffix == ".rknn" else "ort"
