"""Load and inspect detectors: ultralytics checkpoints (.pt), architectures (.yaml) and ONNX files.

A .pt file is a pickle, which can run code when loaded: the studio loads only files the
user named, and never fetches weights (this machine, a CI runner or a board may have no
network, and silently downloading weights would hide where a model came from).
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deploy.errors import UserError

TORCH_SUFFIXES = (".pt", ".pth")


@dataclass
class ModelInfo:
    """What `studio models inspect` reports; field names are the JSON keys."""

    path: str
    kind: str  # checkpoint | architecture | onnx
    task: str
    names: list[str]
    parameters: int
    gflops: float | None
    imgsz: int
    inputs: dict[str, list] = field(default_factory=dict)
    outputs: dict[str, list] = field(default_factory=dict)
    layout: str | None = None  # for ONNX: rknn-split | standard

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_model_path(name: str) -> Path:
    """A local model file, or the path of a bundled ultralytics architecture yaml; never a download."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    if path.suffix in (".yaml", ".yml") and path.parent == Path("."):
        bundled = bundled_architecture(path.name)
        if bundled is None:
            raise UserError(f"{name}: no such architecture file here or among ultralytics' bundled ones")
        return bundled
    if path.suffix in TORCH_SUFFIXES:
        raise UserError(
            f"{name}: no such file. Weights cannot be downloaded here; use a bundled model from assets/, "
            f"one you trained (studio train ...), or an architecture such as yolov8n.yaml"
        )
    raise UserError(f"{name}: no such file")


def bundled_architecture(name: str) -> Path | None:
    """The ultralytics yaml behind a name like yolov8n.yaml (scale letter dropped: yolov8.yaml), if bundled."""
    import re

    from ultralytics.utils.checks import check_yaml

    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", name)
    try:
        return Path(check_yaml(unified, hard=True))
    except FileNotFoundError:
        return None


def load_detector(name: str, nc: int | None = None):
    """Load a torch detection model from a .pt checkpoint or a .yaml architecture (built with `nc` classes when
    given, else the yaml's); returns (model, path)."""
    path = resolve_model_path(name)
    if path.suffix in (".yaml", ".yml"):
        # a bundled name keeps its scale letter (yolov8n.yaml), which the unified file name lacks
        return _build_from_yaml(name if not Path(name).is_file() else path, nc), path
    if path.suffix in TORCH_SUFFIXES:
        return _load_checkpoint(path), path
    raise UserError(f"{path}: expected an ultralytics checkpoint (.pt) or architecture (.yaml), got {path.suffix!r}")


def _build_from_yaml(path, nc: int | None = None):
    from ultralytics.nn.tasks import DetectionModel, OBBModel, guess_model_task, yaml_model_load

    try:
        with ultralytics_quiet():
            config = yaml_model_load(str(path))  # a dict: guessing from a bare name warns on stdout
            kind = OBBModel if guess_model_task(config) == "obb" else DetectionModel
            return kind(config, nc=nc, verbose=False).eval()
    except Exception as exc:
        raise UserError(f"{path}: not a usable ultralytics detection architecture ({exc})") from None


def _load_checkpoint(path: Path):
    """Unpickle an ultralytics checkpoint (this runs code from the file; the user chose it)."""
    import torch
    import ultralytics.nn.tasks  # noqa: F401  (the pickle refers to its classes)

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else ckpt
    if not isinstance(model, torch.nn.Module):
        raise UserError(f"{path}: holds no model (expected an ultralytics checkpoint with 'model' or 'ema')")
    model = model.float().eval()
    if getattr(model, "task", "detect") not in ("detect", "obb") and model.__class__.__name__ != "DetectionModel":
        raise UserError(f"{path}: a {getattr(model, 'task', '?')} model; the studio handles detection models "
                        "(upright or oriented boxes)")
    return model


def class_names(model) -> list[str]:
    """Class names of a torch detection model, in class-id order."""
    names = getattr(model, "names", None)
    nc = model.model[-1].nc
    if isinstance(names, dict):
        return [str(names.get(i, f"class{i}")) for i in range(nc)]
    if isinstance(names, (list, tuple)) and len(names) == nc:
        return [str(n) for n in names]
    return [f"class{i}" for i in range(nc)]


def detects(name, names: list[str]) -> bool:
    """Whether a model file already detects exactly `names` (an architecture never does: it is untrained)."""
    path = resolve_model_path(str(name))
    if path.suffix in (".yaml", ".yml"):
        return False
    return class_names(_load_checkpoint(path)) == names


@contextmanager
def ultralytics_quiet() -> Iterator[None]:
    """ultralytics' info lines held back (cache scans, "Overriding model.yaml nc=80 with nc=4"): the job's
    progress and the studio's own messages say what matters; its warnings still show."""
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)
    try:
        yield
    finally:
        LOGGER.setLevel(level)


