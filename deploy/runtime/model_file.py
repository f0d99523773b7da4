"""Is a model file the model its sidecar describes? Checked before any work starts, so a damaged,
truncated or mismatched file is one line instead of a traceback or, worse, results from another model.

An .rknn file must carry the toolkit's header and, when its sidecar records one (export does), the
same SHA-256. An .onnx file must load in ONNX Runtime and take the input size its sidecar names.
"""
from pathlib import Path

from deploy.errors import UserError
from deploy.runtime.digest import sha256_of

RKNN_MAGIC = b"RKNN"


def check_model_file(path, meta) -> None:
    """UserError unless `path` holds the model `meta` (its sidecar) describes."""
    path = Path(path)
    if path.suffix == ".rknn":
        _check_rknn(path, meta)
    elif path.suffix == ".onnx":
        _check_onnx(path, meta)


def _check_rknn(path: Path, meta) -> None:
    with open(path, "rb") as f:
        head = f.read(len(RKNN_MAGIC))
    if head != RKNN_MAGIC:
        raise UserError(f"{path}: not an RKNN model (it lacks the toolkit's RKNN header); export it again")
    if meta.sha256 and sha256_of(path) != meta.sha256:
        raise UserError(f"{path}: its bytes differ from the model its sidecar describes (the SHA-256 recorded "
                        "at export): a damaged or replaced file; copy it again or export again")


def _check_onnx(path: Path, meta) -> None:
    try:
        import onnxruntime as ort
    except ImportError:  # the ort backend says so when it is asked for
        return
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # parse, do not optimise
    try:
        inputs = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).get_inputs()
    except Exception as exc:  # ORT raises its own classes for files it cannot parse
        raise UserError(f"{path}: not a readable ONNX model ({type(exc).__name__}); export it again") from None
    dims = list(inputs[0].shape) if inputs else []
    size = dims[2:4] if len(dims) == 4 else []
    if any(isinstance(d, int) and d != meta.imgsz for d in size):
        shown = "x".join(str(d) for d in size)
        raise UserError(f"{path}: its input is {shown} px but its sidecar says imgsz {meta.imgsz}; the two "
                        "come from different exports: export again")
