"""`studio data stats`: check a YOLO dataset and describe it, with histograms people can look at.

Problems it finds (each listed by file): label files without an image, images that cannot
be read, empty label files, corrupt label lines (not numbers, NaN or infinite, a class id
outside the names), repeated label lines, boxes outside the image or of zero size, a data.yaml
whose `nc` disagrees with its names, and duplicate images (same bytes). Training and evaluation
run the same checks, but for the image hashes, before they start (studio/core/data/checks.py).
It counts images per split, objects per class, object sizes in the COCO buckets (small < 32x32 px,
medium < 96x96, large) and aspect ratios; for oriented boxes (labels of four corners), their angles.
"""
from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from deploy.errors import UserError
from deploy.runtime.atomic import staged
from deploy.runtime.output import writing
from deploy.runtime.rotated import from_polygon, polygon_area
from studio.core.data.formats import image_size, images_in, label_path, read_yaml, split_dirs, yaml_names

SMALL, MEDIUM = 32**2, 96**2  # COCO area thresholds in pixels
ASPECT_BINS = (1, 1.5, 2, 3, 4, 6, np.inf)
ANGLE_BINS = tuple(range(0, 181, 15))


@dataclass
class DatasetStats:
    """The report; field names are the JSON keys."""

    data: str
    names: list[str]
    task: str = ""  # detect (cx cy w h labels) or obb (four corners); "" before any label is read
    images: dict[str, int] = field(default_factory=dict)  # per split
    objects_per_class: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # small / medium / large
    small_fraction: float = 0.0
    objects_per_image: float = 0.0
    aspect_ratios: dict[str, int] = field(default_factory=dict)  # long side / short side, binned
    angles: dict[str, int] = field(default_factory=dict)  # obb: angle of the long side, 15-degree bins
    missing_images: list[str] = field(default_factory=list)  # label files with no image
    unreadable_images: list[str] = field(default_factory=list)
    empty_labels: list[str] = field(default_factory=list)
    images_without_labels: list[str] = field(default_factory=list)
    corrupt_labels: list[str] = field(default_factory=list)  # file:line: reason
    out_of_range: list[str] = field(default_factory=list)  # file:line
    repeated_labels: list[str] = field(default_factory=list)  # file:line: the same object twice
    config: list[str] = field(default_factory=list)  # what is wrong in data.yaml itself
    duplicates: list[list[str]] = field(default_factory=list)  # groups of identical images
    plots: list[str] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return sum(len(v) for v in self._problem_lists())

    def first_problems(self, count: int = 3) -> list[str]:
        """The first `count` problems as one-line strings, in the order the lists are kept."""
        found = [", ".join(item) if isinstance(item, list) else item for group in self._problem_lists()
                 for item in group]
        return found[:count]

    def _problem_lists(self) -> tuple[list, ...]:
        return (self.config, self.missing_images, self.unreadable_images, self.corrupt_labels, self.out_of_range,
                self.repeated_labels, self.duplicates)

    def to_dict(self) -> dict:
        return {**asdict(self), "problems": self.problems}


def _parse_row(fields: list[str]) -> tuple[int, list[float]]:
    """(class, coordinates) of a label line with 4 (cx cy w h) or 8 (four corners) coordinates."""
    if len(fields) not in (5, 9):
        raise ValueError
    return int(fields[0]), [float(v) for v in fields[1:]]


def _in_image(values: list[float]) -> bool:
    """Whether a row's box (or oriented box) lies in the image and has a size."""
    if len(values) == 4:
        cx, cy, w, h = values
        return w > 0 and h > 0 and cx - w / 2 >= -1e-3 and cy - h / 2 >= -1e-3 and cx + w / 2 <= 1 + 1e-3 \
            and cy + h / 2 <= 1 + 1e-3
    return min(values) >= -1e-3 and max(values) <= 1 + 1e-3 and polygon_area(np.reshape(values, (4, 2))) > 0


def _shape(values: list[float], width: int, height: int) -> tuple[float, float, float | None]:
    """(area in pixels, long side / short side, angle in degrees in [0, 180) or None for upright boxes)."""
    if len(values) == 4:
        w, h = values[2] * width, values[3] * height
        return w * h, max(w, h) / max(min(w, h), 1e-9), None
    _, _, w, h, theta = from_polygon(np.reshape(values, (4, 2)) * [width, height])
    return w * h, w / max(h, 1e-9), float(np.degrees(theta) % 180)