def for_classes(model, names: list[str]):
    """The detector made for exactly `names`, and whether it had to be remade.

    A model of other classes (an 80-class COCO checkpoint on a 4-class dataset) keeps its architecture
    and every weight but the class outputs; rows of classes it already knows by name are carried over,
    the others start untrained, so it needs fine-tuning on the data. An architecture built from a yaml
    names its classes 0..n-1: it takes the data's names.
    """
    known = class_names(model)
    if known == names:
        return model, False
    placeholder = known == [str(i) for i in range(len(known))]
    if placeholder and len(known) == len(names):
        model.names = dict(enumerate(names))
        return model, False
    with ultralytics_quiet():
        remade = type(model)(copy.deepcopy(model.yaml), nc=len(names), verbose=False)  # an OBB model stays one
        remade.names = dict(enumerate(names))  # before load: class rows are matched by name
        remade.load(model, verbose=False)
    remade.names = dict(enumerate(names))
    return remade.eval(), True


def inspect_model(name: str, imgsz: int | None = None) -> ModelInfo:
    """Describe a detector: task, classes, parameters, GFLOPs at imgsz (default: the size it was trained or
    exported at), input and output shapes. An exported model has one size: another imgsz is refused."""
    if imgsz is not None and (imgsz <= 0 or imgsz % 32):
        raise UserError(f"--imgsz {imgsz} is not a positive multiple of 32 (the largest detection stride)")
    path = resolve_model_path(name)
    if path.suffix in (".rknn", ".onnx"):
        info = _inspect_rknn(path) if path.suffix == ".rknn" else _inspect_onnx(path)
        if imgsz is not None and imgsz != info.imgsz:
            raise UserError(f"--imgsz {imgsz}: {path.name} was exported for {info.imgsz} px and takes no other "
                            f"size; export it again with --imgsz {imgsz}")
        return info
    from studio.core.compress.yolo import trained_imgsz

    model, path = load_detector(name)
    return _inspect_torch(model, path, imgsz or trained_imgsz(model))


def _inspect_onnx(path: Path) -> ModelInfo:
    from deploy.convert.onnx_graph import describe_onnx

    return ModelInfo(**describe_onnx(path))


def _inspect_rknn(path: Path) -> ModelInfo:
    """An .rknn file is opaque here: describe it from its sidecar (and the ONNX it was built from)."""
    from deploy.runtime.metadata import build_onnx_path, read_model_meta

    meta = read_model_meta(path)
    params, gflops = 0, None
    try:
        from deploy.convert.onnx_graph import describe_onnx

        onnx_info = describe_onnx(build_onnx_path(path, meta))
        params, gflops = onnx_info["parameters"], onnx_info["gflops"]
    except (ValueError, UserError, FileNotFoundError):
        pass
    return ModelInfo(path=str(path), kind="rknn", task=meta.task, names=meta.names, parameters=params, gflops=gflops,
                     imgsz=meta.imgsz, inputs={"images": [1, meta.imgsz, meta.imgsz, 3]},
                     outputs={n: [] for n in meta.outputs}, layout=meta.layout)


def layer_table(model) -> list[dict]:
    """One row per ultralytics layer: index, inputs it reads, module type, parameters."""
    rows = []
    for i, layer in enumerate(getattr(model, "model", [])):
        kind = str(getattr(layer, "type", type(layer).__name__)).rsplit(".", 1)[-1]  # Conv, not ...modules.conv.Conv
        rows.append({"index": i, "from": getattr(layer, "f", -1), "type": kind,
                     "parameters": sum(p.numel() for p in layer.parameters())})
    return rows


def _inspect_torch(model, path: Path, imgsz: int) -> ModelInfo:
    import torch
    from ultralytics.utils.torch_utils import get_flops

    from deploy.convert.onnx_export import EXPORT_TASKS, detect_head, head_task

    task = head_task(detect_head(model, EXPORT_TASKS))
    dummy = torch.zeros(1, 3, imgsz, imgsz)
    with torch.no_grad():
        out = model(dummy)
    pred = out[0] if isinstance(out, (tuple, list)) else out
    gflops = get_flops(model, imgsz) or None
    return ModelInfo(
        path=str(path),
        kind="architecture" if path.suffix in (".yaml", ".yml") else "checkpoint",
        task=task,
        names=class_names(model),
        parameters=sum(p.numel() for p in model.parameters()),
        gflops=round(gflops, 3) if gflops else None,
        imgsz=imgsz,
        inputs={"images": [1, 3, imgsz, imgsz]},
        outputs={"output0": list(pred.shape)},
    )
