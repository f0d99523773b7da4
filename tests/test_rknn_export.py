"""RKNN conversion with the real rknn-toolkit2: int8 with calibration and report, fp16, and QDQ."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from deploy.convert.calibration import list_images, prepare_calibration, read_rgb
from deploy.convert.onnx_export import export_onnx
from deploy.convert.onnx_graph import qdq_output_quant
from deploy.convert.verify import AGREEMENT_CFG
from deploy.runtime.backends import OrtBackend
from deploy.runtime.digest import sha256_of
from deploy.runtime.frame import Frame
from deploy.runtime.metadata import load_meta
from deploy.runtime.pipeline import detect
from tests.conftest import make_detector


@pytest.mark.slow  # builds RKNN
def test_int8_export_writes_model_sidecar_report_and_log(cli, detector_pt, calib_dir, tmp_path):
    out = tmp_path / "tiny.rknn"
    result = cli("export", detector_pt, "--format", "rknn", "--platform", "rk3588", "--quant", "int8",
                 "--imgsz", 128, "--calib", calib_dir, "--report", "--report-count", 3, "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"onnx", "rknn", "metadata", "report", "min_cosine", "seconds"} <= data.keys()
    for key in ("onnx", "rknn", "metadata", "report", "log"):
        assert Path(data[key]).is_file(), key
    assert Path(data["rknn"]).stat().st_size > 100_000
    assert (tmp_path / "tiny.report.md").read_text().startswith("# Conversion report")

    report = json.loads(Path(data["report"]).read_text())
    assert [o["name"] for o in report["outputs"]] == ["box0", "cls0", "box1", "cls1", "box2", "cls2"]
    assert len(report["images"]) == 3
    assert report["min_cosine"] == data["min_cosine"] == min(o["min_cosine"] for o in report["outputs"])
    det = report["detections"]
    # the reference side counts what the runtime itself finds on those images with ONNX Runtime
    backend, onnx_meta = OrtBackend(data["onnx"]), load_meta(Path(data["onnx"]))
    found = sum(len(detect(backend, onnx_meta, Frame(read_rgb(Path(p))), AGREEMENT_CFG)) for p in report["images"])
    assert det["reference"] == found > 10
    assert det["agreement"] > 0.9 and det["matched"] > 0.9 * det["reference"]  # int8 keeps the detections
    assert data["detection_agreement"] == det["agreement"]
    assert (f"reference {det['reference']}, converted {det['converted']}, matched {det['matched']}: "
            f"agreement **{det['agreement']:.3f}**") in (tmp_path / "tiny.report.md").read_text()
    box_cos = [o["min_cosine"] for o in report["outputs"] if o["name"].startswith("box")]
    assert min(box_cos) > 0.95  # box distributions survive int8 even untrained

    meta = json.loads(Path(data["metadata"]).read_text())
    assert meta["format"] == "rknn" and meta["imgsz"] == 128
    assert meta["sha256"] == sha256_of(Path(data["rknn"]))  # what predict, eval and the board check it against
    assert meta["build"]["platform"] == "rk3588" and meta["build"]["quant"] == "int8"
    assert meta["build"]["onnx"] == "tiny.onnx"  # beside the model, so recorded by name
    assert meta["build"]["algorithm"] == "normal" and len(meta["build"]["calibration"]) == 4
    quant = meta["quantization"]
    assert [q["name"] for q in quant] == meta["outputs"]
    assert all(q["dtype"] == "int8" and q["scale"] > 0 and -128 <= q["zero_point"] <= 127 for q in quant)
    assert meta["class_scores"] == "logits"
    cls_q = [q for q in quant if q["name"].startswith("cls")]
    assert all(q["scale"] > 1 / 255 for q in cls_q)  # logits span more than [0, 1]
    assert min(o["min_cosine"] for o in report["outputs"]) == report["min_cosine"] > 0.9


@pytest.mark.slow  # builds RKNN
def test_sigmoid_scores_quantize_within_zero_and_one(cli, detector_pt, calib_dir, tmp_path):
    out = tmp_path / "sig.rknn"
    result = cli("export", detector_pt, "--format", "rknn", "--scores", "sigmoid", "--imgsz", 96,
                 "--calib", calib_dir, "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    meta = json.loads((tmp_path / "sig.rknn.json").read_text())
    assert meta["class_scores"] == "sigmoid"
    cls_q = [q for q in meta["quantization"] if q["name"].startswith("cls")]
    assert all(q["scale"] <= 1 / 255 + 1e-9 for q in cls_q)  # sigmoid outputs live in [0, 1]


@pytest.mark.slow  # builds RKNN
def test_fp16_export_records_float_outputs(cli, detector_pt, calib_dir, tmp_path):
    out = tmp_path / "fp16.rknn"
    result = cli("export", detector_pt, "--format", "rknn", "--quant", "fp16", "--imgsz", 128,
                 "--calib", calib_dir, "--report", "--report-count", 2, "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["min_cosine"] > 0.99  # fp16 keeps everything, class scores included
    meta = json.loads(Path(data["metadata"]).read_text())
    assert {q["dtype"] for q in meta["quantization"]} == {"float16"}
    assert meta["build"]["calibration"] == []


def _qdq_onnx(tmp_path: Path) -> Path:
    """A QDQ ONNX made the way a user would: onnxruntime's quantize_static on the split export."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    float_path, qdq_path = tmp_path / "float.onnx", tmp_path / "qdq.onnx"
    export_onnx(make_detector(), float_path, 128, "rknn-split")

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.batches = iter([{"images": rng.random((1, 3, 128, 128), dtype=np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(float_path), str(qdq_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return qdq_path


@pytest.mark.slow  # builds RKNN
def test_qdq_export_keeps_the_onnx_scales(cli, calib_dir, tmp_path):
    qdq = _qdq_onnx(tmp_path)
    expected = qdq_output_quant(onnx.load(str(qdq)))
    assert all(e["dtype"] == "int8" for e in expected)
    out = tmp_path / "qdq.rknn"
    result = cli("export", qdq, "--format", "rknn", "--quant", "qdq", "--calib", calib_dir, "--report",
                 "--report-count", 2, "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["onnx"] == str(qdq) and Path(data["rknn"]).is_file()
    meta = json.loads(Path(data["metadata"]).read_text())
    assert meta["build"]["quant"] == "qdq" and meta["imgsz"] == 128
    got = {q["name"]: q for q in meta["quantization"]}
    for e in expected:
        assert got[e["name"]]["scale"] == pytest.approx(e["scale"], rel=1e-7)
        assert got[e["name"]]["zero_point"] == e["zero_point"]
    # The toolkit kept the ONNX's grid rather than re-quantizing: the simulator tracks ONNX Runtime.
    assert min(o["min_cosine"] for o in json.loads(Path(data["report"]).read_text())["outputs"]
               if o["name"].startswith("box")) > 0.9


@pytest.mark.slow  # builds RKNN
def test_onnx_input_keeps_names_from_its_sidecar(cli, detector_pt, calib_dir, tmp_path):
    onnx_path = tmp_path / "float.onnx"
    assert cli("export", detector_pt, "--imgsz", 96, "--out", onnx_path).exit_code == 0
    result = cli("export", onnx_path, "--format", "rknn", "--quant", "int8", "--algorithm", "kl_divergence",
                 "--calib", calib_dir, "--calib-count", 2, "--out", tmp_path / "m.rknn", "--json")
    assert result.exit_code == 0, result.stderr
    meta = json.loads((tmp_path / "m.rknn.json").read_text())
    assert meta["names"] == json.loads((tmp_path / "float.onnx.json").read_text())["names"]
    assert meta["imgsz"] == 96 and meta["strides"] == [8, 16, 32] and meta["build"]["algorithm"] == "kl_divergence"
    assert [Path(p).name for p in meta["build"]["calibration"]] == ["img0.png", "img1.png"]
    assert json.loads(result.stdout)["report"] is None


@pytest.mark.slow  # builds RKNN
def test_simulator_backend_rebuild_reproduces_quantization(cli, detector_pt, calib_dir, tmp_path):
    from deploy.convert.rknn_sim import RknnSimBackend
    from deploy.convert.verify import compare_outputs, cosine, match_detections
    from deploy.runtime.preprocess import letterbox, to_nchw_float, to_nhwc_uint8

    out = tmp_path / "m.rknn"
    assert cli("export", detector_pt, "--format", "rknn", "--imgsz", 96, "--calib", calib_dir,
               "--out", out).exit_code == 0
    recorded = json.loads((tmp_path / "m.rknn.json").read_text())["quantization"]
    sim = RknnSimBackend(out, verify=True)
    try:
        assert sim.rebuilt_quantization == recorded
        image = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
        canvas, _ = letterbox(image, 96)
        got = sim.infer(to_nhwc_uint8(canvas))
        want = OrtBackend(str(tmp_path / "m.onnx")).infer(to_nchw_float(canvas))
        assert [g.shape for g in got] == [w.shape for w in want]
        assert min(cosine(g, w) for g, w in zip(got[::2], want[::2])) > 0.95  # box outputs

        # verification can fail: the same simulator outputs against the faithful ONNX and against a perturbed one
        (tmp_path / "verify").mkdir()
        _, inputs = prepare_calibration(list_images(calib_dir, 0), 96, tmp_path / "verify")
        simulated = [sim.infer(np.load(p).transpose(0, 2, 3, 1)) for p in inputs]
    finally:
        sim.close()
    faithful = compare_outputs(tmp_path / "m.onnx", inputs, simulated, logits=True)
    assert faithful["min_cosine"] > 0.99 and faithful["detections"]["reference"] > 20
    assert faithful["detections"]["agreement"] > 0.95
    # every weight moved by noise of its own spread: what a broken conversion would compute instead
    broken = compare_outputs(_perturbed(tmp_path / "m.onnx", tmp_path / "perturbed.onnx"), inputs, simulated,
                             logits=True)
    assert broken["min_cosine"] < 0.5 and broken["detections"]["agreement"] < 0.7  # (-0.14 and 0.57 here)

    result = cli("predict", out, calib_dir, "--backend", "rknn-sim", "--workers", 2, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["summary"]["frames"] == 4
    host = cli("predict", tmp_path / "m.onnx", calib_dir, "--json")  # the float model, ONNX Runtime
    assert host.exit_code == 0, host.stderr
    on_sim, on_host = ([_frame_result(json.loads(line)) for line in r.stdout.splitlines()[:-1]] for r in (result, host))
    matched = sum(match_detections(h, s) for h, s in zip(on_host, on_sim))
    found = sum(len(h) + len(s) for h, s in zip(on_host, on_sim))
    assert found > 40 and 2 * matched / found > 0.9  # the simulator's detections are the float model's


def _frame_result(line: dict):
    """One `studio predict --json` line as a FrameResult, for match_detections."""
    from deploy.runtime.postprocess import FrameResult

    dets = line["detections"]
    return FrameResult(np.array([d["box"] for d in dets], np.float32).reshape(-1, 4),
                       np.array([d["score"] for d in dets], np.float32), np.array([d["class"] for d in dets], np.int32),
                       np.arange(len(dets)))


def _perturbed(onnx_path: Path, out: Path, sigma: float = 1.0) -> Path:
    """A copy of the ONNX with Gaussian noise of sigma x each weight tensor's own spread added to it."""
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.dtype.kind == "f" and w.size > 1:
            noisy = w + rng.normal(0, sigma * float(w.std()), w.shape).astype(w.dtype)
            init.CopyFrom(numpy_helper.from_array(noisy, init.name))
    onnx.save(model, str(out))
    return out
