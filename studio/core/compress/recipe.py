"""A compression recipe: which of prune -> distill -> QAT to run, with what settings, read from YAML.

    model: ../models/student.pt          # float checkpoint to start from
    teacher: ../models/teacher.pt        # for pruning's fine-tuning and distillation (none with kd: none)
    data: ../../out/assets/data/data.yaml
    imgsz: 320
    prune:   {target_flops: 0.5, criterion: taylor, round_to: 0}    # any `studio prune` option
    distill: {epochs: 10, kd: "response,feature,relation", w_relation: 0.5}   # any `studio distill` option
    qat:     {epochs: 3, bits: [16, 8], tune_teacher: false}       # any `studio qat` option; its teacher
                                                                    # is the float model itself unless qat.teacher
    export:  {platform: rk3588, ptq: [normal, kl_divergence], calib_count: 100}
    verify:  {limit: 300, split: val}                              # images for the simulator's mAP, and their split

Relative paths start at the recipe file's folder (above: a recipe in assets/recipes/), so a
recipe runs the same from any working folder. A section left out is a stage skipped (export and
verify always run); a section given with no options (`distill:`) runs with the defaults. Keys
are the option names of the matching command, with underscores (both come from
studio/core/compress/options.py); unknown keys are refused with the list of known ones and values are checked for their
type and range here, so that neither a typo nor a wrong value surfaces hours into a run.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path

from deploy.errors import UserError
from deploy.runtime.atomic import staged
from deploy.runtime.options import Options
from studio.core.compress.options import EXPORT, FINETUNE, IMGSZ, SECTIONS, VERIFY, terms

TOP = ("model", "teacher", "data", "imgsz", *SECTIONS)
PATH_KEYS = ("model", "teacher", "data")  # files, relative to the recipe's folder (and qat.teacher)
STAGES = ("finetune", "teacher", "prune", "distill", "qat", "export", "verify", "bundle")  # in running order
OPTIONAL = ("prune", "distill", "qat")  # run when the recipe has their section; the others always run
FITTING = ("finetune", "teacher")  # run when the model, or the teacher, does not detect the data's classes yet


def planned(stages) -> list[str]:
    """The stages a recipe runs, in order, given the optional and fitting ones it has."""
    present = set(stages)
    return [stage for stage in STAGES if stage not in OPTIONAL + FITTING or stage in present]


def distills(section: dict | None) -> bool:
    """Whether a distill section has teacher terms (`kd: none` fine-tunes on the labels alone)."""
    kd = (section or {}).get("kd")
    return kd is None or bool(terms(kd))


def plan_problem(raw: dict) -> str | None:
    """What makes a recipe mapping (sections present or not, paths as given) impossible to run, or None."""
    if raw.get("distill") is not None and not raw.get("teacher") and distills(raw["distill"]):
        return ("the distill stage needs a teacher: a .pt that detects the data's classes, or an architecture "
                "to train here first (teacher: yolov8s.yaml); or kd: none to fine-tune on the labels alone")
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
    finetune: dict = field(default_factory=lambda: _defaults(FINETUNE))
    fit_model: bool = False  # a finetune stage first: other classes than the data's, an architecture, or asked
    train_teacher: bool = False  # a teacher stage: the teacher is an architecture or knows other classes

    def seeded(self, seed: int) -> Recipe:
        """This recipe with the seed of its training stages (distill, qat) set: a rerun that shows the spread."""
        return replace(self, **{name: {**getattr(self, name), "seed": seed}
                                for name in ("distill", "qat") if getattr(self, name) is not None})

    def stages(self) -> list[str]:
        fitting = [name for name, needed in zip(FITTING, (self.fit_model, self.train_teacher)) if needed]
        return planned([s for s in OPTIONAL if getattr(self, s) is not None] + fitting)


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


def _anchor(value, path: Path) -> Path:
    """A path as a recipe gives it: relative ones start at the recipe file's folder, not the current one."""
    file = Path(str(value)).expanduser()
    return file if file.is_absolute() else path.parent / file


def _file(value, key: str, path: Path, required: bool) -> Path | None:
    if value is None:
        if required:
            raise UserError(f"{path}: '{key}' is required")
        return None
    file = _anchor(value, path)
    if not file.is_file():
        hint = " (the demo data: `studio assets --only data`)" if key == "data" else ""
        where = "" if Path(str(value)).is_absolute() else f" (relative paths start at the recipe's folder: {file})"
        raise UserError(f"{path}: {key} {value} does not exist{where}{hint}")
    return file


def _architecture_name(value, path: Path) -> bool:
    """A bare yaml name with no such file beside the recipe: one of ultralytics' architectures (yolov8s.yaml)."""
    return str(value).endswith((".yaml", ".yml")) and "/" not in str(value) and not _anchor(value, path).is_file()


def _model(value, key: str, path: Path, required: bool) -> Path | None:
    """A model file (relative to the recipe), or the name of an ultralytics architecture (yolov8n.yaml)."""
    if value is not None and _architecture_name(value, path):
        from studio.core.models import resolve_model_path

        try:
            resolve_model_path(str(value))
        except UserError as exc:
            raise UserError(f"{path}: {key} {exc}") from None
        return Path(str(value))
    return _file(value, key, path, required)


def anchored(raw: dict, path: Path) -> dict:
    """A copy of a recipe mapping read from `path` whose file paths are absolute, to be written elsewhere
    (a sweep's candidates) and still name the same files."""
    out = copy.deepcopy(raw)
    sections = [out, out.get("qat") if isinstance(out.get("qat"), dict) else {}]
    for section, key in [(sections[0], k) for k in PATH_KEYS] + [(sections[1], "teacher")]:
        if section.get(key) is not None and not _architecture_name(section[key], path):
            section[key] = str(_anchor(section[key], path).resolve())
    return out


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
    recipe = Recipe(path=path, model=_model(raw.get("model"), "model", path, True),
                    data=_file(raw.get("data"), "data", path, True),
                    teacher=_model(raw.get("teacher"), "teacher", path, False),
                    imgsz=IMGSZ.check(raw.get("imgsz", IMGSZ.default), str(path)),
                    prune=_section(raw, "prune", path), distill=_section(raw, "distill", path),
                    qat=_section(raw, "qat", path))
    recipe.export.update(_section(raw, "export", path) or {})
    recipe.verify.update(_section(raw, "verify", path) or {})
    recipe.finetune.update(_section(raw, "finetune", path) or {})
    _check(recipe)
    _plan_fitting(recipe, asked="finetune" in raw)
    return recipe


def _plan_fitting(recipe: Recipe, asked: bool) -> None:
    """Whether the model and the teacher must first learn the data's classes (the stages finetune, teacher)."""
    from studio.core.data.formats import read_yaml, yaml_names
    from studio.core.models import detects

    names = yaml_names(read_yaml(recipe.data), recipe.data)
    recipe.fit_model = asked or not detects(recipe.model, names)
    recipe.train_teacher = recipe.teacher is not None and not detects(recipe.teacher, names)


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
    _check_split(recipe)


def _check_split(recipe: Recipe) -> None:
    """The split verify scores must be in the data: found now, not after the training stages."""
    from studio.core.data.formats import read_yaml, split_dirs

    split = recipe.verify["split"]
    if split not in split_dirs(read_yaml(recipe.data), recipe.data):
        raise UserError(f"{recipe.path}: verify split {split}: {recipe.data} has no {split} split")


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
