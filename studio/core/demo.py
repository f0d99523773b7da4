"""The main job on bundled defaults: the whole chain with short budgets, a pipeline run, and one report.

synthetic data -> prune -> distill -> QAT -> export (float ONNX, PTQ and QAT RKNN) ->
verify in rknn-toolkit2's simulator -> the runtime pipeline on this machine (1 and 2
workers) -> a tiled remote-sensing scene -> the bundled oriented-box student on a dense tiled
scene -> report.md / report.html beside the bundled
full-budget run. Budgets are cut so all of it fits in minutes on 2 CPU cores; the report
says so next to every figure. The chain is `studio compress` on a recipe the demo writes
(out/demo/recipe.yaml), so a run that was interrupted resumes where it stopped.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from deploy.errors import UserError
from deploy.runtime.output import cannot_write
from studio.core.compress.recipe import RECIPE_HEADER, refuse_other_run, write_run_recipe
from studio.core.jobs import Job

ASSETS = Path(__file__).resolve().parents[2] / "assets"
BUNDLED_STUDENT = ASSETS / "models" / "student.pt"
BUNDLED_TEACHER = ASSETS / "models" / "teacher.pt"
BUNDLED_REPORT = ASSETS / "reports" / "int8-recipe"
SAMPLE_SCENE = ASSETS / "samples" / "scene_000.jpg"
SAMPLE_FLIGHT = ASSETS / "samples" / "flight.avi"  # a simulated flight over that scene
BUNDLED_OBB_STUDENT = ASSETS / "models" / "student-obb.pt"
DENSE_SCENE = ASSETS / "samples" / "dense_scene.jpg"  # rows of parked cars, ships, planes: oriented boxes
SCENE_OVERLAP = 0.2
DEMO_HEADER = f"{RECIPE_HEADER}`studio demo`: the whole chain with short budgets\n"
DEMO_MARK = ".studio-demo"  # the folder is the demo's: it may replace data/ and chain/ there

# The chain's short budgets: about six minutes on 2 cores at 320 px (the full recipe takes hours).
SHORT_BUDGET = {
    "prune": {"target_flops": 0.7, "criterion": "taylor", "round_to": 16},  # distillation does the fine-tuning
    "distill": {"epochs": 3, "kd": "response,feature"},
    "qat": {"epochs": 1, "bits": [8], "kd": "response,feature", "calib_batches": 2},
    "export": {"ptq": ["normal"], "calib_count": 32},
}
PIPELINE_WORKERS = [1, 2]


@dataclass
class DemoRequest:
    out: Path = Path("out/demo")
    model: Path | None = None  # default: the bundled student
    teacher: Path | None = None  # default: the bundled teacher
    images: int = 300  # synthetic images: 70% train, 20% val (scored), 10% test
    imgsz: int = 320
    platform: str = "rk3588"
    pipeline_frames: int = 120
    seed: int = 0
    fresh: bool = False  # start the chain again instead of resuming it


@dataclass
class DemoResult:
    data: str
    recipe: str
    chain: dict  # the compress report
    pipeline: dict  # bench_pipeline's figures
    scene: dict | None
    obb_scene: dict | None  # the oriented-box student on the dense scene (None without them)
    report: str  # report.md
    html: str
    seconds: dict

    def to_dict(self) -> dict:
        return asdict(self)


def demo_recipe(req: DemoRequest, data_yaml: Path) -> dict:
    """The short-budget recipe as a dict, ready to be written as YAML and read back by load_recipe."""
    model = Path(req.model) if req.model else BUNDLED_STUDENT
    teacher = Path(req.teacher) if req.teacher else BUNDLED_TEACHER
    for path, flag in ((model, "--model"), (teacher, "--teacher")):
        if not path.is_file():
            raise UserError(f"{path}: no such checkpoint; run `studio assets` to rebuild the bundled models, "
                            f"or pass {flag}")
    val_images = max(1, round(req.images * 0.2))
    recipe = {"model": str(model.resolve()), "teacher": str(teacher.resolve()), "data": str(data_yaml.resolve()),
              "imgsz": req.imgsz}  # absolute: a recipe's relative paths start at its own folder
    for stage, options in SHORT_BUDGET.items():
        recipe[stage] = {**options, **({"val_limit": val_images} if stage != "export" else {})}
    recipe["export"] = {**recipe["export"], "platform": req.platform}
    recipe["verify"] = {"limit": val_images}
    return recipe


def _recipe_text(recipe: dict) -> str:
    return DEMO_HEADER + yaml.safe_dump(recipe, sort_keys=False)


def _is_demo_folder(out: Path) -> bool:
    recipe = out / "recipe.yaml"
    return (out / DEMO_MARK).is_file() or (recipe.is_file() and recipe.read_text().startswith(DEMO_HEADER))


def _claim(req: DemoRequest, text: str, chain: Path) -> None:
    """Before anything is written: a folder the demo did not make is refused (the demo replaces its data/
    and chain/); --fresh clears the demo's own data and run; otherwise a run made with other settings stops
    the demo here, its data untouched."""
    if req.out.is_dir() and any(req.out.iterdir()) and not _is_demo_folder(req.out):
        raise UserError(f"--out {req.out} holds files the demo did not write; give a new or empty folder "
                        "(the demo replaces its own data/ and chain/ there)")
    try:
        req.out.mkdir(parents=True, exist_ok=True)
        (req.out / DEMO_MARK).write_text("written by studio demo: this folder is the demo's\n")
    except OSError as exc:
        raise cannot_write(req.out, exc) from None
    if req.fresh:
        for folder in (chain, req.out / "data"):
            if folder.exists():
                shutil.rmtree(folder)
        return
    refuse_other_run(text, req.out / "recipe.yaml", chain, "add --fresh to start the demo again, or choose "
                                                             "another --out")


def run_demo(req: DemoRequest, job: Job | None = None) -> DemoResult:
    """Run everything; every artifact lands under req.out."""
    from studio.core.bench import bench_pipeline
    from studio.core.compress.chain import run_recipe
    from studio.core.data.synth import SynthConfig, generate
    from studio.core.demo_report import write_demo_report

    job = job or Job()
    if req.out.exists() and not req.out.is_dir():
        raise UserError(f"--out {req.out} is a file; give a folder")
    if req.imgsz <= 0 or req.imgsz % 32:
        raise UserError(f"--imgsz {req.imgsz} must be a positive multiple of 32 (the bundled models: 320)")
    chain_dir, data_yaml = req.out / "chain", req.out / "data" / "data.yaml"
    text = _recipe_text(demo_recipe(req, data_yaml))
    _claim(req, text, chain_dir)
    seconds: dict[str, float] = {}
    started = time.monotonic()
    job.stage("synthetic data", req.images)
    generate(SynthConfig(req.out / "data", images=req.images, size=req.imgsz, seed=req.seed, force=True),
             job.stepper("synthetic data"))
    seconds["data"] = time.monotonic() - started
    recipe_path = req.out / "recipe.yaml"
    recipe = write_run_recipe(text, recipe_path, chain_dir, "add --fresh to start the demo again")
    mark = time.monotonic()
    chain = run_recipe(recipe, chain_dir, resume=True, job=job)
    seconds["chain"] = time.monotonic() - mark
    float_onnx = next(Path(r["path"]) for r in chain["rows"] if r["variant"] == "float")
    job.stage("pipeline", None, f"{req.pipeline_frames} frames with {PIPELINE_WORKERS} workers")
    mark = time.monotonic()
    pipeline = bench_pipeline(str(float_onnx), PIPELINE_WORKERS, frames=req.pipeline_frames, seed=req.seed)
    seconds["pipeline"] = time.monotonic() - mark
    scene = _scene(float_onnx, req, job) if SAMPLE_SCENE.is_file() else None
    mark = time.monotonic()
    obb_scene = _obb_scene(req, job) if BUNDLED_OBB_STUDENT.is_file() and DENSE_SCENE.is_file() else None
    seconds["obb_scene"] = time.monotonic() - mark
    seconds["total"] = time.monotonic() - started
    seconds = {k: round(v, 1) for k, v in seconds.items()}
    md, html = write_demo_report(req.out, chain, pipeline, scene, seconds, recipe_path,
                                 BUNDLED_REPORT / "compress_report.json", obb_scene)
    return DemoResult(data=str(data_yaml), recipe=str(recipe_path), chain=chain, pipeline=pipeline, scene=scene,
                      obb_scene=obb_scene, report=str(md), html=str(html), seconds=seconds)


def _scene(model: Path, req: DemoRequest, job: Job) -> dict:
    """The bundled 2048-px scene cut into tiles, detections merged across them, saved as a picture."""
    return _tiled(model, SAMPLE_SCENE, req.out / "scene", req, job)


def _tiled(model: Path, scene: Path, folder: Path, req: DemoRequest, job: Job) -> dict:
    """`scene` in tiles of the demo's size on 2 workers, merged; the annotated picture saved in `folder` (the
    demo's own: replaced); the predict summary with the scene's size and the picture's path."""
    import cv2

    from studio.core.predict import PredictRequest, predict

    summary = predict(PredictRequest(model=model, source=str(scene), tile=req.imgsz, overlap=SCENE_OVERLAP,
                                     workers=2, save=folder, force=True), job=job)
    h, w = cv2.imread(str(scene)).shape[:2]
    return {**summary.to_dict(), "size": [w, h], "picture": str(folder / f"{scene.stem}_000000.jpg")}


