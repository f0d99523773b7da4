"""Per-layer pruning sensitivity: accuracy when one layer group alone loses a share of its channels.

Layers whose accuracy falls fast deserve protection (`studio prune --protect`) or a
smaller share; flat curves mark where the compute can go. No fine-tuning happens here:
the scan measures raw damage, which ranks layers even though fine-tuning recovers much.
"""
from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch

from deploy.errors import UserError
from deploy.runtime.atomic import write_json_atomic
from studio.core.data.checks import check_dataset, check_kind
from studio.core.jobs import Job

RATIOS = (0.25, 0.5, 0.75)


def prunable_layers(model) -> list[int]:
    """Indices of ultralytics layers that own convolutions, the Detect head (its hidden convs) last."""
    return [i for i, layer in enumerate(model.model)
            if any(isinstance(m, torch.nn.Conv2d) for m in layer.modules())]


def scan(model_path: Path, data: Path, out: Path, criterion: str = "l1", ratios: tuple[float, ...] = RATIOS,
         imgsz: int | None = None, val_limit: int | None = 100, job: Job | None = None) -> dict:
    """mAP50-95 on the val split after pruning each layer group alone at each ratio; writes JSON and a PNG."""
    from studio.core.compress.c2f import split_c2f
    from studio.core.compress.channel_pruner import PruneTarget, prune_to
    from studio.core.compress.criteria import NEEDS_GRADIENTS, make_importance
    from studio.core.compress.loop import default_hyperparameters, save_checkpoint
    from studio.core.compress.yolo import head_output_convs, model_task, raw_head_outputs, trained_imgsz
    from studio.core.evaluate import EvalRequest, evaluate
    from studio.core.models import load_detector

    job = job or Job()
    if criterion in NEEDS_GRADIENTS:
        raise UserError(f"the sensitivity scan ranks channels without data gradients; use l1, l2, bn or energy, "
                        f"not {criterion}")
    labels = check_dataset(Path(data), ("val",))
    if any(not 0 < r < 1 for r in ratios):
        raise UserError(f"scan ratios must lie between 0 and 1, got {list(ratios)}")
    base, _ = load_detector(str(model_path))
    check_kind(Path(data), labels, model_task(base))
    imgsz = imgsz or trained_imgsz(base)
    hyp = default_hyperparameters(imgsz, model_task(base))
    split_c2f(base)
    example = torch.zeros(1, 3, imgsz, imgsz)
    layers = prunable_layers(base)
    job.stage("sensitivity scan", 1 + len(layers) * len(ratios), criterion)

    def measure(model) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.pt"
            save_checkpoint(model, path, hyp, -1)
            return evaluate(EvalRequest(model=path, data=Path(data), imgsz=imgsz, limit=val_limit)).map50_95

    baseline = measure(base)
    rows, done = [], 1
    for index in layers:
        curve = []
        for ratio in ratios:
            model = copy.deepcopy(base)
            others = [layer for i, layer in enumerate(model.model) if i != index]  # the head too, unless scanned
            prune_to(model, example, make_importance(criterion), PruneTarget("channels", 1 - ratio),
                     ignored=head_output_convs(model) + others, scope="layer", forward=raw_head_outputs)
            curve.append(round(measure(model), 4))
            done += 1
            job.step("sensitivity scan", done, 1 + len(layers) * len(ratios), f"layer {index} at {ratio:.0%}")
        kind = type(base.model[index]).__name__
        rows.append({"layer": index, "type": kind, "map50_95": curve,
                     "drop_at_max": round(baseline - curve[-1], 4)})
    result = {"model": str(model_path), "criterion": criterion, "imgsz": imgsz, "val_images": val_limit,
              "ratios": list(ratios), "baseline": baseline, "layers": rows}
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "sensitivity.json", result)
    _plot(result, out / "sensitivity.png")
    return result


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from studio.core.compress.report import save_figure

    fig, ax = plt.subplots(figsize=(8, 4.2))
    cmap = plt.get_cmap("viridis")
    layers = result["layers"]
    for k, row in enumerate(layers):
        ax.plot([0] + result["ratios"], [result["baseline"]] + row["map50_95"], marker="o", ms=3,
                color=cmap(k / max(len(layers) - 1, 1)), label=f"{row['layer']} {row['type']}")
    ax.set_xlabel("share of the layer's channels removed")
    ax.set_ylabel("val mAP50-95 (no fine-tuning)")
    ax.set_title(f"Pruning sensitivity per layer ({result['criterion']})")
    ax.legend(fontsize=6, ncol=2, loc="lower left")
    save_figure(fig, path)
