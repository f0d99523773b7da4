"""The `studio` command: every subcommand is a thin wrapper around one core function.

    studio models inspect yolov8n.yaml --imgsz 512
    studio export model.pt --format rknn --platform rk3588 --quant int8 --calib images/ --report
    studio data synth --out data/synth --images 200
    studio train yolov8n.yaml --data data/synth/data.yaml --epochs 10 --imgsz 320
    studio demo
"""
from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from deploy.errors import UserError
from studio.cli_support import handles_errors, print_json, run_job

app = typer.Typer(
    help="Edge Deploy Studio: take a YOLO detector from training to a Rockchip NPU board.\n\n"
    "Typical flow: data synth -> train -> export (ONNX + RKNN with a verification report).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
models_app = typer.Typer(help="Load and describe detectors (.pt, .yaml, .onnx).", no_args_is_help=True)
data_app = typer.Typer(help="Datasets: generate synthetic remote-sensing data.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks, as ratios measured in one run (--json for scripts).", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")
stdout = Console()


@models_app.command("inspect")
@handles_errors
def models_inspect(
    model: str = typer.Argument(..., help="A .pt checkpoint, a .yaml architecture (yolov8n.yaml) or a .onnx file."),
    imgsz: int = typer.Option(512, help="Input size for GFLOPs and output shapes."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Task, class names, parameters, GFLOPs and tensor shapes of a detector."""
    from studio.core.models import inspect_model

    info = inspect_model(model, imgsz)
    if json_out:
        print_json(info.to_dict())
        return
    table = Table(show_header=False, box=None)
    for key, value in info.to_dict().items():
        if key == "names":
            value = f"{len(value)}: {', '.join(value[:12])}{' ...' if len(value) > 12 else ''}"
        table.add_row(f"[bold]{key}[/]", str(value))
    stdout.print(table)


@app.command("export")
@handles_errors
def export(
    model: str = typer.Argument(..., help="A .pt or .yaml detector; or, for --format rknn, an rknn-split .onnx."),
    format: str = typer.Option("onnx", "--format", "-f", help="onnx | rknn"),
    layout: str = typer.Option("rknn-split", help="rknn-split (per-scale box + class outputs) | standard"),
    imgsz: int = typer.Option(512, help="Square input size, a multiple of 32."),
    out: Path | None = typer.Option(None, help="File to write (default exports/<model>.<format>)."),
    platform: str = typer.Option("rk3588", help="rk3588 | rk3576 | rk3568 | rk3566 | rk3562 | rv1106"),
    quant: str = typer.Option("int8", help="int8 (calibrated PTQ) | fp16 | qdq (keep an ONNX's QDQ scales)"),
    algorithm: str = typer.Option("normal", help="int8 calibration: normal | kl_divergence | mmse (slow)"),
    calib: Path | None = typer.Option(None, help="Folder of calibration images (needed for int8 and --report)."),
    calib_count: int = typer.Option(100, help="How many calibration images to use (0: all)."),
    report: bool = typer.Option(False, "--report", help="Compare ONNX Runtime and the RKNN simulator per output."),
    report_count: int = typer.Option(8, help="Images used by --report."),
    force: bool = typer.Option(False, "--force", help="Replace existing outputs."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show rknn-toolkit2's log live."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object with the written paths."),
):
    """Export to ONNX, or convert to RKNN for a Rockchip NPU (with sidecar JSON and a report).

    Examples:\n
      studio export best.pt --format onnx --imgsz 512\n
      studio export best.pt --format rknn --platform rk3588 --quant int8 --calib data/images/val --report\n
      studio export qat.onnx --format rknn --quant qdq
    """
    from deploy.convert.rknn_convert import RknnOptions
    from studio.core.export import ExportRequest, export_model

    req = ExportRequest(
        model=model, format=format, layout=layout, imgsz=imgsz, out=out,
        rknn=RknnOptions(platform=platform, quant=quant, algorithm=algorithm),
        calib=calib, calib_count=calib_count, report=report, report_count=report_count,
        force=force, verbose=verbose,
    )
    result = run_job(lambda job: export_model(req, job), json_out)
    if json_out:
        print_json(result.to_dict())
        return
    fields = {k: v for k, v in result.to_dict().items() if v is not None}
    width = max(map(len, fields))
    for key, value in fields.items():
        stdout.print(f"[bold]{key:>{width}}[/] {value}", highlight=False)


@data_app.command("synth")
@handles_errors
def data_synth(
    out: Path = typer.Option(..., help="Folder to write images/, labels/ and data.yaml into."),
    images: int = typer.Option(200, help="Number of images: 70% train, 20% val, 10% test."),
    size: int = typer.Option(320, help="Image side in pixels, a multiple of 32 (objects keep their pixel size)."),
    seed: int = typer.Option(0, help="Same seed, same bytes."),
    scenes: int = typer.Option(0, help="Also write this many large scenes (split 'scenes') for tiling."),
    scene_size: int = typer.Option(2048, help="Side of the large scenes in pixels."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Generate a synthetic remote-sensing dataset in YOLO layout: mostly small objects, clutter, water, roads.

    Classes: vehicle, storage-tank, plane, ship. Example:\n
      studio data synth --out data/synth --images 1500 --size 320 --scenes 3
    """
    from studio.core.data.synth import SynthConfig, generate

    cfg = SynthConfig(out=out, images=images, size=size, seed=seed, scenes=scenes, scene_size=scene_size)
    data_yaml = run_job(lambda job: generate(cfg, _stage(job, "synthetic data", images + scenes)), json_out)
    if json_out:
        print_json({"data": str(data_yaml), "images": images, "scenes": scenes, "size": size, "seed": seed})
    else:
        stdout.print(f"wrote {images} images and {scenes} scenes; train with: "
                     f"studio train yolov8n.yaml --data {data_yaml}", highlight=False)


@data_app.command("import")
@handles_errors
def data_import(
    fmt: str = typer.Argument(..., metavar="FORMAT", help="yolo | coco | voc | dota"),
    source: Path = typer.Argument(..., help="yolo: data.yaml; coco: the .json; voc: Annotations/; dota: labelTxt/"),
    out: Path = typer.Option(..., help="Folder for the dataset in the studio's form (YOLO layout + data.yaml)."),
    images: Path | None = typer.Option(None, help="Folder of the images (coco, voc, dota)."),
    split: str = typer.Option("train", help="Split to file the images under (coco, voc, dota)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Import a dataset: YOLO, COCO json, Pascal VOC xml or DOTA (oriented boxes become axis-aligned).

    Examples:\n
      studio data import coco annotations/instances_val.json --images val/ --split val --out data/mine\n
      studio data import dota train/labelTxt --images train/images --out data/dota
    """
    from studio.core.data.formats import import_dataset

    data_yaml = import_dataset(fmt, source, out, images, split)
    if json_out:
        print_json({"data": str(data_yaml)})
    else:
        stdout.print(f"wrote {data_yaml}; check it with: studio data stats {data_yaml}", highlight=False)


@data_app.command("stats")
@handles_errors
def data_stats(
    data: Path = typer.Argument(..., help="A data.yaml."),
    plots: Path | None = typer.Option(None, help="Folder for histogram PNGs (default: <data folder>/stats)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Check a dataset (missing, corrupt, out-of-range, duplicate) and count images, classes and object sizes."""
    from studio.core.data.stats import dataset_stats

    folder = plots or data.parent / "stats"
    stats = run_job(lambda job: dataset_stats(data, folder, _stage(job, "scan", 0)), json_out)
    if json_out:
        print_json(stats.to_dict())
        return
    stdout.print(f"images per split: {stats.images}; {stats.objects_per_image:.1f} objects per image", highlight=False)
    stdout.print(f"objects per class: {stats.objects_per_class}", highlight=False)
    stdout.print(f"sizes: {stats.sizes} ({stats.small_fraction:.0%} small)", highlight=False)
    for key in ("missing_images", "unreadable_images", "corrupt_labels", "out_of_range", "empty_labels",
                "images_without_labels", "duplicates"):
        items = getattr(stats, key)
        if items:
            stdout.print(f"{key.replace('_', ' ')}: {len(items)}, e.g. {items[0]}", highlight=False)
    stdout.print(f"{stats.problems} problem(s); plots in {folder}", highlight=False)


@data_app.command("tile")
@handles_errors
def data_tile(
    data: Path = typer.Argument(..., help="A data.yaml whose split holds large images."),
    out: Path = typer.Option(..., help="Folder for the tiled dataset."),
    split: str = typer.Option("scenes", help="Split with the large images."),
    size: int = typer.Option(512, help="Tile side in pixels."),
    overlap: float = typer.Option(0.2, help="Overlap between neighbouring tiles (fraction)."),
    min_area: float = typer.Option(0.5, help="Keep a cut object if this fraction of its area is in the tile."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Cut large images into overlapping tiles with clipped labels (for training on huge scenes)."""
    from studio.core.data.tile import TileRequest, tile_dataset

    req = TileRequest(data=data, out=out, split=split, size=size, overlap=overlap, min_area=min_area)
    data_yaml = run_job(lambda job: tile_dataset(req, _stage(job, "tile", 0)), json_out)
    if json_out:
        print_json({"data": str(data_yaml)})
    else:
        stdout.print(f"wrote {data_yaml}", highlight=False)


@app.command("train")
@handles_errors
def train_cmd(
    model: str = typer.Argument(..., help="An architecture (yolov8n.yaml) to train from scratch, or a .pt checkpoint."),
    data: Path = typer.Option(..., help="A data.yaml in YOLO layout (e.g. from studio data synth)."),
    epochs: int = typer.Option(10, help="Passes over the training split."),
    imgsz: int = typer.Option(320, help="Training image size."),
    batch: int = typer.Option(16, help="Images per step."),
    project: Path = typer.Option(Path("runs/train"), help="Folder for runs."),
    name: str = typer.Option("exp", help="Run name; weights go to PROJECT/NAME/weights/."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last.pt."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show ultralytics' own log."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Train a detector on the CPU with ultralytics; checkpoints every epoch, resumable."""
    from studio.core.train import TrainRequest, train

    req = TrainRequest(model=model, data=data, epochs=epochs, imgsz=imgsz, batch=batch, project=project,
                       name=name, resume=resume, verbose=verbose)
    result = run_job(lambda job: train(req, job), json_out)
    if json_out:
        print_json(result.to_dict())
    else:
        stdout.print(f"best weights: {result.best}  mAP50-95 {result.map50_95:.3f}  mAP50 {result.map50:.3f}")


@app.command("demo")
@handles_errors
def demo(
    out: Path = typer.Option(Path("out/demo"), help="Where data, exports and pictures go."),
    model: Path | None = typer.Option(None, help="A .pt to demonstrate (default: assets/models/student.pt)."),
    images: int = typer.Option(300, help="Synthetic images (calibration; training when nothing is bundled)."),
    imgsz: int = typer.Option(320, help="Export size (the bundled models were trained at 320)."),
    epochs: int = typer.Option(12, help="Training epochs when no model is bundled."),
    fresh: bool = typer.Option(False, "--fresh", help="Retrain the fallback model even if a finished run exists."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """The main job on bundled defaults: student -> ONNX + RKNN int8 (rk3588) + report -> tiled scene."""
    from studio.core.demo import DemoRequest, run_demo

    req = DemoRequest(out=out, model=model, images=images, imgsz=imgsz, epochs=epochs, fresh=fresh)
    result = run_job(lambda job: run_demo(req, job), json_out)
    if json_out:
        print_json(result.to_dict())
        return
    ex, md = result.export, result.model
    stdout.print(f"[bold]data[/]      {result.data}", highlight=False)
    if "map50_95" in md:
        stdout.print(f"[bold]model[/]     {md['best']}  (val mAP50-95 {md['map50_95']:.3f}, mAP50 {md['map50']:.3f})",
                     highlight=False)
    for key in ("onnx", "rknn", "metadata", "report", "log"):
        stdout.print(f"[bold]{key:<9}[/] {ex[key]}", highlight=False)
    if result.scene:
        stdout.print(f"[bold]scene[/]     {result.scene['saved']} ({result.scene['detections']} detections, "
                     f"tiled)", highlight=False)
    report_md = Path(ex["report"]).with_name(Path(ex["rknn"]).stem + ".report.md")
    stdout.print(report_md.read_text() if report_md.is_file() else "", highlight=False)


@app.command("assets")
@handles_errors
def assets_cmd(
    only: str | None = typer.Option(None, help="One step: data | student | teacher | bundle | samples"),
    epochs: int = typer.Option(60, help="Training epochs of each model."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Rebuild the bundled demo models, samples and video (hours on a CPU; every step resumes)."""
    from studio.core.assets import AssetsRequest, build_assets

    done = run_job(lambda job: build_assets(AssetsRequest(epochs=epochs, only=only), job), json_out)
    if json_out:
        print_json(done)
    else:
        for step, what in done.items():
            stdout.print(f"[bold]{step:<8}[/] {what}", highlight=False)


@bench_app.command("postprocess")
@handles_errors
def bench_postprocess_cmd(
    nc: int = typer.Option(80, help="Number of classes."),
    imgsz: int = typer.Option(512, help="Input size (anchors: (imgsz/8)^2 + (imgsz/16)^2 + (imgsz/32)^2)."),
    objects: int = typer.Option(30, help="Objects per frame in the synthetic heads."),
    repeat: int = typer.Option(200, help="Timed runs of the batched version (the reference gets 1/20)."),
    int8: bool = typer.Option(False, "--int8", help="Raw int8 outputs with scale and zero point, as the NPU gives."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Batched NumPy post-processing vs the straightforward reference: time per frame and agreement."""
    from studio.core.bench import bench_postprocess

    if imgsz % 32 or imgsz <= 0:
        raise UserError(f"--imgsz {imgsz} must be a positive multiple of 32")
    result = bench_postprocess(nc=nc, imgsz=imgsz, objects=objects, repeat=repeat, int8=int8)
    if json_out:
        print_json(result.to_dict())
    else:
        stdout.print(f"batched {result.batched_ms:.3f} ms/frame, reference {result.reference_ms:.2f} ms/frame: "
                     f"{result.speedup:.1f}x faster, identical detections: {result.identical} "
                     f"({result.detections} detections)", highlight=False)


@bench_app.command("pipeline")
@handles_errors
def bench_pipeline_cmd(
    model: Path = typer.Argument(..., help="An exported model with its sidecar (.onnx for ort, .rknn otherwise)."),
    workers: str = typer.Option("1,2", help="Worker counts to compare, comma-separated."),
    frames: int = typer.Option(200, help="Frames per run."),
    backend: str = typer.Option("ort", help="ort | rknn-sim | rknnlite"),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Frames per second of the inference pipeline for each worker count, and the speedup over the first."""
    from studio.core.bench import bench_pipeline

    try:
        counts = [int(w) for w in workers.split(",")]
    except ValueError:
        raise UserError(f"--workers {workers!r}: give comma-separated counts, e.g. 1,2,3") from None
    if not counts or min(counts) < 1:
        raise UserError("--workers counts must be at least 1")
    result = bench_pipeline(str(model), counts, frames, backend)
    if json_out:
        print_json(result)
        return
    for run in result["runs"]:
        stdout.print(f"{run['workers']} worker(s): {run['fps']:.1f} frames/s ({run['speedup']:.2f}x), "
                     f"stages ms {run['stage_ms']}, in order: {run['in_order']}", highlight=False)


@bench_app.command("import")
@handles_errors
def bench_import_cmd(json_out: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Time `import deploy.runtime` in a fresh interpreter, and list any heavy module it pulled in."""
    from studio.core.bench import bench_import

    result = bench_import()
    if json_out:
        print_json(result)
    else:
        stdout.print(f"import deploy.runtime: {result['seconds']:.3f} s; heavy modules loaded: "
                     f"{result['heavy_modules'] or 'none'}", highlight=False)


def _stage(job, name: str, total: int):
    """Announce a counted stage and return its (done, total) callback."""
    job.stage(name, total)
    return job.stepper(name)


@app.command("eval")
@handles_errors
def eval_cmd(
    model: Path = typer.Argument(..., help=".pt (torch), .onnx (ort) or .rknn (rknn-sim, needs its sidecar)."),
    data: Path = typer.Option(..., help="A data.yaml (YOLO layout)."),
    backend: str = typer.Option("torch", help="torch | ort | rknn-sim"),
    split: str = typer.Option("val", help="Which split to score."),
    imgsz: int | None = typer.Option(None, help="torch only: input size (default: the size it was trained at)."),
    conf: float = typer.Option(0.001, help="Minimum score kept (low, as for any mAP)."),
    iou: float = typer.Option(0.7, help="NMS IoU threshold."),
    workers: int = typer.Option(1, help="Pipeline workers."),
    limit: int | None = typer.Option(None, help="Only the first N images."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """COCO mAP50-95 and mAP50 (faster-coco-eval), AP per class and per object size, latency per stage.

    Examples:\n
      studio eval assets/models/student.pt --data data/synth/data.yaml\n
      studio eval exports/student.rknn --data data/synth/data.yaml --backend rknn-sim --json
    """
    from studio.core.evaluate import EvalRequest, evaluate

    req = EvalRequest(model=model, data=data, backend=backend, split=split, imgsz=imgsz, conf=conf, iou=iou,
                      workers=workers, limit=limit)
    result = run_job(lambda job: evaluate(req, job), json_out)
    if json_out:
        print_json(result.to_dict())
        return
    stdout.print(f"{result.backend} on {result.images} {result.split} images: mAP50-95 {result.map50_95:.4f}, "
                 f"mAP50 {result.map50:.4f}", highlight=False)
    stdout.print(f"per class: {result.per_class}", highlight=False)
    stdout.print(f"per size:  {result.per_size}", highlight=False)
    stdout.print(f"latency ms per image: {result.latency_ms}", highlight=False)


@app.command("predict")
@handles_errors
def predict_cmd(
    model: Path = typer.Argument(..., help="An exported model with its sidecar: .onnx (ort) or .rknn (rknn-sim)."),
    source: str = typer.Argument(..., help="Image, folder, glob (quote it), video file, or camera:N."),
    backend: str = typer.Option("ort", help="ort (host) | rknn-sim (host simulator) | rknnlite (board NPU)"),
    workers: int = typer.Option(1, help="Inference workers (on the RK3588: one per NPU core, up to 3)."),
    tile: int | None = typer.Option(None, help="Cut large images into tiles of this size (e.g. 512)."),
    overlap: float = typer.Option(0.2, help="Tile overlap fraction."),
    conf: float = typer.Option(0.25, help="Minimum class score."),
    iou: float = typer.Option(0.45, help="NMS IoU threshold."),
    max_det: int = typer.Option(300, help="Most detections per image."),
    save: Path | None = typer.Option(None, help="Folder for annotated images (video sources: annotated.avi)."),
    max_frames: int | None = typer.Option(None, help="Stop after this many frames (video, camera)."),
    json_out: bool = typer.Option(False, "--json", help="JSON lines: one object per frame, then a summary."),
):
    """Detect objects in images, video or a camera with the multithreaded pipeline.

    Examples:\n
      studio predict exports/student.onnx data/images/val --save out/pred\n
      studio predict exports/student.rknn scene.png --backend rknn-sim --tile 512 --overlap 0.2\n
      studio predict student.rknn camera:0 --backend rknnlite --workers 3 --json
    """
    from studio.core.predict import PredictRequest, json_lines_printer, predict

    req = PredictRequest(model=model, source=source, backend=backend, workers=workers, tile=tile, overlap=overlap,
                         conf=conf, iou=iou, max_det=max_det, save=save, max_frames=max_frames)
    on_result = None
    if json_out:
        from deploy.runtime.metadata import load_meta

        try:
            on_result = json_lines_printer(load_meta(model).names)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    summary = run_job(lambda job: predict(req, on_result, job), json_out)
    if json_out:
        print_json({"summary": summary.to_dict()}, one_line=True)
        return
    stdout.print(f"{summary.frames} frame(s), {summary.detections} detections, {summary.fps:.1f} frames/s, "
                 f"stages ms {summary.stage_ms}" + (f"; saved to {summary.saved}" if summary.saved else ""),
                 highlight=False)
    if summary.skipped:
        stdout.print(f"skipped {len(summary.skipped)} unreadable file(s)", highlight=False)


@app.command("gui")
def gui():
    """Open the desktop studio (not yet: it arrives with the GUI issue)."""
    stdout.print("The desktop studio is not built yet; use the commands listed by `studio --help`.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
