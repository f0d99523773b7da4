"""Runs rknn-toolkit2 in a child process: build, export, read int8 output grids, simulate.

    python -m deploy.convert.rknn_worker REQUEST.json

Why a child process: the toolkit prints to both stdout and stderr from Python and native
code, changes global logging, and its simulator runs only a model built in the same
process. In a child, all of its output lands in the log file, the parent can cancel it by
terminating it, and the build and the simulation stay in one process as they must.
The request and result are JSON files; simulated outputs are .npz files, one per image.
"""
import json
import os
import sys
from pathlib import Path

import numpy as np


def _check(ret, step):
    if ret != 0:
        raise RuntimeError(f"rknn-toolkit2 failed at {step} (code {ret})")


def _configured(req):
    """A fresh RKNN object configured and loaded with the request's ONNX."""
    from rknn.api import RKNN

    rknn = RKNN(verbose=req.get("verbose", True))
    _check(rknn.config(**req["config"]), "config")
    _check(rknn.load_onnx(model=req["onnx"]), "load_onnx")
    return rknn


def output_grids(req, outputs):
    """int8 scale/zero point per output from `<stem>.quantization.cfg`, which hybrid step 1 writes into the cwd."""
    from ruamel.yaml import YAML

    workdir = Path(req["workdir"])
    rknn = _configured(req)
    try:
        _check(rknn.hybrid_quantization_step1(dataset=req["dataset"]), "hybrid_quantization_step1")
    finally:
        rknn.release()
    cfg = workdir / f"{Path(req['onnx']).stem}.quantization.cfg"
    params = YAML(typ="safe").load(cfg.read_text())["quantize_parameters"]
    grids = []
    for name in outputs:
        entry = params[f"{name}_int8"]
        grids.append({"name": name, "dtype": "int8", "scale": float(entry["scale"][0]),
                      "zero_point": int(entry["zero_point"][0])})
    return grids


def run(req):
    rknn = _configured(req)
    quantize = req["quant"] == "int8"
    _check(rknn.build(do_quantization=quantize, dataset=req["dataset"] if quantize else None), "build")
    _check(rknn.export_rknn(req["rknn_out"]), "export_rknn")
    result = {"ok": True, "simulated": []}
    if req.get("simulate"):
        _check(rknn.init_runtime(), "init_runtime (simulator)")
        for i, npy in enumerate(req["simulate"]):
            nchw = np.load(npy)  # (1, 3, H, W) uint8 RGB, letterboxed
            outputs = rknn.inference(inputs=[np.ascontiguousarray(nchw.transpose(0, 2, 3, 1))], data_format="nhwc")
            if outputs is None:
                raise RuntimeError("the simulator returned no outputs")
            out = str(Path(req["sim_dir"]) / f"sim_{i:05d}.npz")
            np.savez(out, *[np.asarray(o, dtype=np.float32) for o in outputs])
            result["simulated"].append(out)
    rknn.release()
    if quantize:
        result["quantization"] = output_grids(req, req["outputs"])
    elif req["quant"] == "qdq":  # the grids the toolkit took from the QDQ graph, as written into the file
        from deploy.convert.rknn_file import output_grids as file_grids

        result["quantization"] = file_grids(Path(req["rknn_out"]), req["outputs"])
    return result


def main(argv):
    request_path = Path(argv[1])
    req = json.loads(request_path.read_text())
    os.chdir(req["workdir"])  # the toolkit writes check*.onnx and its quantization files into the cwd
    try:
        result = run(req)
    except Exception as exc:  # reported to the parent, which shows it as one line
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    Path(req["result"]).write_text(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
