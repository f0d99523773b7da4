"""Import datasets into the studio's one internal form: YOLO layout on disk plus a data.yaml.

    studio data import yolo  SRC/data.yaml          --out data/mine
    studio data import coco  instances_val.json     --images val2017/  --split val --out data/mine
    studio data import voc   VOC2012/Annotations    --images VOC2012/JPEGImages --out data/mine
    studio data import dota  train/labelTxt         --images train/images --out data/mine

Every reader yields (image path, [(class name, x0, y0, x1, y1, difficult[, corners])]) and one
writer turns that into images/<split>/, labels/<split>/ and data.yaml, with upright boxes
(--task detect) or oriented ones (--task obb: DOTA's and YOLO-OBB's four corners, in any order;
an upright box becomes an oriented box at angle 0). Difficult objects (VOC, DOTA) are kept in
the labels and listed in difficult.json, so evaluation can ignore them.
A malformed file is a UserError naming the file (and the line, where there is one).
"""
from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy.errors import UserError
from deploy.runtime.output import Output
from deploy.runtime.rotated import polygon_area
from studio.core.data.oriented import box_row, label_text, obb_row, oriented_corners
from studio.core.jobs import Job

FORMATS = ("yolo", "coco", "voc", "dota")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


TASKS = ("detect", "obb")
IMPORT_VISIBLE = 0.01  # an imported object is kept unless all but a sliver of it lies outside its image


@dataclass
class Sample:
    """One image and its objects in pixels: (name, x0, y0, x1, y1, difficult), plus the four corners
    [x1, y1, ..., x4, y4] for readers of oriented labels."""

    image: Path
    objects: list[tuple]


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception:
        raise UserError(f"{path}: not a readable image") from None


def read_yaml(path: Path) -> dict:
    from ruamel.yaml import YAML, YAMLError

    try:
        data = YAML(typ="safe").load(path.read_text())
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping with train/val folders and names")
    return data


def yaml_names(data: dict, path: Path) -> list[str]:
    names = data.get("names")
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names)]
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    raise UserError(f"{path}: has no class names (a 'names:' list or mapping)")


def split_dirs(data: dict, path: Path, splits=("train", "val", "test")) -> dict[str, Path]:
    """{split: images folder} of a data.yaml, relative paths resolved like ultralytics (or beside it)."""
    root = Path(data["path"]) if data.get("path") else path.parent
    root = root if root.is_absolute() or not data.get("path") else path.parent / root
    dirs = {}
    for split in splits:
        if data.get(split):
            folder = root / str(data[split])
            if not folder.is_dir():
                raise UserError(f"{path}: the {split} folder {folder} does not exist")
            dirs[split] = folder
    if not dirs:
        raise UserError(f"{path}: names no train, val or test folder")
    return dirs


def label_path(image: Path) -> Path:
    """YOLO convention: .../images/<split>/x.png -> .../labels/<split>/x.txt."""
    parts = list(image.parts)
    idx = len(parts) - 1 - parts[::-1].index("images") if "images" in parts else None
    if idx is None:
        return image.with_suffix(".txt")
    parts[idx] = "labels"
    return Path(*parts).with_suffix(".txt")


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


UPRIGHT, ORIENTED = "'class cx cy w h'", "'class x1 y1 x2 y2 x3 y3 x4 y4'"


def _label_row(path: Path, number: int, line: str, nc: int, kinds: tuple[int, ...]) -> tuple[int, list[float]]:
    """(class, coordinates) of one label line with a number of coordinates in `kinds` (4 upright, 8 oriented);
    a UserError names the file and line otherwise."""
    fields = line.split()
    expected = " or ".join(UPRIGHT if k == 4 else ORIENTED for k in kinds)
    try:
        cls, values = int(fields[0]), [float(v) for v in fields[1:]]
    except ValueError:
        raise UserError(f"{path}:{number}: expected {expected}, got {line.strip()!r}") from None
    if len(values) not in kinds:
        raise UserError(f"{path}:{number}: expected {expected}, got {line.strip()!r}")
    if not 0 <= cls < nc:
        raise UserError(f"{path}:{number}: class id {cls} is out of range (the dataset has {nc} classes)")
    return cls, values


def read_label_rows(path: Path, nc: int) -> list[tuple[int, list[float]]]:
    """Rows of a label file of either kind as (class, 4 upright or 8 oriented normalized coordinates)."""
    return _label_rows(path, nc, (4, 8))


def _label_rows(path: Path, nc: int, kinds: tuple[int, ...]) -> list[tuple[int, list[float]]]:
    return [_label_row(path, number, line, nc, kinds)
            for number, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]


