"""`studio predict` and `studio eval`: run a model over sources and score it."""
from __future__ import annotations

from pathlib import Path

import typer

from deploy.errors import UserError
from studio.cli_support import handles_errors, print_json, run_job, stdout


@handles_errors
def eval_cmd(
    model: Path = typer.Argument(..., help=".pt (torch), .onnx (ort) or .rknn (rknn-sim, needs its sidecar)."),
    data: Path = typer.Option(..., help="A data.yaml (YOLO layout)."),
    backend: str = typer.Option("auto", help="auto (as the file type says) | torch | ort | rknn-sim"),
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
      studio eval out/compress/bundle/qat.rknn --data data/synth/data.yaml --json     # in the simulator
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


@handles_errors
def predict_cmd(
    model: Path = typer.Argument(..., help="An exported model with its sidecar: .onnx (ort) or .rknn (rknn-sim)."),
    source: str = typer.Argument(..., help="Image, folder, glob (quote it), video file, or camera:N."),
    backend: str | None = typer.Option(None, help="ort (host; the default) | rknn-sim (host simulator); with "
                                       "--board: rknnlite (the NPU; the default for .rknn) | ort (its CPU)"),
    workers: int = typer.Option(1, help="Inference workers (on the RK3588: one per NPU core, up to 3)."),
    tile: int | None = typer.Option(None, help="Cut large images into tiles of this size (e.g. 512)."),
    overlap: float = typer.Option(0.2, help="Tile overlap fraction."),
    conf: float = typer.Option(0.25, help="Minimum class score."),
    iou: float = typer.Option(0.45, help="NMS IoU threshold."),
    max_det: int = typer.Option(300, help="Most detections per image, or per tile with --tile (a merged scene "
                                "keeps every object)."),
    save: Path | None = typer.Option(None, help="Folder for annotated images (video sources: annotated.avi); "
                                     "it appears whole at the end."),
    bands: str | None = typer.Option(None, help="A raster's bands shown as RGB, 1-based (e.g. 4,3,2 for near-infrared "
                                     "false colour); default 1,2,3, one band as grey."),
    features: Path | None = typer.Option(None, help="Folder for map features per image: <name>.gpkg (the raster's "
                                         "CRS) and <name>.geojson (WGS84); pixel coordinates without a geotransform."),
    labels: Path | None = typer.Option(None, help="With --tile: folder for labels to re-train on: "
                                       "dota/<name>.txt per scene and the tiles as a YOLO dataset (data.yaml). They "
                                       "are the model's own detections: review them before training."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --save, --features or --labels folder "
                               "(wholly); with --tile, also drop an interrupted run's progress and start over."),
    resume: bool = typer.Option(False, "--resume", help="With --tile and --features, --labels or --save: continue "
                                "an interrupted run from the tiles it finished (same model and settings); the result "
                                "is what an uninterrupted run writes."),
    max_frames: int | None = typer.Option(None, help="Stop after this many frames (video, camera)."),
    board: str | None = typer.Option(None, help="Infer on this board (studio board add): this computer reads the "
                                     "source, sends its images or tiles in batches and merges what comes back; for "
                                     "a scene that lives on the board, studio board run."),
    trust: bool = typer.Option(False, "--trust", help="With --board: trust its host key if it is new."),
    ask_password: bool = typer.Option(False, "--ask-password", help="With --board: ask for the SSH password once "
                                      "(never stored); default: keys/agent."),
    json_out: bool = typer.Option(False, "--json", help="JSON lines: one object per frame, then a summary."),
):
    """Detect objects in images, video or a camera with the multithreaded pipeline.

    Examples:\n
      studio predict out/compress/bundle/qat.onnx data/images/val --save out/pred\n
      studio predict out/compress/bundle/qat.rknn scene.png --backend rknn-sim --tile 320 --overlap 0.2\n
      studio predict exports/best.onnx camera:0 --workers 2 --json      # (on a board: studio board run)\n
      studio predict exports/obb.onnx scene.tif --tile 640 --features out/map   # read by windows; QGIS opens out/map\n
      studio predict exports/obb.onnx scene.tif --tile 640 --features out/map --resume   # after Ctrl-C or a crash\n
      studio predict exports/obb.onnx scene.tif --tile 640 --labels out/mine   # training data: out/mine/data.yaml\n
      studio predict exports/obb.rknn scene.tif --tile 640 --board rock5b --workers 3 --features out/map
    """
    from studio.core.predict import PredictRequest, json_lines_printer, predict

    try:
        band_triple = tuple(int(b) for b in bands.split(",")) if bands else None
    except ValueError:
        raise UserError(f"--bands {bands!r}: three band numbers, e.g. 3,2,1") from None
    if band_triple is not None and len(band_triple) != 3:
        raise UserError(f"--bands {bands!r}: three band numbers, e.g. 3,2,1")
    if (trust or ask_password) and not board:
        raise UserError("--trust and --ask-password are for a run on a board: give --board too")
    if backend is None:
        backend = "rknnlite" if board and model.suffix == ".rknn" else "ort"
    req = PredictRequest(model=model, source=source, backend=backend, workers=workers, tile=tile, overlap=overlap,
                         conf=conf, iou=iou, max_det=max_det, save=save, max_frames=max_frames, force=force,
                         features=features, bands=band_triple, resume=resume, labels=labels, board=board)
    access = None
    if board:
        from studio.commands.board import board_access

        access = board_access(board, trust, ask_password)
    on_result = None
    if json_out:
        from deploy.runtime.metadata import read_model_meta

        on_result = json_lines_printer(read_model_meta(model).names)
    summary = run_job(lambda job: predict(req, on_result, job, access=access), json_out)
    if json_out:
        print_json({"summary": summary.to_dict()}, one_line=True)
        return
    stdout.print(f"{summary.frames} frame(s), {summary.detections} detections, {summary.fps:.1f} frames/s, "
                 f"stages ms {summary.stage_ms}" + (f"; saved to {summary.saved}" if summary.saved else ""),
                 highlight=False)
    for written in summary.features:
        stdout.print(f"{written['objects']} objects as map features: {written['geojson']}, {written['gpkg']} "
                     f"({written['coordinates']})", highlight=False)
    for written in summary.labels:
        stdout.print(f"{written['objects']} objects as labels of {written['tiles']} tiles: "
                     f"{written['folder']}/data.yaml", highlight=False)
    if summary.skipped:
        stdout.print(f"skipped {len(summary.skipped)} unreadable file(s)", highlight=False)
