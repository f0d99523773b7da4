"""A compression recipe: which of prune -> distill -> QAT to run, with what settings, read from YAML.

    model: assets/models/student.pt      # float checkpoint to start from
    teacher: assets/models/teacher.pt    # for pruning's fine-tuning and for distillation
    data: out/demo/data/data.yaml
    imgsz: 320
    prune:   {target_flops: 0.5, criterion: taylor, round_to: 0}    # any `studio prune` option
    distill: {epochs: 10, kd: "response,feature,relation", w_relation: 0.5}   # any `studio distill` option
    qat:     {epochs: 3, bits: [16, 8], tune_teacher: false}       # any `studio qat` option; its teacher
                                                                    # is the float model itself unless qat.teacher
    export:  {platform: rk3588, ptq: [normal, kl_divergence], calib_count: 100}
    verify:  {limit: 300}                                          # val images for the simulator's mAP

A section left out is a stage skipped (export and verify always run); a section given
with no options (`distill:`) runs with the defaults. Keys are the option names of the
matching command, with underscores (both come from studio/core/compress/options.py);
unknown keys are refused with the list of known ones and values are checked for their
type and range here, so that neither a typo nor a wrong value surfaces hours into a run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deploy.errors import UserError
from deploy.runtime.atomic import staged
from deploy.runtime.options import Options
from studio.core.compress.options import EXPORT, IMGSZ, SECTIONS, VERIFY

TOP = ("model", "teacher", "data", "imgsz", *SECTIONS)
STAGES = ("prune", "distill", "qat", "export", "verify")  # in the order they run
OPTIONAL = ("prune", "distill", "qat")  # run when the recipe has their section; export and verify always run


def planned(sections) -> list[str]:
    """The stages a recipe with these sections runs, in order."""
    present = set(sections)
    return [stage for stage in STAGES if stage not in OPTIONAL or stage in present]


def plan_problem(raw: dict) -> str | None:
    """What makes a recipe mapping (sections present or not, paths as given) impossible to run, or None."""
    if raw.get("distill") is not None and not raw.get("teacher"):
        return "the distill stage needs a teacher"
    if raw.get("qat") is None and not (raw.get("export") or {}).get("ptq", EXPORT.default("ptq")):
        return "nothing to deploy: run QAT or at least one post-training (export ptq) algorithm"
    return None


@dataclass
class Recipe:
    path: Path
    model: Path
    data: Path
    teacher: Path | None = None
    imgsz: int = 320
    prune: dict | None = None
    distill: dict | None = None
    qat: dict | None = None
    export: dict = field(default_factory=lambda: _defaults(EXPORT))
    verify: dict = field(default_factory=lambda: _defaults(VERIFY))

    def stages(self) -> list[str]:
        return planned(s for s in OPTIONAL if getattr(self, s) is not None)


RECIPE_HEADER = "# written by "  # the first line of every recipe the studio writes (demo, wizard)


def _defaults(table: Options) -> dict:
    return {option.name: list(option.default) if isinstance(option.default, tuple) else option.default
            for option in table}


def _section(raw: dict, name: str, path: Path) -> dict | None:
    """A stage's options, typed and range-checked; None for a stage left out, None values mean the default."""
    if name not in raw:
        return None
    value = raw[name] if raw[name] is not None else {}  # `distill:` alone: the stage with its defaults
    table = SECTIONS[name]
    if not isinstance(value, dict):
        raise UserError(f"{path}: '{name}' must be a mapping of options, e.g. {name}: {{{table.names[0]}: ...}}")
    checked = table.check(value, str(path), section=name)
    return {key: typed for key, typed in checked.items() if typed is not None}


def _file(value, key: str, path: Path, required: bool) -> Path | None:
    if value is None:
        if required:
            raise UserError(f"{path}: '{key}' is required")
        return None
    file = Path(str(value))
    if not file.is_file():
        hint = " (the demo data: `studio assets --only data`)" if key == "data" else ""
        raise UserError(f"{path}: {key} {file} does not exist{hint}")
    return file


def load_recipe(path: Path) -> Recipe:
    """Read and check a recipe; every problem is a one-line UserError naming the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--recipe {path}: no such file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return recipe_from(raw, path)


def recipe_from(raw, path: Path) -> Recipe:
    """Check a recipe's mapping (as read from `path`, whose folder relative paths are taken against)."""
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping with model, data and stage sections")
    unknown = sorted(set(raw) - set(TOP))
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(TOP)}")
    recipe = Recipe(path=path, model=_file(raw.get("model"), "model", path, True),
                    data=_file(raw.get("data"), "data", path, True),
                    teacher=_file(raw.get("teacher"), "teacher", path, False),
                    imgsz=IMGSZ.check(raw.get("imgsz", IMGSZ.default), str(path)),
                    prune=_section(raw, "prune", path), distill=_section(raw, "distill", path),
                    qat=_section(raw, "qat", path))
    recipe.export.update(_section(raw, "export", path) or {})
    recipe.verify.update(_section(raw, "verify", path) or {})
    _check(recipe)
    return recipe


def _check(recipe: Recipe) -> None:
    where = recipe.path
    if recipe.imgsz % 32:
        raise UserError(f"{where}: imgsz {recipe.imgsz} must be a positive multiple of 32")
    problem = plan_problem({"teacher": recipe.teacher, "distill": recipe.distill, "qat": recipe.qat,
                            "export": recipe.export})
    if problem:
        raise UserError(f"{where}: {problem}")
    if recipe.qat and recipe.qat.get("teacher") is not None:
        recipe.qat["teacher"] = _file(recipe.qat["teacher"], "qat teacher", where, True)


def refuse_other_run(text: str, path: Path, chain: Path, hint: str) -> None:
    """A non-empty `chain` continues only with the recipe it was started with, and a recipe.yaml the
    studio did not write is never replaced; `hint` says what to do instead."""
    if path.is_file() and path.read_text() == text:
        return
    if chain.is_dir() and any(chain.iterdir()):
        raise UserError(f"{chain} holds a run of another recipe; {hint}")
    if path.is_file() and not path.read_text().startswith(RECIPE_HEADER):
        raise UserError(f"{path} is a recipe the studio did not write; {hint}")


def write_run_recipe(text: str, path: Path, chain: Path, hint: str) -> Recipe:
    """Write the recipe a run in `chain` is made from, checked first, through a temp file."""
    refuse_other_run(text, path, chain, hint)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with staged(path, ".yaml") as tmp:
            tmp.write_text(text)
            recipe = load_recipe(tmp)  # checked before it replaces anything
    except OSError as exc:
        raise UserError(f"{path}: cannot write the recipe ({exc.strerror or exc})") from None
    recipe.path = path
    return recipe
