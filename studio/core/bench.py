"""Benchmarks measured as ratios within one run (this machine is noisy; absolute ms vary)."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from deploy.errors import UserError
from deploy.runtime.postprocess import NmsConfig, postprocess_split
from deploy.runtime.reference import reference_split
from studio.core.heads import quantize_heads, synthetic_heads


def median_ms(fn: Callable[[], object], repeat: int, warmup: int = 3) -> float:
    """Median wall time of fn() in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


@dataclass
class PostprocessBench:
    nc: int
    imgsz: int
    objects: int
    int8: bool
    detections: int
    batched_ms: float  # median per frame
    reference_ms: float  # median per frame
    speedup: float
    identical: bool
    task: str = "detect"

    def to_dict(self) -> dict:
        return asdict(self)


def _same(a, b) -> bool:
    return all(
        np.array_equal(x.anchors, y.anchors) and np.array_equal(x.classes, y.classes)
        and np.array_equal(x.scores, y.scores) and np.allclose(x.boxes, y.boxes, atol=1e-3, rtol=0)
        and (x.rboxes is None or np.allclose(x.rboxes, y.rboxes, atol=1e-4, rtol=0))
        for x, y in zip(a, b)
    )


def bench_postprocess(nc: int = 80, imgsz: int = 512, objects: int = 30, repeat: int = 200,
                      int8: bool = False, seed: int = 0, task: str = "detect") -> PostprocessBench:
    """Batched vs reference post-processing on synthetic heads with a known number of objects (task obb:
    oriented heads, ultralytics' OBB thresholds conf 0.25 and IoU 0.7).

    The reference is timed on fewer repeats (it is slow); both are medians per frame.
    """
    if task == "obb":
        from deploy.runtime.postprocess_obb import postprocess_obb_split as batched_fn
        from deploy.runtime.reference_obb import reference_obb_split as reference_fn
        from studio.core.heads import quantize_obb_heads, synthetic_obb_heads

        heads = synthetic_obb_heads(nc=nc, imgsz=imgsz, objects=objects, seed=seed)
        heads = quantize_obb_heads(heads) if int8 else heads
        cfg = NmsConfig(conf=0.25, iou=0.7)
    elif task == "detect":
        batched_fn, reference_fn = postprocess_split, reference_split
        heads = synthetic_heads(nc=nc, imgsz=imgsz, objects=objects, seed=seed)
        heads = quantize_heads(heads) if int8 else heads
        cfg = NmsConfig()
    else:
        raise UserError(f"--task {task!r}: choose detect or obb")
    batched = batched_fn(heads.outputs, heads.strides, cfg, heads.quant)
    reference = reference_fn(heads.outputs, heads.strides, cfg, heads.quant)
    fast = median_ms(lambda: batched_fn(heads.outputs, heads.strides, cfg, heads.quant), repeat)
    slow = median_ms(lambda: reference_fn(heads.outputs, heads.strides, cfg, heads.quant),
                     max(3, repeat // 20), warmup=1)
    return PostprocessBench(nc, imgsz, objects, int8, len(batched[0]), round(fast, 4), round(slow, 3),
                            round(slow / fast, 1), _same(batched, reference), task)


HEAVY_MODULES = ("torch", "PySide6", "onnx", "onnxruntime", "rknn", "ultralytics", "cv2")
IMPORT_PROBE = """
import sys, time
start = time.perf_counter()
import deploy.runtime, deploy.runtime.postprocess, deploy.runtime.preprocess, deploy.runtime.metadata
elapsed = time.perf_counter() - start
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1].split(',')))
print(elapsed, ','.join(heavy))
"""


def bench_import(runs: int = 5) -> dict:
    """Median time to import the board runtime in a fresh interpreter, and heavy modules it loaded.

    cv2 is optional on the board and is imported when present, so it is reported but allowed.
    """
    import subprocess
    import sys

    times, heavy = [], set()
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", IMPORT_PROBE, ",".join(HEAVY_MODULES)],
                             capture_output=True, text=True, check=True).stdout.split()
        times.append(float(out[0]))
        heavy |= set(out[1].split(",")) if len(out) > 1 else set()
    return {"seconds": round(statistics.median(times), 4), "heavy_modules": sorted(heavy - {"cv2"}),
            "cv2_loaded": "cv2" in heavy, "runs": runs}


def bench_pipeline(model: str, workers: list[int], frames: int = 200, backend: str = "ort",
                   seed: int = 0) -> dict:
    """Frames per second and per-stage ms of the pipeline for each worker count, on the same frames.

    Frames are synthetic aerial images made in memory before timing, so reading costs nothing
    and the numbers measure preprocess + inference + post-processing.
    """
    from pathlib import Path

    from deploy.runtime.frame import Frame
    from deploy.runtime.metadata import read_model_meta
    from deploy.runtime.pipeline import LATENCY_KEYS
    from deploy.runtime.run_loop import RunLoop
    from studio.core.backend_factory import BackendPool
    from studio.core.data.synth import SynthConfig, render_image

    meta = read_model_meta(model)
    cfg = SynthConfig(Path("."), size=meta.imgsz, seed=seed)
    images = [render_image(cfg, i)[0][..., ::-1].copy() for i in range(min(frames, 16))]
    runs = []
    for n in workers:
        pool = BackendPool(backend, Path(model), n)
        loop = RunLoop(pool.factory(), meta, workers=n, close=pool.close)
        order = [d.frame for d in loop.results(Frame(images[i % len(images)], i, "synthetic") for i in range(frames))]
        stats = loop.stats.to_dict()
        runs.append({"workers": n, "fps": stats["fps"], "stage_ms": stats["stage_ms"],
                     **{k: stats[k] for k in LATENCY_KEYS}, "in_order": order == list(range(frames))})
    base = runs[0]["fps"] or 1.0
    for run in runs:
        run["speedup"] = round(run["fps"] / base, 2)
    return {"model": model, "backend": backend, "frames": frames, "runs": runs}


def bench_gui_startup(runs: int = 3) -> dict:
    """Seconds from launching `studio gui` to its window being shown (offscreen), median of runs.

    Measured from before the process starts, so interpreter and import time count.
    """
    import os
    import subprocess
    import sys
    import time

    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    times, inside = [], []
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "studio.cli", "gui", "--exit-after-show"], env=env,
                             capture_output=True, text=True, timeout=120)
        shown = [line for line in out.stdout.splitlines() if line.startswith("shown ")]
        if not shown:
            raise RuntimeError(f"the GUI did not report being shown: {out.stderr.strip()[-500:]}")
        times.append(time.perf_counter() - start)
        inside.append(float(shown[-1].split()[1]))
    return {"seconds": round(statistics.median(times), 3),
            "after_interpreter_start": round(statistics.median(inside), 3), "runs": runs,
            "platform": env["QT_QPA_PLATFORM"]}


