"""`studio sweep`: many compression recipes at once as Ray tasks, ranked by accuracy and NPU cost.

    studio sweep --recipe assets/recipes/demo.yaml --grid prune.target_flops=0.3,0.5 --grid quant=ptq,qat

Each candidate is the base recipe with one combination of the grid's values, run by
`studio compress`'s chain in its own folder (candidates/<id>/) as a Ray task — on a local
Ray instance bound to 127.0.0.1 by default, on a cluster with --address. A candidate that
fails is recorded with its error and the others go on; a finished candidate is not run
again. Grid keys: `section.option` (any recipe option, e.g. prune.criterion, distill.epochs),
`section=on,off` to keep or drop a stage, and `quant=ptq,qat` (post-training int8 only, or QAT).
"""
from __future__ import annotations

import copy
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from deploy.errors import UserError
from deploy.runtime.output import claim_run
from studio.core.compress.recipe import TOP, anchored, load_recipe, recipe_from
from studio.core.jobs import Job

STAGES = ("prune", "distill", "qat")


@dataclass
class SweepRequest:
    recipe: Path
    grid: list[str]
    out: Path
    address: str | None = None  # a Ray cluster (ray://host:10001 or host:6379); None: a local instance
    workers: int = 2  # candidates at once on a local instance (one CPU each)
    target: float | None = None  # latency target T of the score; None: the median of the candidates
    weight: float = -0.07  # MnasNet's soft-constraint exponent w in ACC * (LAT / T) ** w
    resume: bool = False
    force: bool = False  # start over in an --out that holds an earlier sweep (deleted)


@dataclass
class Candidate:
    id: str
    overrides: dict
    recipe: dict = field(repr=False)


def _value(text: str):
    """A grid value as YAML would read it (0.5 -> float, 3 -> int, true -> bool, l1 -> str)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_grid(specs: list[str]) -> list[tuple[str, list]]:
    """['prune.target_flops=0.3,0.5', 'quant=ptq,qat'] -> [(key, values), ...], each checked."""
    axes = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise UserError(f"--grid {spec!r}: write KEY=V1,V2 (e.g. prune.target_flops=0.3,0.5)")
        options = [_value(v.strip()) for v in values.split(",") if v.strip()]
        section = key.split(".")[0]
        if key == "quant":
            if not set(options) <= {"ptq", "qat"}:
                raise UserError(f"--grid {spec!r}: quant takes ptq and/or qat")
        elif "." not in key and key in STAGES:
            if not set(options) <= {True, False, "on", "off"}:
                raise UserError(f"--grid {spec!r}: a stage takes on and/or off")
        elif section not in TOP or section in ("model", "data", "teacher") or key.count(".") > 1:
            raise UserError(f"--grid {spec!r}: {key} is not a recipe option (section.option, a stage=on,off, "
                            "or quant=ptq,qat)")
        axes.append((key, options))
    if not axes:
        raise UserError("give at least one --grid KEY=V1,V2")
    return axes


def _apply(recipe: dict, key: str, value) -> None:
    if key == "quant":
        if value == "ptq":
            recipe.pop("qat", None)
        else:
            recipe["qat"] = recipe.get("qat") or {}
    elif "." not in key and key in STAGES:
        if value in (True, "on"):
            recipe[key] = recipe.get(key) or {}
        else:
            recipe.pop(key, None)
    elif "." in key:
        section, option = key.split(".")
        recipe[section] = dict(recipe.get(section) or {}, **{option: value})
    else:
        recipe[key] = value


def candidates(base: dict, axes: list[tuple[str, list]]) -> list[Candidate]:
    """Every combination of the grid's values applied to the base recipe, with a readable id."""
    found = []
    for i, combo in enumerate(itertools.product(*(values for _, values in axes))):
        recipe = copy.deepcopy(base)
        overrides = {}
        for (key, _), value in zip(axes, combo):
            _apply(recipe, key, value)
            overrides[key] = value
        label = "_".join(f"{k.split('.')[-1]}-{v}" for k, v in overrides.items())
        found.append(Candidate(f"c{i:02d}-{label}"[:80], overrides, recipe))
    return found


