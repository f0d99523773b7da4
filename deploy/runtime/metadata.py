"""The model sidecar: one JSON file beside every exported model that says how to run it.

Everything that consumes a model (runtime, evaluation, board agent, GUI) reads this
instead of guessing. Plain dataclasses and json so the board can read it too.
"""
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from deploy.errors import UserError
from deploy.runtime.atomic import write_json_atomic
from deploy.runtime.model_file import check_model_file

SCHEMA_VERSION = 1
LAYOUTS = ("rknn-split", "standard")
CLASS_SCORES = ("logits", "sigmoid")  # what rknn-split class outputs hold; logits first: the default


@dataclass
class Preprocess:
    """How pixels become the model input; the defaults are what the studio exports."""

    letterbox: bool = True  # keep aspect, pad with grey 114, centred
    pad_value: int = 114
    channel_order: str = "RGB"  # order the model expects
    mean: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # on 0..255 pixels
    std: list[float] = field(default_factory=lambda: [255.0, 255.0, 255.0])


@dataclass
class OutputQuant:
    """Quantization of one model output as the NPU produces it (real = (q - zero_point) * scale)."""

    name: str
    dtype: str  # "int8", "float16", "float32"
    scale: float = 1.0
    zero_point: int = 0


@dataclass
class BuildOptions:
    """What was passed to rknn-toolkit2, enough to rebuild the same model."""

    platform: str
    quant: str  # int8 | fp16 | qdq
    algorithm: Optional[str] = None  # normal | kl_divergence | mmse (int8 only)
    calibration: list[str] = field(default_factory=list)  # source images, in order
    onnx: str = ""  # the ONNX it was built from: a bare name when it lies beside the model


@dataclass
class ModelMeta:
    """The sidecar JSON of an exported model (schema SCHEMA_VERSION)."""

    format: str  # onnx | rknn
    names: list[str]
    imgsz: int
    layout: str  # rknn-split | standard
    outputs: list[str]  # output names in order
    task: str = "detect"  # what the outputs mean (deploy/runtime/heads.py); sidecars without it are detect
    class_scores: str = "sigmoid"  # rknn-split: what the class outputs hold, sigmoid | logits
    strides: list[int] = field(default_factory=list)
    reg_max: int = 16
    preprocess: Preprocess = field(default_factory=Preprocess)
    build: Optional[BuildOptions] = None
    quantization: list[OutputQuant] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""  # the model file's SHA-256 as export wrote it (.rknn), checked before it runs
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelMeta":
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"sidecar schema version {version!r} is not supported (this studio reads {SCHEMA_VERSION})"
            )
        data = dict(data)
        data["preprocess"] = Preprocess(**data.get("preprocess", {}))
        build = data.get("build")
        data["build"] = BuildOptions(**build) if build else None
        data["quantization"] = [OutputQuant(**q) for q in data.get("quantization", [])]
        return cls(**data)


def sidecar_path(model_path) -> Path:
    """The sidecar of `model.rknn` is `model.rknn.json` (an export writes model.onnx and model.rknn side by side)."""
    path = Path(model_path)
    return path.with_name(path.name + ".json")


def save_meta(model_path, meta: ModelMeta) -> Path:
    """Write the sidecar of `model_path` atomically and return its path."""
    path = sidecar_path(model_path)
    write_json_atomic(path, meta.to_dict())
    return path


def build_onnx_path(model_path, meta: ModelMeta) -> Path:
    """Where the ONNX an RKNN model was built from lies (a bare name is relative to the model's folder)."""
    if meta.build is None or not meta.build.onnx:
        raise ValueError(f"{model_path}: its sidecar does not record the ONNX it was built from")
    onnx = Path(meta.build.onnx)
    return onnx if onnx.is_absolute() else Path(model_path).parent / onnx


def read_model_meta(model_path) -> ModelMeta:
    """The sidecar of an exported model whose file is what the sidecar describes, or one line for the user
    (UserError): no model, a folder, no sidecar, another schema, a damaged or mismatched model file."""
    path = Path(model_path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; give the model file in it (an .onnx or .rknn beside its .json)")
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    try:
        meta = load_meta(path)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    check_model_file(path, meta)
    return meta


def load_meta(model_path) -> ModelMeta:
    """Read the sidecar of `model_path`; ValueError when it is missing or from another schema."""
    path = sidecar_path(model_path)
    if not path.is_file():
        raise ValueError(f"{path} is missing: every exported model needs its sidecar JSON")
    try:
        with open(path) as fh:
            data = json.load(fh)
    except ValueError as exc:  # not JSON, or not text
        raise ValueError(f"{path}: not a readable sidecar ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a sidecar (expected a JSON object)")
    try:
        return ModelMeta.from_dict(data)
    except TypeError as exc:  # a field this studio does not know, or one missing
        raise ValueError(f"{path}: not a sidecar this studio reads ({exc})") from None