def read_yolo_labels(path: Path, nc: int) -> list[tuple[int, float, float, float, float]]:
    """Rows of an upright YOLO label file as (class, cx, cy, w, h) normalized."""
    return [(cls, *values) for cls, values in _label_rows(path, nc, (4,))]


def read_obb_labels(path: Path, nc: int) -> list[tuple[int, list[float]]]:
    """Rows of a YOLO-OBB label file as (class, [x1, y1, ..., x4, y4] normalized)."""
    return _label_rows(path, nc, (8,))


def label_quads(path: Path, width: int, height: int, nc: int) -> list[tuple[int, list[float]]]:
    """Every row of a label file, upright or oriented, as (class, its four corners in pixels)."""
    return [(cls, quad_in_pixels(values, width, height)) for cls, values in read_label_rows(path, nc)]


def quad_in_pixels(values: list[float], width: int, height: int) -> list[float]:
    """[x1, y1, ..., x4, y4] pixels of a label's normalized coordinates: an upright box's corners, or the four."""
    if len(values) == 4:
        cx, cy, w, h = values
        x0, y0, x1, y1 = (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height
        return [x0, y0, x1, y0, x1, y1, x0, y1]
    return [c * (height if k % 2 else width) for k, c in enumerate(values)]


def labels_in_pixels(image: Path, width: int, height: int, nc: int) -> list[tuple[int, float, float, float, float]]:
    """The labels of an image as upright (class, x0, y0, x1, y1) pixels (around the corners of oriented ones);
    none when it has no label file."""
    lbl = label_path(image)
    quads = label_quads(lbl, width, height, nc) if lbl.is_file() else []
    return [(c, min(q[0::2]), min(q[1::2]), max(q[0::2]), max(q[1::2])) for c, q in quads]


def read_yolo(data_yaml: Path) -> tuple[list[str], dict[str, list[Sample]]]:
    data = read_yaml(data_yaml)
    names = yaml_names(data, data_yaml)
    splits = {}
    for split, folder in split_dirs(data, data_yaml).items():
        samples = []
        for image in images_in(folder):
            objects = []
            if label_path(image).is_file():
                w, h = image_size(image)
                for c, quad in label_quads(label_path(image), w, h, len(names)):
                    xs, ys = quad[0::2], quad[1::2]
                    objects.append((names[c], min(xs), min(ys), max(xs), max(ys), False, quad))
            samples.append(Sample(image, objects))
        splits[split] = samples
    return names, splits


def read_coco(annotations: Path, images: Path) -> tuple[list[str], list[Sample]]:
    try:
        data = json.loads(annotations.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{annotations}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= data.keys():
        raise UserError(f"{annotations}: a COCO file needs 'images', 'annotations' and 'categories'")
    try:
        categories = sorted(data["categories"], key=lambda c: c["id"])
        names = [str(c["name"]) for c in categories]
        by_id = {c["id"]: str(c["name"]) for c in categories}
        objects: dict[int, list] = {img["id"]: [] for img in data["images"]}
        for k, ann in enumerate(data["annotations"]):
            x, y, w, h = (float(v) for v in ann["bbox"])
            if ann["category_id"] not in by_id or ann["image_id"] not in objects:
                raise UserError(f"{annotations}: annotation #{k} refers to an unknown image or category")
            objects[ann["image_id"]].append((by_id[ann["category_id"]], x, y, x + w, y + h, bool(ann.get("iscrowd"))))
        samples = [Sample(images / img["file_name"], objects[img["id"]]) for img in data["images"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{annotations}: malformed COCO entry ({type(exc).__name__}: {exc})") from None
    return names, samples


def read_voc(annotations: Path, images: Path) -> tuple[list[str], list[Sample]]:
    samples = []
    for xml in sorted(annotations.glob("*.xml")):
        try:
            root = ET.parse(xml).getroot()
            filename = root.findtext("filename") or f"{xml.stem}.jpg"
            objects = []
            for obj in root.iter("object"):
                box = obj.find("bndbox")
                coords = [float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
                # VOC pixel indices are 1-based and inclusive: xmin=1 is the first column
                objects.append((obj.findtext("name").strip(), coords[0] - 1, coords[1] - 1, coords[2], coords[3],
                                obj.findtext("difficult", "0").strip() == "1"))
        except ET.ParseError as exc:
            raise UserError(f"{xml}:{exc.position[0]}: not valid XML ({exc})") from None
        except (AttributeError, TypeError, ValueError):
            raise UserError(f"{xml}: an <object> lacks a name or a numeric <bndbox>") from None
        samples.append(Sample(images / filename, objects))
    if not samples:
        raise UserError(f"{annotations}: holds no .xml annotation files")
    return sorted({o[0] for s in samples for o in s.objects}), samples


def read_dota(annotations: Path, images: Path) -> tuple[list[str], list[Sample]]:
    """DOTA labelTxt: 'x1 y1 ... x4 y4 category difficult' per object (the corners kept for oriented labels)."""
    samples = []
    for txt in sorted(annotations.glob("*.txt")):
        objects = []
        for number, line in enumerate(txt.read_text().splitlines(), 1):
            fields = line.split()
            if not fields or line.startswith(("imagesource", "gsd")):
                continue
            try:
                xy = [float(v) for v in fields[:8]]
                name, difficult = fields[8], fields[9] == "1" if len(fields) > 9 else False
            except (ValueError, IndexError):
                raise UserError(f"{txt}:{number}: expected 'x1 y1 x2 y2 x3 y3 x4 y4 category difficult'") from None
            xs, ys = xy[0::2], xy[1::2]
            objects.append((name, min(xs), min(ys), max(xs), max(ys), difficult, xy))
        match = next((p for p in (images / f"{txt.stem}{s}" for s in (".png", ".jpg", ".tif", ".bmp")) if p.exists()),
                     images / f"{txt.stem}.png")
        samples.append(Sample(match, objects))
    if not samples:
        raise UserError(f"{annotations}: holds no DOTA .txt label files")
    return sorted({o[0] for s in samples for o in s.objects}), samples


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_data_yaml(out: Path, names, splits, by: str) -> Path:
    """A data.yaml that ultralytics reads (paths relative to its own folder), saying which command wrote it."""
    lines = [f"# written by {by}"] + [f"{s}: images/{s}" for s in splits] + ["names:"]
    lines += [f"  {i}: {n}" for i, n in enumerate(names)]
    path = out / "data.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_yolo(out: Path, names: list[str], splits: dict[str, list[Sample]], by: str,
               job: Job | None = None, task: str = "detect") -> Path:
    """Write the internal form (images linked or copied, labels clipped to the image: upright boxes, or for
    task obb oriented ones) and data.yaml."""
    if not any(splits.values()):
        raise UserError("the dataset is empty: no images were found")
    job = job or Job()
    index = {n: i for i, n in enumerate(names)}
    difficult: dict[str, list[int]] = {}
    total, done = sum(map(len, splits.values())), 0
    job.stage("import", total)
    for split, samples in splits.items():
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        for sample in samples:
            done += 1
            job.step("import", done, total)
            if not sample.image.is_file():
                raise UserError(f"{sample.image}: image named by the annotations does not exist")
            w, h = image_size(sample.image)
            stem = sample.image.stem
            _link_or_copy(sample.image, out / "images" / split / sample.image.name)
            rows = []
            for name, x0, y0, x1, y1, hard, *corners in sample.objects:
                if name not in index:
                    raise UserError(f"{sample.image}: class {name!r} is not among the names {names}")
                row = _obb_row(index[name], corners, (x0, y0, x1, y1), w, h) if task == "obb" else \
                    _box_row(index[name], (x0, y0, x1, y1), w, h)
                if row is None:
                    continue
                if hard:
                    difficult.setdefault(f"{split}/{stem}", []).append(len(rows))
                rows.append(row)
            (out / "labels" / split / f"{stem}.txt").write_text(label_text(rows))
    if difficult:  # merged with the marks of splits carried over from an earlier import
        marks = out / "difficult.json"
        earlier = json.loads(marks.read_text()) if marks.is_file() else {}
        marks.write_text(json.dumps({**earlier, **difficult}, indent=1))
    return write_data_yaml(out, names, tuple(s for s in ("train", "val", "test", "scenes") if s in splits), by)


def _box_row(cls: int, box, w: int, h: int) -> list[float] | None:
    """An upright label clipped to the image, or None when less than a pixel of it remains."""
    x0, x1 = max(0.0, min(box[0], w)), max(0.0, min(box[2], w))
    y0, y1 = max(0.0, min(box[1], h)), max(0.0, min(box[3], h))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return box_row(cls, (x0, y0, x1, y1), 0, 0, w, h)


def _obb_row(cls: int, corners: list, box, w: int, h: int) -> list[float] | None:
    """An oriented label from four corners in any order (or an upright box), its part inside the image."""
    x0, y0, x1, y1 = box
    quad = np.reshape(corners[0], (4, 2)) if corners else np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    centre = quad.mean(0)
    quad = quad[np.argsort(np.arctan2(quad[:, 1] - centre[1], quad[:, 0] - centre[0]))]  # a simple polygon
    if polygon_area(quad) < 1:
        return None
    kept = oriented_corners(quad, 0, 0, w, h, min_visible=IMPORT_VISIBLE)
    return None if kept is None else obb_row(cls, kept, 0, 0, w, h)


def import_dataset(fmt: str, source: Path, out: Path, images: Path | None = None, split: str = "train",
                   force: bool = False, job: Job | None = None, task: str = "detect") -> Path:
    """Read `source` in `fmt` and write the internal form under `out`, whole or not at all; returns its data.yaml."""
    if fmt not in FORMATS:
        raise UserError(f"format {fmt!r} is not one of: {', '.join(FORMATS)}")
    if task not in TASKS:
        raise UserError(f"--task {task!r} is not one of: {', '.join(TASKS)}")
    if not source.exists():
        raise UserError(f"{source}: no such file or folder")
    if fmt == "yolo":
        yaml_path = source if source.is_file() else source / "data.yaml"
        names, splits = read_yolo(yaml_path)
        inputs = [yaml_path.parent, *(Path(s.image).parent for samples in splits.values() for s in samples[:1])]
    else:
        if images is None or not images.is_dir():
            raise UserError(f"--images: give the folder of images that {source.name} describes")
        reader = {"coco": read_coco, "voc": read_voc, "dota": read_dota}[fmt]
        names, samples = reader(source, images)
        splits, inputs = {split: samples}, [source, images]
    if fmt != "yolo" and split not in SPLIT_ORDER[:3]:
        raise UserError(f"--split {split!r} is not one of: {', '.join(SPLIT_ORDER[:3])}")
    by = f"studio data import {fmt}" + (" --task obb" if task == "obb" else "")
    base = _earlier_import(out) if fmt != "yolo" else None
    kept: list[str] = []
    if base is not None:  # a split joins the dataset an earlier import wrote; the others are carried over
        names, kept = _join(out, base, names, split, force, task)
    with Output(out, force=force or base is not None, inputs=inputs) as staging:
        _carry(out, staging, kept)
        write_yolo(staging, names, splits, by, job, task)
        if kept:
            write_data_yaml(staging, names, [s for s in SPLIT_ORDER if s in kept or s in splits], by)
    return out / "data.yaml"


SPLIT_ORDER = ("train", "val", "test", "scenes")


def _earlier_import(out: Path) -> tuple[list[str], list[str], str] | None:
    """(names, splits, task) of the dataset an earlier `data import` of COCO, VOC or DOTA wrote into `out`."""
    path = out / "data.yaml"
    first = path.read_text().split("\n", 1)[0] if path.is_file() else ""
    if not first.startswith("# written by studio data import "):
        return None
    data = read_yaml(path)
    return yaml_names(data, path), [s for s in SPLIT_ORDER if data.get(s)], \
        "obb" if first.endswith("--task obb") else "detect"


def _join(out: Path, base: tuple[list[str], list[str], str], names: list[str], split: str,
          force: bool, task: str) -> tuple[list[str], list[str]]:
    """The names to write with and the earlier splits to keep, or a UserError for a join that would lose data."""
    old_names, old_splits, old_task = base
    if task != old_task:
        raise UserError(f"{out} holds {old_task} labels; import this split with --task {old_task}, or into "
                        "another --out (upright and oriented labels cannot share a dataset)")
    if split in old_splits and not force:
        raise UserError(f"{out} already holds a {split} split; --force replaces that split only (the others are "
                        "kept), or choose another --out")
    extra = [n for n in names if n not in old_names]
    if extra:
        raise UserError(f"the {split} split has classes {extra} that {out} does not name ({old_names}); import "
                        "every split from one set of classes, or into another --out")
    return old_names, [s for s in old_splits if s != split]


def _carry(out: Path, staging: Path, kept: list[str]) -> None:
    """Link (or copy) the kept splits' images and labels, and their difficult marks, into the staging folder."""
    for split in kept:
        for sub in ("images", "labels"):
            source = out / sub / split
            (staging / sub / split).mkdir(parents=True, exist_ok=True)
            for path in sorted(source.iterdir()) if source.is_dir() else []:
                _link_or_copy(path, staging / sub / split / path.name)
    marks = out / "difficult.json"
    if kept and marks.is_file():
        carried = {k: v for k, v in json.loads(marks.read_text()).items() if k.split("/", 1)[0] in kept}
        if carried:
            (staging / "difficult.json").write_text(json.dumps(carried, indent=1))