def run_candidate(recipe: dict, folder: str) -> dict:
    """One candidate, in a Ray worker: write its recipe, run the chain (resuming), return its report."""
    import yaml

    from studio.core.compress.chain import run_recipe

    folder_path = Path(folder)
    folder_path.mkdir(parents=True, exist_ok=True)
    path = folder_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    run = folder_path / "run"
    return run_recipe(load_recipe(path), run, resume=run.exists())


def _start_ray(req: SweepRequest):
    try:
        import ray
    except ImportError:
        raise UserError("studio sweep runs on Ray: pip install 'ray>=2.50' (make venv installs it)") from None
    if req.address:
        ray.init(address=req.address, log_to_driver=False)
    else:  # a private instance on this machine, reachable from here only
        ray.init(num_cpus=req.workers, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    return ray


def run_sweep(req: SweepRequest, job: Job | None = None) -> dict:
    """Run every candidate not finished yet, collect all outcomes, write sweep_report.{json,md,png}."""
    import yaml

    from studio.core.compress.sweep_report import write_sweep_report

    job = job or Job()
    started = time.monotonic()
    load_recipe(req.recipe)  # the base must be a good recipe before anything starts
    base = anchored(yaml.safe_load(Path(req.recipe).read_text()), Path(req.recipe))  # candidates live elsewhere
    axes = parse_grid(req.grid)
    if req.workers < 1:
        raise UserError("--workers must be at least 1")
    if req.target is not None and req.target <= 0:
        raise UserError(f"--target {req.target}: a cost in Mcycles, above 0")
    out = Path(req.out)
    claim_run(out, req.resume, req.force, "sweep")
    todo = candidates(base, axes)
    for cand in todo:  # a misspelt key or a value out of range stops the sweep before Ray starts
        try:
            recipe_from(copy.deepcopy(cand.recipe), Path(req.recipe))
        except UserError as exc:
            raise UserError(f"candidate {cand.id}: {exc}") from None
    outcomes: dict[str, dict] = {}
    pending = []
    for cand in todo:
        report = out / "candidates" / cand.id / "run" / "compress_report.json"
        if report.is_file():
            outcomes[cand.id] = {"report": json.loads(report.read_text())}
        else:
            pending.append(cand)
    job.stage("sweep", len(todo), f"{len(pending)} candidate(s) to run")
    job.step("sweep", len(outcomes), len(todo))
    if pending:
        ray = _start_ray(req)
        waiting: list = []
        try:
            task = ray.remote(num_cpus=1, max_retries=0)(run_candidate)
            refs = {task.remote(c.recipe, str((out / "candidates" / c.id).resolve())): c for c in pending}
            waiting = list(refs)
            while waiting:
                job.cancel.check()
                done, waiting = ray.wait(waiting, num_returns=1, timeout=1.0)
                for ref in done:
                    cand = refs[ref]
                    try:
                        outcomes[cand.id] = {"report": ray.get(ref)}
                    except Exception as exc:  # the candidate's own failure, kept; the others go on
                        outcomes[cand.id] = {"error": _one_line(exc)}
                    verdict = "failed" if "error" in outcomes[cand.id] else "done"
                    job.step("sweep", len(outcomes), len(todo), f"{cand.id} {verdict}")
        finally:
            for ref in waiting:  # cancelled (or failed here): stop what still runs
                ray.cancel(ref, force=True)
            ray.shutdown()
    rows = [{"id": c.id, "overrides": c.overrides, **outcomes[c.id]} for c in todo]
    summary = {"recipe": str(req.recipe), "grid": [f"{k}={','.join(map(str, v))}" for k, v in axes],
               "ray": req.address or f"local, {req.workers} workers", "candidates": rows,
               "seconds_this_run": round(time.monotonic() - started, 1)}
    return write_sweep_report(summary, out, req.target, req.weight)


def _one_line(exc: Exception) -> str:
    """A Ray task error as the candidate's own message (the chain's UserError text, or the exception's)."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"

