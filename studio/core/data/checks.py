"""A dataset is checked before training or evaluation starts, so a bad label is one line naming it
instead of a long error from deep inside the trainer (and a run folder left behind).

The checks are those of `studio data stats` on the splits the work reads, without hashing every
image. Splits given as a list or a .txt of image paths are left to the trainer.
"""
from __future__ import annotations

from pathlib import Path

from deploy.errors import UserError
from studio.core.data.formats import read_yaml
from studio.core.data.stats import dataset_stats

SHOWN = 3  # problems named in the message; `studio data stats` lists them all


LABELS = {"detect": "upright boxes (class cx cy w h)", "obb": "oriented boxes (class and four corners)"}


def check_dataset(data: Path | None, splits: tuple[str, ...] = ("train", "val"), option: str = "--data",
                  task: str | None = None) -> str:
    """The kind of labels (detect, obb; "" when unknown) of a data.yaml whose `splits` hold no problem (and,
    given a model's `task`, labels of its kind), else a UserError naming the first ones."""
    if data is None or not Path(data).is_file():
        raise UserError(f"{option} {data}: no such data.yaml")
    data = Path(data)
    config = read_yaml(data)
    folders = tuple(s for s in splits if isinstance(config.get(s), str) and not config[s].endswith(".txt"))
    if not folders:
        return ""
    stats = dataset_stats(data, splits=folders, hashes=False)
    if stats.problems:
        more = f" and {stats.problems - SHOWN} more" if stats.problems > SHOWN else ""
        raise UserError(f"{data}: {stats.problems} problem(s): {'; '.join(stats.first_problems(SHOWN))}"
                        f"{more} (all: studio data stats {data})")
    if task is not None:
        check_kind(data, stats.task, task)
    return stats.task


def check_kind(data: Path, found: str, task: str) -> None:
    """One line when a model of `task` meets a dataset whose labels are of the other kind."""
    if found not in ("", task):
        raise UserError(f"{data} is labelled with {LABELS[found]}, but the model finds {LABELS[task]}: "
                        f"use a dataset of its kind (studio data synth --task {task}, or an import with --task {task})")
