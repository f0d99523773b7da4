"""`studio export --doctor`: it finds a layer planted to quantize badly and a hybrid build recovers it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from deploy.convert.doctor import layer_errors, mark_float16, worst_layers
from tests.conftest import make_detector

ANALYSIS = """\
layer_name                                                simulator_error
                                                      entire              single
                                                   cos      euc        cos      euc
-----------------------------------------------------------------------------------------
[Input] images                                   1.00000 | 0.00000   1.00000 | 0.00000
[exDataConvert] images_int8                      0.99999 | 0.65773   0.99999 | 0.65773
[Conv] /model.0/conv/Conv_output_0               0.99980 | 10.77381  0.99980 | 10.77381
[exSwish] /model.3/act/Mul_output_0              0.41000 | 90.10000  0.52000 | 80.00000
[Concat] /model.2/Concat_output_0                0.99726 | 36.12855  0.99912 | 20.52169
[Conv] /model.4/conv/Conv_output_0                q_zero |  q_zero    q_zero |  q_zero
"""


def test_analysis_is_read_and_ranked_by_the_single_layer_error(tmp_path):
    path = tmp_path / "error_analysis.txt"
    path.write_text(ANALYSIS)
    errors = layer_errors(path)
    assert [e.tensor for e in errors] == ["/model.0/conv/Conv_output_0", "/model.3/act/Mul_output_0",
                                          "/model.2/Concat_output_0", "/model.4/conv/Conv_output_0"]
    assert errors[1].single_cos == pytest.approx(0.52) and errors[1].entire_cos == pytest.approx(0.41)
    assert errors[3].single_cos == 0.0  # q_zero: the int8 output is all zeros
    assert [e.tensor for e in worst_layers(errors, 2)] == ["/model.4/conv/Conv_output_0", "/model.3/act/Mul_output_0"]
    # a model output keeps its int8 grid (the runtime dequantizes with it), however it fares
    assert [e.tensor for e in worst_layers(errors, 1, keep_int8=("/model.4/conv/Conv_output_0",))] == [
        "/model.3/act/Mul_output_0"]
    empty = tmp_path / "other_format.txt"
    empty.write_text("layer  cos\nconv1  0.99\n")
    with pytest.raises(ValueError, match="no per-layer rows"):
        layer_errors(empty)
    config = tmp_path / "m.quantization.cfg"
    config.write_text("custom_quantize_layers: {}\nquantize_parameters:\n    images:\n        qtype: asym\n")
    mark_float16(config, ["/model.3/act/Mul_output_0"])
    import yaml

    data = yaml.safe_load(config.read_text())
    assert data["custom_quantize_layers"] == {"/model.3/act/Mul_output_0": "float16"}
    assert data["quantize_parameters"]["images"]["qtype"] == "asym"  # the rest is kept


@pytest.fixture(scope="module")
def planted_pt(tmp_path_factory) -> Path:
    """A detector whose layer 3 conv cannot survive int8 while its float output barely changes.

    Channel 0 of layer 2's output is driven to SiLU(-30), about -3e-12; layer 3 then gets
    huge weights on that all-but-dead channel. In float they multiply almost zeros; in
    int8 they set every output channel's weight scale, and the real weights round to zero.
    (An exactly zero channel would not do: the toolkit's optimizer sees through it.)
    """
    model = make_detector()
    block = model.model[2].cv2  # C2f's output conv block
    head = model.model[-1]
    with torch.no_grad():
        block.bn.bias[0] = -30.0
        model.model[3].conv.weight[:, 0] = 40.0
        for seq in list(head.cv2) + list(head.cv3):  # outputs that follow the features, not constant biases
            seq[-1].bias.zero_()
    path = tmp_path_factory.mktemp("planted") / "planted.pt"
    torch.save({"model": model, "ema": None}, path)
    return path


@pytest.mark.slow
def test_doctor_names_the_planted_layer_and_the_hybrid_recovers(cli, planted_pt, calib_dir, tmp_path):
    out = tmp_path / "m.rknn"
    result = cli("export", planted_pt, "--format", "rknn", "--imgsz", 128, "--calib", calib_dir, "--doctor",
                 "--doctor-layers", 2, "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    doctor = json.loads(Path(data["doctor"]).read_text())
    worst = doctor["worst_layers"][0]
    assert "/model.3/" in worst["tensor"] and worst["single_cos"] < 0.9
    assert any("/model.3/" in t for t in doctor["float16"]) and len(doctor["float16"]) == 2
    hybrid = Path(data["hybrid"])
    assert hybrid.is_file() and hybrid.name == "m.hybrid.rknn" and Path(str(hybrid) + ".json").is_file()
    assert doctor["hybrid"]["min_cosine_active"] > doctor["int8"]["min_cosine_active"] + 0.05
    assert doctor["hybrid"]["bytes"] > 0 and doctor["int8"]["bytes"] == out.stat().st_size
    assert "kept in float16" in Path(data["doctor"]).with_suffix(".md").read_text()


def test_doctor_needs_int8(cli, detector_pt, calib_dir, tmp_path):
    result = cli("export", detector_pt, "--format", "rknn", "--quant", "fp16", "--calib", calib_dir, "--doctor",
                 "--out", tmp_path / "o" / "m.rknn")
    assert result.exit_code == 2 and "--doctor analyses post-training int8" in result.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
