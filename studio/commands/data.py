"""`studio data`: synthesize, import, check and tile datasets."""
from __future__ import annotations

from pathlib import Path

import typer

from studio.cli_support import handles_errors, print_json, run_job, stage, stdout


@handles_errors
def data_synth(
    out: Path = typer.Option(..., help="Folder to write images/, labels/ and data.yaml into."),
    images: int = typer.Option(200, help="Number of images: 70% train, 20% val, 10% test."),
    size: int = typer.Option(320, help="Image side in pixels, a multiple of 32 (objects keep their pixel size)."),
    seed: int = typer.Option(0, help="Same seed, same bytes."),
    scenes: int = typer.Option(0, help="Also write this many large scenes (split 'scenes') for tiling."),
    scene_size: int = typer.Option(2048, help="Side of the large scenes in pixels."),
    generator: str = typer.Option("sparse-1", help="sparse-1: scattered objects (the bundled models' data); "
                                                   "dense-1: rows of touching, rotated objects cut by the border."),
    task: str = typer.Option("detect", help="detect: axis-aligned boxes (class cx cy w h); obb: oriented boxes "
                                            "(class and four corners), for yolov8n-obb.yaml."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out (wholly; never mixed)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Generate a synthetic remote-sensing dataset in YOLO layout: mostly small objects, clutter, water, roads.

    Classes: vehicle, storage-tank, plane, ship. An object cut by the image border is labelled when at least
    half of it is inside (its oriented label is the smallest rectangle around the visible part). Examples:\n
      studio data synth --out data/synth --images 1500 --size 320 --scenes 3\n
      studio data synth --out data/dense-obb --generator dense-1 --task obb --images 800
    """
    from studio.core.data.synth import SynthConfig, generate

    cfg = SynthConfig(out=out, images=images, size=size, seed=seed, scenes=scenes, scene_size=scene_size,
                      force=force, generator=generator, task=task)
    data_yaml = run_job(lambda job: generate(cfg, stage(job, "synthetic data", images + scenes)), json_out)
    if json_out:
        print_json({"data": str(data_yaml), "images": images, "scenes": scenes, "size": size, "seed": seed,
                    "generator": generator, "task": task})
    else:
        arch = "yolov8n-obb.yaml" if task == "obb" else "yolov8n.yaml"
        stdout.print(f"wrote {images} images and {scenes} scenes; train with: "
                     f"studio train {arch} --data {data_yaml}", highlight=False)


@handles_errors
def data_import(
    fmt: str = typer.Argument(..., metavar="FORMAT", help="yolo | coco | voc | dota"),
    source: Path = typer.Argument(..., help="yolo: data.yaml; coco: the .json; voc: Annotations/; dota: labelTxt/"),
    out: Path = typer.Option(..., help="Folder for the dataset in the studio's form (YOLO layout + data.yaml)."),
    images: Path | None = typer.Option(None, help="Folder of the images (coco, voc, dota)."),
    split: str = typer.Option("train", help="Split to file the images under (coco, voc, dota); a split imported "
                                            "into an earlier import's --out joins its other splits."),
    task: str = typer.Option("detect", help="detect: upright boxes; obb: oriented boxes (DOTA's and YOLO-OBB's "
                                            "corners kept, for yolov8n-obb.yaml)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out (wholly; never mixed); in an "
                                                      "earlier import's --out, replace the --split only."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Import a dataset: YOLO (upright or oriented labels), COCO json, Pascal VOC xml or DOTA.

    DOTA's oriented boxes become upright ones unless --task obb keeps their angles (corners in any order;
    'difficult' is kept, and evaluation leaves those objects out). Examples:\n
      studio data import coco annotations/instances_train.json --images train/ --out data/mine\n
      studio data import coco annotations/instances_val.json --images val/ --split val --out data/mine\n
      studio data import dota train/labelTxt --images train/images --task obb --out data/dota
    """
    from studio.core.data.formats import import_dataset

    data_yaml = run_job(lambda job: import_dataset(fmt, source, out, images, split, force, job, task), json_out)
    if json_out:
        print_json({"data": str(data_yaml)})
    else:
        stdout.print(f"wrote {data_yaml}; check it with: studio data stats {data_yaml}", highlight=False)


@handles_errors
def data_stats(
    data: Path = typer.Argument(..., help="A data.yaml."),
    plots: Path | None = typer.Option(None, help="Folder for histogram PNGs (default: <data folder>/stats)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Check a dataset (missing, corrupt, out-of-range, repeated, duplicate labels) and count images, classes,
    object sizes and aspect ratios; for oriented boxes, their angles.

    Example: studio data stats data/mine/data.yaml --plots out/stats
    """
    from studio.core.data.stats import dataset_stats

    folder = plots or data.parent / "stats"
    stats = run_job(lambda job: dataset_stats(data, folder, stage(job, "scan", 0)), json_out)
    if json_out:
        print_json(stats.to_dict())
        return
    stdout.print(f"images per split: {stats.images}; {stats.objects_per_image:.1f} objects per image", highlight=False)
    stdout.print(f"objects per class: {stats.objects_per_class}", highlight=False)
    stdout.print(f"sizes: {stats.sizes} ({stats.small_fraction:.0%} small)", highlight=False)
    stdout.print(f"labels: {stats.task or 'none'}; aspect ratios: {stats.aspect_ratios}", highlight=False)
    if stats.angles:
        stdout.print(f"angles (degrees): {stats.angles}", highlight=False)
    for key in ("config", "missing_images", "unreadable_images", "corrupt_labels", "out_of_range",
                "repeated_labels", "empty_labels", "images_without_labels", "duplicates"):
        items = getattr(stats, key)
        if items:
            stdout.print(f"{key.replace('_', ' ')}: {len(items)}, e.g. {items[0]}", highlight=False)
    stdout.print(f"{stats.problems} problem(s); plots in {folder}", highlight=False)


@handles_errors
def data_tile(
    data: Path = typer.Argument(..., help="A data.yaml whose split holds large images."),
    out: Path = typer.Option(..., help="Folder for the tiled dataset."),
    split: str = typer.Option("scenes", help="Split with the large images."),
    size: int = typer.Option(512, help="Tile side in pixels."),
    overlap: float = typer.Option(0.2, help="Overlap between neighbouring tiles (fraction)."),
    min_area: float = typer.Option(0.5, help="Keep a cut object if this fraction of its area is in the tile."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out (wholly; never mixed)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Cut large images into overlapping tiles with clipped labels (for training on huge scenes).

    An object cut by a tile edge keeps a label when --min-area of it is inside: the box around its visible
    part, or for oriented labels the smallest turned rectangle around that part.

    Example: studio data tile data/scenes/data.yaml --out data/tiles --size 512 --overlap 0.2
    """
    from studio.core.data.tile import TileRequest, tile_dataset

    req = TileRequest(data=data, out=out, split=split, size=size, overlap=overlap, min_area=min_area, force=force)
    data_yaml = run_job(lambda job: tile_dataset(req, stage(job, "tile", 0)), json_out)
    if json_out:
        print_json({"data": str(data_yaml)})
    else:
        stdout.print(f"wrote {data_yaml}", highlight=False)