def obb_student_onnx(out: Path) -> Path:
    """Where the demo exports the bundled oriented-box student (the remote-sensing window looks there too)."""
    return out / "exports" / "student-obb.onnx"


def _obb_scene(req: DemoRequest, job: Job) -> dict:
    """The bundled oriented-box student, exported once, over the dense scene in tiles; the picture saved."""
    from studio.core.export import ExportRequest, export_model

    onnx = obb_student_onnx(req.out)
    if not exported_from(onnx, BUNDLED_OBB_STUDENT):
        job.stage("export the oriented-box student")
        export_model(ExportRequest(model=str(BUNDLED_OBB_STUDENT), imgsz=req.imgsz, out=onnx, force=True), job)
    labels = DENSE_SCENE.with_suffix(".txt")
    return {**_tiled(onnx, DENSE_SCENE, req.out / "dense-scene", req, job), "model": str(onnx),
            "labelled": len(labels.read_text().splitlines()) if labels.is_file() else None,
            "epochs": epochs_trained(BUNDLED_OBB_STUDENT.with_suffix(".json"))}


def exported_from(onnx: Path, source: Path) -> bool:
    """Is `onnx` an export of `source` as it is now? (A bundled model updated by a pull is exported again.)"""
    from deploy.runtime.digest import sha256_of
    from deploy.runtime.metadata import sidecar_path

    sidecar = sidecar_path(onnx)
    if not (onnx.is_file() and sidecar.is_file()):
        return False
    made_from = (json.loads(sidecar.read_text()).get("provenance") or {}).get("source_sha256")
    return made_from == sha256_of(source)


def epochs_trained(card: Path) -> int:
    """The epochs a bundled model trained over all its stages, from its card (a stage that stopped once flat
    counts the epochs it ran, not its schedule's)."""
    stages = json.loads(card.read_text())["stages"]
    return sum((stage.get("convergence") or {}).get("epochs") or stage["epochs"] for stage in stages)