def bench_merge(objects: int = 5000, tiles: int = 64, repeat: int = 5, task: str = "detect",
                reference: bool = True) -> dict:
    """Merging a planted dense scene's tiles into one result: time, and every object back exactly once.

    The reference, timed in the same run, is plain greedy NMS over the same tile detections
    (measuring every same-class pair, and joining no seams): what the merge costs beside it. It grows with
    the square of a class's boxes (minutes at 100,000 objects): reference=False leaves it out.
    For task obb the objects are turned (and rows of parked cars touch across seams); "exact"
    then means each planted object comes back once with rotated IoU >= 0.95, and nothing else.
    """
    from deploy.runtime.postprocess import greedy_nms
    from deploy.runtime.tiling import merge_scene
    from studio.core.dense_scene import plant, plant_rotated

    side = int(round(tiles ** 0.5))
    if side < 1 or side * side != tiles:
        raise UserError(f"--tiles {tiles}: expected a square number of tiles (a square scene), like 16 or 64")
    if objects < 1:
        raise UserError(f"--objects {objects}: expected at least 1")
    if task not in ("detect", "obb"):
        raise UserError(f"--task {task!r}: choose detect or obb")
    scene = plant_rotated(objects, side) if task == "obb" else plant(objects, side)
    cfg = NmsConfig(iou=0.7) if task == "obb" else NmsConfig()
    merged = merge_scene(scene.tiles, cfg)
    merge_ms = median_ms(lambda: merge_scene(scene.tiles, cfg), repeat, warmup=1)
    boxes = np.concatenate([d.boxes + np.array([*d.tile["offset"]] * 2, np.float32) for d in scene.tiles])
    scores = np.concatenate([d.scores for d in scene.tiles])
    classes = np.concatenate([d.classes for d in scene.tiles])
    order = np.argsort(-scores, kind="stable")
    plain = NmsConfig(max_det=len(boxes))
    nms_ms = median_ms(lambda: greedy_nms(boxes[order], classes[order], plain), max(1, repeat // 5),
                       warmup=0) if reference else None
    exact = _all_back_once(scene, merged) if task == "obb" else \
        {(tuple(b), int(c)) for b, c in zip(np.round(merged.boxes).tolist(), merged.classes.tolist())} == \
        {(tuple(b), int(c)) for b, c in zip(scene.boxes.tolist(), scene.classes.tolist())}
    return {"task": task, "objects_in": len(scene.classes), "tiles": tiles, "scene_px": scene.hw[0],
            "tile_detections": int(len(boxes)), "objects_out": len(merged), "exact": exact,
            "merge_ms": round(merge_ms, 2), "reference_nms_ms": round(nms_ms, 2) if nms_ms else None,
            "merge_vs_reference": round(merge_ms / nms_ms, 3) if nms_ms else None}


def _all_back_once(scene, merged) -> bool:
    """Each planted turned object matched by exactly one merged box of its class at rotated IoU >= 0.95."""
    from deploy.runtime.rotated import polygon_iou

    if len(merged) != len(scene.classes):
        return False
    iou = polygon_iou(scene.rboxes, merged.rboxes) * (scene.classes[:, None] == merged.classes[None])
    return bool(((iou >= 0.95).sum(1) == 1).all() and ((iou >= 0.95).sum(0) == 1).all())
