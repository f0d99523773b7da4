"""Readers of a board's system files, on sample files in the formats an RK3588 board shows."""
from __future__ import annotations

from pathlib import Path

from deploy.board import facts
from deploy.board.check import BoardReport, gaps

SAMPLES = Path(__file__).parent / "data" / "board"


def sample(name: str) -> str:
    return (SAMPLES / name).read_bytes().decode("latin-1")


def test_os_cpu_memory_disk():
    assert facts.os_release(sample("os-release")) == "Debian GNU/Linux 11 (bullseye)"
    assert facts.os_release('NAME="Ubuntu"\nVERSION="22.04.4 LTS (Jammy Jellyfish)"\n') == \
        "Ubuntu 22.04.4 LTS (Jammy Jellyfish)"
    assert facts.cpu(sample("cpuinfo")) == {"cores": 8, "model": "4x Cortex-A55 + 4x Cortex-A76"}
    assert facts.cpu("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n") \
        == {"cores": 2, "model": "AMD EPYC 7B13"}
    assert facts.memory_mb(sample("meminfo")) == {"total_mb": 15731, "available_mb": 14581}
    assert facts.disk_free_mb(sample("df")) == 47985
    assert facts.disk_free_mb("") is None


def test_npu_driver_load_and_runtime_versions():
    assert facts.npu_driver(sample("rknpu-version")) == "0.9.8"
    assert facts.npu_driver(sample("dmesg-rknpu")) == "0.9.8"
    assert facts.npu_driver("") is None
    assert facts.npu_load(sample("rknpu-load")) == {"core0": 42, "core1": 0, "core2": 7}
    assert facts.npu_load(sample("rknpu-load-rk3566")) == {"core0": 12}
    assert facts.npu_load("cat: /sys/kernel/debug/rknpu/load: Permission denied") is None
    assert facts.librknnrt(sample("librknnrt-strings")) == "2.3.0"
    assert facts.soc(sample("device-tree-model"), sample("device-tree-compatible")) == "Radxa ROCK 5B (RK3588)"
    assert facts.version_tuple("3.9.2") == (3, 9, 2) and facts.version_tuple("missing") is None
    assert facts.version_tuple("2.0.0b0") == (2, 0, 0)


def test_probe_sections_split_on_markers_only():
    text = "@@arch\naarch64\n@@npu_load\nNPU load:  Core0:  1%,\n@@ not a marker\n@@empty\n"
    assert facts.sections(text) == {"arch": "aarch64", "npu_load": "NPU load:  Core0:  1%,\n@@ not a marker",
                                    "empty": ""}


def _report(**changes) -> BoardReport:
    ready = dict(board="b", address="u@h", os="Debian", arch="aarch64", soc="RK3588", kernel="5.10", cpu={},
                 memory={}, disk_free_mb=100, python="3.9.2", numpy="1.24.4", opencv="4.6.0",
                 rknn_toolkit_lite2="2.3.0", onnxruntime=None, librknnrt="2.3.0", npu_driver="0.9.8",
                 npu_load={"core0": 0})
    report = BoardReport(**(ready | changes))
    report.missing = gaps(report, "python3")
    return report


def test_gaps_name_each_missing_part_with_its_fix():
    assert _report().missing == [] and _report().npu_ready
    old = _report(python="3.8.10", rknn_toolkit_lite2=None, librknnrt=None)
    parts = {m["part"]: m for m in old.missing}
    assert set(parts) == {"Python >= 3.9", "rknn-toolkit-lite2", "librknnrt.so"}
    assert not old.agent_ready and not old.npu_ready
    assert "studio board setup" in parts["rknn-toolkit-lite2"]["fix"]
    host = _report(arch="x86_64", rknn_toolkit_lite2=None, npu_driver=None)
    assert host.agent_ready and not host.npu_ready
    assert "--backend ort" in next(m["fix"] for m in host.missing if m["part"] == "aarch64 CPU")


def test_wheel_tags_are_checked_against_the_board():
    from deploy.board.setup import wheel_fits

    board = ((3, 9), "aarch64")
    assert wheel_fits("rknn_toolkit_lite2-2.3.0-cp39-cp39-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", *board) \
        is None
    assert wheel_fits("opencv_python_headless-4.10.0.84-cp37-abi3-manylinux_2_17_aarch64.whl", *board) is None
    assert wheel_fits("pure-1.0-py3-none-any.whl", *board) is None
    assert "Python 3.9" in wheel_fits("numpy-2.0.0-cp311-cp311-manylinux_2_17_aarch64.whl", *board)
    assert "the board is aarch64" in wheel_fits("numpy-1.26.4-cp39-cp39-manylinux_2_17_x86_64.whl", *board)
    assert "abi3" not in (wheel_fits("future-1.0-cp310-abi3-manylinux_2_17_aarch64.whl", *board) or "abi3")
    assert "not a wheel" in wheel_fits("numpy.tar.gz", *board)
