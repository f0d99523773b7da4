"""Runs rknn-toolkit2 in a child process: build, export, read int8 output grids, simulate, and the doctor.

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


def simulate(rknn, req, prefix="sim"):
    """Run the request's (1, 3, H, W) uint8 .npy inputs in the simulator; one .npz of outputs per image."""
    _check(rknn.init_runtime(), "init_runtime (simulator)")
    written = []
    for i, npy in enumerate(req["simulate"]):
        nchw = np.load(npy)  # letterboxed RGB
        outputs = rknn.inference(inputs=[np.ascontiguousarray(nchw.transpose(0, 2, 3, 1))], data_format="nhwc")
        if outputs is None:
            raise RuntimeError("the simulator returned no outputs")
        out = str(Path(req["sim_dir"]) / f"{prefix}_{i:05d}.npz")
        np.savez(out, *[np.asarray(o, dtype=np.float32) for o in outputs])
        written.append(out)
    return written


def doctor(req):
    """A hybrid build with the layers that lose most in int8 (by run()'s per-layer analysis) in float16."""
    from deploy.convert.doctor import layer_errors, mark_float16, worst_layers

    spec = req["doctor"]
    workdir = Path(req["workdir"])
    errors = layer_errors(workdir / "snapshot" / "error_analysis.txt")  # written by run()
    chosen = worst_layers(errors, spec["layers"], keep_int8=tuple(req["outputs"]))
    rknn = _configured(req)
    _check(rknn.hybrid_quantization_step1(dataset=req["dataset"]), "hybrid_quantization_step1")
    rknn.release()
    stem = Path(req["onnx"]).stem
    mark_float16(workdir / f"{stem}.quantization.cfg", [e.tensor for e in chosen])
    from rknn.api import RKNN

    rknn = RKNN(verbose=True)
    _check(rknn.hybrid_quantization_step2(model_input=str(workdir / f"{stem}.model"),
                                          data_input=str(workdir / f"{stem}.data"),
                                          model_quantization_cfg=str(workdir / f"{stem}.quantization.cfg")),
           "hybrid_quantization_step2")
    _check(rknn.export_rknn(spec["hybrid_out"]), "export_rknn (hybrid)")
    simulated = simulate(rknn, req, "hybrid") if req.get("simulate") else []
    rknn.release()
    from deploy.convert.rknn_file import output_grids as file_grids

    # None when the file records no scales (then the outputs keep the int8 build's grids: same calibration)
    return {"errors": [e.to_dict() for e in errors], "chosen": [e.tensor for e in chosen], "simulated": simulated,
            "quantization": file_grids(Path(spec["hybrid_out"]), req["outputs"])}


def run(req):
    rknn = _configured(req)
    quantize = req["quant"] == "int8"
    _check(rknn.build(do_quantization=quantize, dataset=req["dataset"] if quantize else None), "build")
    _check(rknn.export_rknn(req["rknn_out"]), "export_rknn")
    if req.get("doctor"):  # on the model just built, before the simulator takes it over
        _check(rknn.accuracy_analysis(inputs=req["doctor"]["inputs"],
                                      output_dir=str(Path(req["workdir"]) / "snapshot")), "accuracy_analysis")
    result = {"ok": True, "simulated": simulate(rknn, req) if req.get("simulate") else []}
    rknn.release()
    if quantize:
        result["quantization"] = output_grids(req, req["outputs"])
    elif req["quant"] == "qdq":  # the grids the toolkit took from the QDQ graph, as written into the file
        from deploy.convert.rknn_file import output_grids as file_grids

        result["quantization"] = file_grids(Path(req["rknn_out"]), req["outputs"])
    if req.get("doctor"):
        result["doctor"] = doctor(req)
    return result


def main(argv):
    request_path = Path(argv[1])
    req = json.loads(request_path.read_text())
    os.chdir(req["workdir"])  # the toolkit writes check*.onnx and its quantization files into the cwd
    try:
        result = run(req)
    except Exception as exc:  # reported to the parent as one line; the traceback goes to the log
        import traceback

        traceback.print_exc(file=sys.stdout)
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    Path(req["result"]).write_text(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