def _check_label(path: Path, nc: int, stats: DatasetStats, width: int, height: int
                 ) -> list[tuple[int, float, float, float | None]]:
    """Valid rows of a label file as (class, area px, aspect, angle); problems are recorded, not raised."""
    rows, seen = [], {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            cls, values = _parse_row(fields)
        except ValueError:
            stats.corrupt_labels.append(f"{path}:{number}: expected 'class cx cy w h' or 'class x1 y1 ... x4 y4'")
            continue
        if not all(math.isfinite(v) for v in values):
            stats.corrupt_labels.append(f"{path}:{number}: a coordinate is not a finite number")
            continue
        if not 0 <= cls < nc:
            stats.corrupt_labels.append(f"{path}:{number}: class id {cls} out of range 0..{nc - 1}")
            continue
        kind = "obb" if len(values) == 8 else "detect"
        if stats.task not in ("", kind):
            stats.corrupt_labels.append(f"{path}:{number}: {len(values)} coordinates where the dataset's labels have "
                                        f"{12 - len(values)} (upright and oriented boxes cannot be mixed)")
            continue
        stats.task = kind
        if not _in_image(values):
            stats.out_of_range.append(f"{path}:{number}")
            continue
        key = (cls, *values)
        if key in seen:
            stats.repeated_labels.append(f"{path}:{number}: the same object as line {seen[key]}")
            continue
        seen[key] = number
        rows.append((cls, *_shape(values, width, height)))
    return rows


def _check_config(data: dict, names: list[str], data_yaml: Path, stats: DatasetStats) -> None:
    """nc, when given, must count the names; a names mapping must number them 0..n-1."""
    nc = data.get("nc")
    if nc is not None and nc != len(names):
        stats.config.append(f"{data_yaml}: nc is {nc} but {len(names)} class names are given")
    keys = data.get("names")
    if isinstance(keys, dict) and sorted(keys) != list(range(len(keys))):
        stats.config.append(f"{data_yaml}: the names mapping must number its classes 0..{len(keys) - 1}")


def dataset_stats(data_yaml: Path, plots_dir: Path | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  splits: tuple[str, ...] = ("train", "val", "test"), hashes: bool = True) -> DatasetStats:
    """Scan the splits of a data.yaml; write histogram PNGs into plots_dir when given. Without `hashes`
    no image is read whole (duplicate images go unnoticed), which keeps the check cheap on big datasets."""
    if not data_yaml.is_file():
        raise UserError(f"{data_yaml}: no such data.yaml")
    data = read_yaml(data_yaml)
    names = yaml_names(data, data_yaml)
    dirs = split_dirs(data, data_yaml, splits)
    stats = DatasetStats(str(data_yaml), names)
    _check_config(data, names, data_yaml, stats)
    scan = _Scan(stats, hashes)
    all_images = {split: images_in(folder) for split, folder in dirs.items()}
    total = sum(len(v) for v in all_images.values())
    if total == 0:
        raise UserError(f"{data_yaml}: the dataset is empty (no images in {', '.join(map(str, dirs.values()))})")
    done = 0
    for split, images in all_images.items():
        stats.images[split] = len(images)
        known = {label_path(p) for p in images}
        label_dir = label_path(dirs[split] / "x.png").parent
        stats.missing_images += [str(p) for p in sorted(label_dir.glob("*.txt")) if p not in known]
        for image in images:
            scan.image(image)
            done += 1
            if progress:
                progress(done, total)
    scan.finish()
    if plots_dir is not None:
        with writing(plots_dir):  # a read-only or full place is one line, not a traceback from matplotlib
            stats.plots = write_plots(plots_dir, stats, np.array(scan.areas), np.array(scan.per_image))
    return stats


class _Scan:
    """What the images and their labels add up to, one image at a time."""

    def __init__(self, stats: DatasetStats, hashes: bool):
        self.stats, self.hashes = stats, {} if hashes else None
        self.per_class, self.areas, self.per_image, self.aspects, self.angles = Counter(), [], [], [], []

    def image(self, image: Path) -> None:
        stats = self.stats
        if self.hashes is not None:
            self.hashes.setdefault(hashlib.sha1(image.read_bytes()).hexdigest(), []).append(str(image))
        try:
            width, height = image_size(image)
        except UserError:
            stats.unreadable_images.append(str(image))
            return
        lbl = label_path(image)
        if not lbl.is_file():
            stats.images_without_labels.append(str(image))
            self.per_image.append(0)
            return
        rows = _check_label(lbl, len(stats.names), stats, width, height)
        if not rows and not lbl.read_text().strip():
            stats.empty_labels.append(str(lbl))
        self.per_image.append(len(rows))
        for cls, area, aspect, angle in rows:
            self.per_class[stats.names[cls]] += 1
            self.areas.append(area)
            self.aspects.append(aspect)
            if angle is not None:
                self.angles.append(angle)

    def finish(self) -> None:
        stats, a = self.stats, np.array(self.areas)
        stats.duplicates = [group for group in (self.hashes or {}).values() if len(group) > 1]
        stats.objects_per_class = {n: self.per_class.get(n, 0) for n in stats.names}
        stats.sizes = {"small": int((a < SMALL).sum()), "medium": int(((a >= SMALL) & (a < MEDIUM)).sum()),
                       "large": int((a >= MEDIUM).sum())}
        stats.small_fraction = round(float((a < SMALL).mean()), 4) if a.size else 0.0
        stats.objects_per_image = round(float(np.mean(self.per_image)), 3) if self.per_image else 0.0
        counts, _ = np.histogram(self.aspects, ASPECT_BINS)
        stats.aspect_ratios = {_bin_name(ASPECT_BINS, k): int(n) for k, n in enumerate(counts)}
        if self.angles:
            counts, _ = np.histogram(self.angles, ANGLE_BINS)
            stats.angles = {_bin_name(ANGLE_BINS, k): int(n) for k, n in enumerate(counts)}


def _bin_name(edges, k: int) -> str:
    """'a-b' for the k-th bin, 'a+' for an open last bin."""
    return f"{edges[k]:g}+" if edges[k + 1] == np.inf else f"{edges[k]:g}-{edges[k + 1]:g}"


def write_plots(folder: Path, stats: DatasetStats, areas: np.ndarray, per_image: np.ndarray) -> list[str]:
    """PNGs: objects per class, object size (sqrt of area) with the COCO buckets, objects per image, aspect
    ratios, and for oriented boxes their angles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = []

    def save(fig, name: str) -> None:
        path = folder / name
        fig.tight_layout()
        with staged(path, ".png") as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)
        paths.append(str(path))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(list(stats.objects_per_class), list(stats.objects_per_class.values()), color="#3a7ca5")
    ax.set_title("Objects per class")
    ax.set_ylabel("objects")
    save(fig, "objects_per_class.png")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    side = np.sqrt(areas) if areas.size else np.zeros(1)
    ax.hist(side, bins=np.arange(0, max(130, side.max() + 4), 4), color="#81a864")
    for edge, label in ((32, "small | medium"), (96, "medium | large")):
        ax.axvline(edge, color="#c44", linestyle="--")
        ax.text(edge + 1, ax.get_ylim()[1] * 0.9, label, color="#c44", fontsize=8)
    ax.set_title(f"Object size: {stats.small_fraction:.0%} small (< 32x32 px)")
    ax.set_xlabel("sqrt(box area) in pixels")
    ax.set_ylabel("objects")
    save(fig, "object_sizes.png")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(per_image, bins=np.arange(0, (per_image.max() if per_image.size else 0) + 2) - 0.5, color="#d9a441")
    ax.set_title("Objects per image")
    ax.set_xlabel("objects")
    ax.set_ylabel("images")
    save(fig, "objects_per_image.png")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(list(stats.aspect_ratios), list(stats.aspect_ratios.values()), color="#8e6bb0")
    ax.set_title("Aspect ratio (long side / short side)")
    ax.set_ylabel("objects")
    save(fig, "aspect_ratios.png")
    if stats.angles:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar([float(k.split("-")[0]) + 7.5 for k in stats.angles], list(stats.angles.values()), width=14,
               color="#c47b3a")
        ax.set_xticks(ANGLE_BINS)
        ax.set_title("Angle of the long side (degrees)")
        ax.set_ylabel("objects")
        save(fig, "angles.png")
    return paths
