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
matching command, with underscores; unknown keys are refused with the list of known
ones and values are checked for their type here, so that neither a typo nor a wrong
type surfaces hours into a run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deploy.convert.rknn_convert import ALGORITHMS, PLATFORMS
from deploy.errors import UserError
from deploy.runtime.atomic import staged

_TOP = ("model", "teacher", "data", "imgsz", "prune", "distill", "qat", "export", "verify")
_PRUNE = ("target_flops", "target_params", "criterion", "scope", "protect", "steps", "schedule_k", "finetune_epochs",
          "sparsity_epochs", "bn_l1", "kd", "batch", "round_to", "val_limit")
KD_WEIGHTS = {"w_cls": "cls", "w_box": "box", "w_fg": "foreground", "w_bg": "background", "w_relation": "relation"}
_DISTILL = ("epochs", "kd", "temperature", *KD_WEIGHTS, "batch", "lr", "val_limit")
_QAT = ("epochs", "bits", "kd", "teacher", "temperature", *KD_WEIGHTS, "learn_scales", "tune_teacher", "tune_every",
        "calib_batches", "batch", "lr", "val_limit")
_EXPORT = ("platform", "ptq", "calib_count")
_VERIFY = ("limit",)


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
    export: dict = field(default_factory=lambda: {"platform": "rk3588", "ptq": ["normal", "kl_divergence"],
                                                  "calib_count": 100})
    verify: dict = field(default_factory=lambda: {"limit": None})

    def stages(self) -> list[str]:
        return [s for s in ("prune", "distill", "qat") if getattr(self, s) is not None] + ["export", "verify"]


_INTS = {"epochs", "steps", "finetune_epochs", "sparsity_epochs", "batch", "round_to", "val_limit", "calib_batches",
         "tune_every", "calib_count", "limit", "imgsz"}
_FLOATS = {"target_flops", "target_params", "schedule_k", "bn_l1", "temperature", "lr", *KD_WEIGHTS}
_BOOLS = {"learn_scales", "tune_teacher"}
_MAY_BE_EMPTY = {"val_limit", "limit", "teacher", "target_flops", "target_params", "protect"}  # None: the default
RECIPE_HEADER = "# written by "  # the first line of every recipe the studio writes (demo, wizard)


def _typed(key: str, value, where: str):
    """A recipe value as its option's type, or a UserError naming it."""
    if value is None and key not in _MAY_BE_EMPTY:
        raise UserError(f"{where}: {key} has no value")
    if key in KD_WEIGHTS and isinstance(value, (int, float)) and value < 0:
        raise UserError(f"{where}: {key} {value} must not be negative")
    try:
        if value is None or key not in _INTS | _FLOATS | _BOOLS | {"bits"}:
            return value
        if key in _BOOLS:
            if not isinstance(value, bool):
                raise ValueError
            return value
        if key == "bits":
            widths = [int(b) for b in (value.split(",") if isinstance(value, str) else
                                       value if isinstance(value, list) else [value])]
            if not widths or widths[-1] != 8 or any(not 2 <= b <= 16 for b in widths):
                raise UserError(f"{where}: bits {value!r} must be widths in 2..16 ending at 8, e.g. [16, 8]")
            return widths
        if isinstance(value, bool):
            raise ValueError
        if key in _INTS:
            number = float(value)
            if number != int(number):
                raise ValueError
            return int(number)
        return float(value)
    except (TypeError, ValueError):
        kind = "a whole number" if key in _INTS else "a number" if key in _FLOATS else "true or false"
        raise UserError(f"{where}: {key} {value!r} must be {kind}") from None


def _section(raw: dict, name: str, known: tuple[str, ...], path: Path) -> dict | None:
    if name not in raw:
        return None
    value = raw[name] if raw[name] is not None else {}  # `distill:` alone: the stage with its defaults
    if not isinstance(value, dict):
        raise UserError(f"{path}: '{name}' must be a mapping of options, e.g. {name}: {{{known[0]}: ...}}")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise UserError(f"{path}: unknown {name} option(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return {k: _typed(k, v, f"{path} {name}") for k, v in value.items()}


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
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping with model, data and stage sections")
    unknown = sorted(set(raw) - set(_TOP))
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(_TOP)}")
    recipe = Recipe(path=path, model=_file(raw.get("model"), "model", path, True),
                    data=_file(raw.get("data"), "data", path, True),
                    teacher=_file(raw.get("teacher"), "teacher", path, False),
                    imgsz=_typed("imgsz", raw.get("imgsz", 320), str(path)),
                    prune=_section(raw, "prune", _PRUNE, path), distill=_section(raw, "distill", _DISTILL, path),
                    qat=_section(raw, "qat", _QAT, path))
    export = _section(raw, "export", _EXPORT, path)
    if export:
        recipe.export.update(export)
    verify = _section(raw, "verify", _VERIFY, path)
    if verify:
        recipe.verify.update(verify)
    _check(recipe)
    return recipe


def _check(recipe: Recipe) -> None:
    where = recipe.path
    if recipe.imgsz <= 0 or recipe.imgsz % 32:
        raise UserError(f"{where}: imgsz {recipe.imgsz} must be a positive multiple of 32")
    if recipe.distill is not None and recipe.teacher is None:
        raise UserError(f"{where}: the distill stage needs a teacher")
    if recipe.export["platform"] not in PLATFORMS:
        raise UserError(f"{where}: export platform {recipe.export['platform']!r} is not one of {', '.join(PLATFORMS)}")
    ptq = recipe.export["ptq"]
    if not isinstance(ptq, list) or any(a not in ALGORITHMS for a in ptq):
        raise UserError(f"{where}: export ptq must be a list of {', '.join(ALGORITHMS)} (or [] for none)")
    if recipe.qat is None and not ptq:
        raise UserError(f"{where}: nothing to deploy: add a qat section or at least one export ptq algorithm")
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
