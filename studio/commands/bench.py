"""`studio bench`: speed measured as ratios within one run."""
from __future__ import annotations

from pathlib import Path

import typer

from deploy.errors import UserError
from studio.cli_support import handles_errors, print_json, stdout


@handles_errors
def bench_postprocess_cmd(
    nc: int = typer.Option(80, help="Number of classes."),
    imgsz: int = typer.Option(512, help="Input size (anchors: (imgsz/8)^2 + (imgsz/16)^2 + (imgsz/32)^2)."),
    objects: int = typer.Option(30, help="Objects per frame in the synthetic heads."),
    repeat: int = typer.Option(200, help="Timed runs of the batched version (the reference gets 1/20)."),
    int8: bool = typer.Option(False, "--int8", help="Raw int8 outputs with scale and zero point, as the NPU gives."),
    task: str = typer.Option("detect", help="detect: upright boxes; obb: oriented boxes (angle outputs, rotated "
                                            "Fast-NMS over probiou)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Batched NumPy post-processing vs the straightforward reference: time per frame and agreement.

    Examples:\n
      studio bench postprocess --objects 300 --json\n
      studio bench postprocess --task obb --nc 15 --objects 100 --json
    """
    from studio.core.bench import bench_postprocess

    if imgsz % 32 or imgsz <= 0:
        raise UserError(f"--imgsz {imgsz} must be a positive multiple of 32")
    result = bench_postprocess(nc=nc, imgsz=imgsz, objects=objects, repeat=repeat, int8=int8, task=task)
    if json_out:
        print_json(result.to_dict())
    else:
        stdout.print(f"batched {result.batched_ms:.3f} ms/frame, reference {result.reference_ms:.2f} ms/frame: "
                     f"{result.speedup:.1f}x faster, identical detections: {result.identical} "
                     f"({result.detections} detections)", highlight=False)


@handles_errors
def bench_pipeline_cmd(
    model: Path = typer.Argument(..., help="An exported model with its sidecar (.onnx for ort, .rknn otherwise)."),
    workers: str = typer.Option("1,2", help="Worker counts to compare, comma-separated."),
    frames: int = typer.Option(200, help="Frames per run."),
    backend: str = typer.Option("ort", help="ort | rknn-sim | rknnlite"),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Frames per second of the inference pipeline for each worker count, and the speedup over the first.

    Example: studio bench pipeline out/compress/bundle/float.onnx --workers 1,2,3
    """
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


@handles_errors
def bench_merge_cmd(
    objects: int = typer.Option(5000, help="Objects planted in the scene (12-36 px, with touching pairs on seams)."),
    tiles: int = typer.Option(64, help="Tiles of 512 px (20% overlap) the scene is cut into; a square number."),
    repeat: int = typer.Option(5, help="Timed merges (the median is reported)."),
    task: str = typer.Option("detect", help="detect: upright boxes; obb: turned objects, rows of parked cars "
                                            "touching across seams."),
    reference: bool = typer.Option(True, "--reference/--no-reference", help="Also time plain NMS over the same "
                                   "boxes (minutes at 100,000 objects)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Merging a dense tiled scene: ms per scene, objects in and out, beside plain NMS over the same boxes.

    Examples:\n
      studio bench merge --objects 5000 --tiles 64 --json\n
      studio bench merge --task obb --objects 2000 --tiles 64 --json\n
      studio bench merge --objects 100000 --tiles 3364 --no-reference --json   # a 24,000-px scene
    """
    from studio.core.bench import bench_merge

    result = bench_merge(objects, tiles, repeat, task, reference)
    if json_out:
        print_json(result)
    else:
        stdout.print(f"{result['objects_in']} objects over {tiles} tiles "
                     f"({result['tile_detections']} tile detections): merged in {result['merge_ms']:.1f} ms "
                     f"into {result['objects_out']} objects "
                     f"(exactly the planted ones: {result['exact']})" + (
                         f"; plain NMS over the same boxes {result['reference_nms_ms']:.1f} ms"
                         if result["reference_nms_ms"] is not None else ""), highlight=False)


@handles_errors
def bench_import_cmd(json_out: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Time `import deploy.runtime` in a fresh interpreter, and list any heavy module it pulled in.

    Example: studio bench import --json
    """
    from studio.core.bench import bench_import

    result = bench_import()
    if json_out:
        print_json(result)
    else:
        stdout.print(f"import deploy.runtime: {result['seconds']:.3f} s; heavy modules loaded: "
                     f"{result['heavy_modules'] or 'none'}", highlight=False)


@handles_errors
def bench_gui_startup_cmd(json_out: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Seconds from launching `studio gui` to the window being shown (goal: 2 s warm).

    Example: studio bench gui-startup --json
    """
    from studio.core.bench import bench_gui_startup

    result = bench_gui_startup()
    if json_out:
        print_json(result)
    else:
        stdout.print(f"window shown after {result['seconds']:.2f} s (median of {result['runs']})", highlight=False)


@handles_errors
def bench_why_obb_cmd(
    obb_model: Path = typer.Argument(..., help="An oriented-box model (.pt, .onnx or .rknn)."),
    detect_model: Path = typer.Argument(..., help="An upright model trained on the same images."),
    obb_data: Path = typer.Option(..., help="data.yaml with oriented labels (studio data synth --task obb)."),
    detect_data: Path = typer.Option(..., help="data.yaml of the same images with upright labels (--task detect)."),
    split: str = typer.Option("test", help="The held-back split both are evaluated on."),
    imgsz: int | None = typer.Option(None, help=".pt checkpoints: input size (default: the size each was trained at)."),
    iou: float = typer.Option(0.7, help="NMS IoU of both models (0.7: ultralytics' default; the vendor's demos use "
                              "0.45)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """What oriented boxes buy: recall (conf 0.25, IoU 0.5) of an OBB and an upright model on the same images,
    over all objects, over objects turned 20-70 degrees, and by crowding (the largest IoU of an object's upright
    box with a neighbour's: upright NMS can only delete objects crowded beyond its IoU).

    Example:\n
      studio bench why-obb obb.pt detect.pt --obb-data dense-obb/data.yaml --detect-data dense-detect/data.yaml
    """
    from studio.core.why_obb import why_obb

    result = why_obb(obb_model, detect_model, obb_data, detect_data, split, imgsz, iou=iou)
    if json_out:
        print_json(result)
        return
    for name in ("obb", "detect"):
        r = result[name]
        stdout.print(f"{name}: recall {r['recall']:.3f} ({r['recall_turned']} turned 20-70 degrees), "
                     f"mAP50-95 {r['map50_95']:.3f}", highlight=False)
    for row in result["crowding"]:
        lo, hi = row["upright_iou"]
        recalls = "  ".join(f"{name} {row[name]:.3f}" for name in ("obb", "detect") if row[name] is not None)
        stdout.print(f"crowding {lo:.1f}-{hi:.1f}: {row['objects']:6d} objects  {recalls}", highlight=False)
    stdout.print(f"{result['objects']} objects ({result['objects_turned']} turned); at NMS IoU {iou} oriented "
                 f"boxes find {result['recall_gain_points']:+.1f} points more", highlight=False)


@handles_errors
def bench_scene_cmd(
    model: Path = typer.Argument(..., help="An exported model with its sidecar (.onnx for ort, .rknn for rknn-sim)."),
    size: int = typer.Option(30000, help="Side of the square GeoTIFF the bench paints, in pixels (30000: 2.7 GB of "
                             "RGB, about 3,400 tiles of 640 px)."),
    tile: int = typer.Option(640, help="Tile size."),
    workers: int = typer.Option(2, help="Inference workers."),
    backend: str = typer.Option("ort", help="ort | rknn-sim"),
    band_rows: int = typer.Option(4, help="Tile rows of the reference band, run from memory and by windows."),
    compress: str = typer.Option("deflate", help="The painted GeoTIFF's compression: deflate | lzw | zstd | none "
                                 "(decoding costs CPU that inference on the same cores would use)."),
    keep: Path | None = typer.Option(None, help="Folder for the painted raster and results (default: a temporary "
                                     "folder, removed after); it needs about a third of the raw RGB size free."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """A scene bigger than memory, end to end: peak resident memory and tiles/s of `studio predict --tile
    --features` over a GeoTIFF the bench paints, and windowed against in-memory reading of the same tiles.

    Examples:\n
      studio bench scene exports/obb.onnx --json                # 30000 px: minutes to paint, longer to run\n
      studio bench scene exports/obb.onnx --size 4000 --json    # a quick look
    """
    from studio.cli_support import run_job
    from studio.core.bench_scene import bench_scene

    if size < tile or tile < 32 or workers < 1 or band_rows < 1:
        raise UserError("--size must be at least --tile (>= 32 px), --workers and --band-rows at least 1")
    if compress not in ("deflate", "lzw", "zstd", "none"):
        raise UserError(f"--compress {compress}: deflate, lzw, zstd or none")
    result = run_job(lambda job: bench_scene(model, size, tile, workers, backend, band_rows, keep, job, compress),
                     json_out)
    if json_out:
        print_json(result)
        return
    band = result["band"]
    stdout.print(f"{size} x {size} px ({result['raster_rgb_mb']:.0f} MB of RGB, {result['raster_mb']:.0f} MB on "
                 f"disk): {result['tiles']} tiles at {result['tiles_per_s']:.1f} tiles/s, {result['objects']} "
                 f"objects, merge {result['merge_ms']:.0f} ms, peak memory {result['peak_rss_mb']:.0f} MB",
                 highlight=False)
    stdout.print(f"reference band ({band['memory']['tiles']} tiles): {band['memory']['tiles_per_s']:.1f} tiles/s "
                 f"from memory, {band['windows']['tiles_per_s']:.1f} by windows "
                 f"({band['windows_vs_memory']:.2f}x)", highlight=False)
