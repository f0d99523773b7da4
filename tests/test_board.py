"""Boards end to end against a real OpenSSH server on 127.0.0.1 standing in for an RK3588.

The agent runs there with the ONNX Runtime backend (the NPU backend needs the board); the
"board's" Python is this interpreter and its folder a temporary one, so the tests can look
at what arrived and at which processes remain.
"""
from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from deploy.board.agent import protocol
from deploy.board.push import runtime_files
from deploy.board.remote_run import AgentRun, AgentStream, RunOptions
from deploy.board.session import BoardError
from studio.core.board import Access, push_model, start_run, stop_run
from studio.core.jobs import Job
from tests.conftest import BOARD, processes_with


def ssh_keygen_fingerprint(pub: Path) -> str:
    return subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True).stdout.split()[1]


def test_first_connection_needs_trust_and_a_changed_key_is_refused(cli, sshd, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_STUDIO_HOME", str(tmp_path / "home"))
    cli("board", "add", BOARD, "--host", "127.0.0.1", "--user", sshd.user, "--port", sshd.port,
        "--key", sshd.client_key, "--root", tmp_path / "board")
    first = cli("board", "check", BOARD)
    assert first.exit_code == 2 and "not trusted yet" in first.stderr
    assert ssh_keygen_fingerprint(sshd.host_key.with_suffix(".pub")) in first.stderr.replace("\n", "")
    assert not (tmp_path / "home" / "known_hosts").exists()
    assert cli("board", "check", BOARD, "--trust").exit_code == 0
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519" in (tmp_path / "home" / "known_hosts").read_text()
    assert cli("board", "check", BOARD).exit_code == 0  # trusted now, no --trust needed

    sshd.restart(new_host_key=True)
    changed = cli("board", "check", BOARD, "--trust")  # --trust never overrides a changed key
    assert changed.exit_code == 2 and "CHANGED" in changed.stderr and "forget-key" in changed.stderr
    assert cli("board", "forget-key", BOARD).exit_code == 0
    assert cli("board", "check", BOARD, "--trust").exit_code == 0


def test_unreachable_board_is_exit_3(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_STUDIO_HOME", str(tmp_path / "home"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    cli("board", "add", "gone", "--host", "127.0.0.1", "--user", "nobody", "--port", port)
    result = cli("board", "check", "gone")
    assert result.exit_code == 3 and "cannot reach" in result.stderr


def test_check_reports_this_machine_and_what_the_npu_still_needs(cli, board, board_python):
    result = cli("board", "check", BOARD, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    probe = "import platform, numpy, cv2, onnxruntime as o; print(platform.python_version(), numpy.__version__, " \
            "cv2.__version__, o.__version__)"
    python, numpy, opencv, ort = subprocess.run([board_python, "-c", probe], capture_output=True, text=True,
                                                check=True).stdout.split()
    assert report["arch"] == platform.machine() and report["python"] == python and python.startswith("3.9.")
    assert (report["numpy"], report["opencv"], report["onnxruntime"]) == (numpy, opencv, ort)
    assert report["memory"]["total_mb"] > 0 and report["disk_free_mb"] > 0 and report["cpu"]["cores"] >= 1
    missing = {m["part"]: m["fix"] for m in report["missing"]}
    assert "rknn-toolkit-lite2" in missing and "librknnrt.so" in missing
    assert report["agent_ready"] and not report["npu_ready"]


@pytest.mark.slow  # pushes to the board over SSH (7-18 s here)
def test_push_sends_only_what_changed_and_resumes(cli, board, tiny_onnx):
    first = cli("board", "push", BOARD, tiny_onnx, "--json")
    assert first.exit_code == 0, first.stderr
    pushed = json.loads(first.stdout)
    runtime = board / "studio" / "runtime"
    assert len(pushed["sent"]) == len(runtime_files()) + 2
    for rel, local in runtime_files().items():
        assert (runtime / rel).read_bytes() == local.read_bytes()
    model = board / "studio" / "models" / tiny_onnx.name
    assert model.read_bytes() == tiny_onnx.read_bytes()
    manifest = json.loads((runtime / "manifest.json").read_text())
    assert manifest["runtime_version"] == pushed["runtime_version"] and manifest["protocol"] == protocol.VERSION

    again = json.loads(cli("board", "push", BOARD, tiny_onnx, "--json").stdout)
    assert again["sent"] == [] and again["bytes_sent"] == 0

    (runtime / "deploy/runtime/draw.py").write_text("# changed on the board\n")
    model.unlink()  # an interrupted push left the first 40% of the model behind
    cut = tiny_onnx.stat().st_size * 2 // 5
    model.with_name(model.name + ".part").write_bytes(tiny_onnx.read_bytes()[:cut])
    resumed = json.loads(cli("board", "push", BOARD, tiny_onnx, "--json").stdout)
    assert sorted(Path(p).name for p in resumed["sent"]) == ["draw.py", tiny_onnx.name]
    assert resumed["bytes_sent"] == tiny_onnx.stat().st_size - cut + (runtime / "deploy/runtime/draw.py").stat().st_size
    assert model.read_bytes() == tiny_onnx.read_bytes() and not model.with_name(model.name + ".part").exists()

    model.unlink()
    model.with_name(model.name + ".part").write_bytes(b"x" * cut)  # a stale .part of other bytes starts over
    fresh = json.loads(cli("board", "push", BOARD, tiny_onnx, "--json").stdout)
    assert fresh["bytes_sent"] == tiny_onnx.stat().st_size and model.read_bytes() == tiny_onnx.read_bytes()


@pytest.mark.slow  # pushes to the board over SSH (7-18 s here)
def test_run_streams_detections_and_frames_then_leaves_no_process(cli, board, tiny_onnx, scenes, tmp_path):
    from studio.core.bundle import write_bundle

    bundle = tmp_path / "bundle"  # as compress writes it, here of a float ONNX model: run takes the folder
    write_bundle({"platform": "rk3588", "imgsz": 96, "data": "d/data.yaml", "recipe": "r.yaml"},
                 {"variant": "float", "path": str(tiny_onnx), "format": "onnx", "quant": "float32", "map50_95": 0.5,
                  "map50": 0.7, "images": 4}, bundle)
    result = cli("board", "run", BOARD, bundle, "--backend", "ort", "--source", scenes, "--workers", 2,
                 "--conf", 0.05, "--jpeg", 80, "--json")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    frames, summary = lines[:-1], lines[-1]["summary"]
    assert [f["frame"] for f in frames] == list(range(8))
    # the agent ran two workers; which of them took the 8 frames is the board's scheduling (both are seen to
    # work in test_dropped_connection_reconnects_and_stop_ends_the_agent, which streams until they have)
    assert summary["hello"]["workers"] == 2 and {f["worker"] for f in frames} <= {0, 1}
    assert summary["agent"]["frames"] == 8 and summary["detections"] == sum(len(f["detections"]) for f in frames) > 0
    assert set(frames[0]["timings_ms"]) >= {"preprocess", "infer", "postprocess"}
    assert summary["hello"]["runtime"] == str(board / "studio" / "runtime")  # the pushed copy ran, not this checkout
    assert summary["hello"]["names"] and frames[0]["detections"][0]["name"] in summary["hello"]["names"]
    assert processes_with(str(board)) == []


def _started(board_name: str, tiny_onnx: Path, opts: RunOptions) -> tuple[Access, AgentRun]:
    access = Access(board_name)
    pushed = push_model(access, tiny_onnx, "studio", Job())
    return access, start_run(access, pushed, opts)


@pytest.mark.slow  # pushes to the board over SSH (7-18 s here)
def test_dropped_connection_reconnects_and_stop_ends_the_agent(board, tiny_onnx, scenes):
    access, run = _started(BOARD, tiny_onnx, RunOptions(str(scenes), "ort", workers=2, conf=0.05, jpeg_quality=70,
                                                        loop=True))
    stream = AgentStream(access.open, run, backoff_s=0.1)
    frames, images, workers = [], [], set()
    for dets in stream:
        frames.append(dets.frame)
        images.append(dets.image)
        workers.add(dets.worker)
        if len(frames) == 3:
            stream.session.client.close()  # the network drops under the stream
        if stream.reconnects and len(frames) >= 13 and workers == {0, 1}:
            break  # (what was buffered before the drop arrives first, then the reconnect)
        if len(frames) > 400:
            pytest.fail(f"400 frames without a reconnect and both workers: {stream.reconnects} reconnects, "
                        f"workers {sorted(workers)}")
    assert stream.reconnects >= 1 and workers == {0, 1}
    assert frames == list(range(frames[0], frames[0] + len(frames)))  # nothing lost, twice or out of order
    assert all(img is not None and img.ndim == 3 for img in images)
    assert processes_with(run.run_id) == [run.pid]
    stop_run(access, run)
    assert processes_with(run.run_id) == []  # (a reaped or zombie process has no command line left)


@pytest.mark.slow  # pushes to the board over SSH (7-18 s here)
def test_agent_with_no_host_stops_by_itself(board, tiny_onnx, scenes):
    _, run = _started(BOARD, tiny_onnx, RunOptions(str(scenes), "ort", workers=1, loop=True, idle_exit=1.0))
    deadline = time.monotonic() + 15
    while processes_with(run.run_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_with(run.run_id) == [], "the agent still runs 15 s after its 1 s idle limit"
    assert json.loads(Path(run.run_file).read_text())["state"] == "ended"


@pytest.mark.slow  # pushes to the board over SSH (7-18 s here)
def test_agent_that_fails_or_crashes_gives_a_clear_error(cli, board, tiny_onnx, scenes, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    broken.with_name("broken.onnx.json").write_bytes(tiny_onnx.with_name(tiny_onnx.name + ".json").read_bytes())
    result = cli("board", "run", BOARD, broken, "--backend", "ort", "--source", scenes)
    assert result.exit_code == 2
    assert "the agent failed" in result.stderr and "broken.onnx: not a readable ONNX model" in result.stderr
    assert "Traceback" not in result.stderr

    access, run = _started(BOARD, tiny_onnx, RunOptions(str(scenes), "ort", workers=1, loop=True))
    stream = AgentStream(access.open, run, backoff_s=0.1)
    with pytest.raises(BoardError, match="the agent is gone: it stopped unexpectedly"):
        for i, _ in enumerate(stream):
            if i == 2:
                os.kill(run.pid, 9)  # the agent dies hard (an NPU driver crash, the OOM killer)
            if i == 200:  # (it loops over its source: without the error the stream would never end)
                pytest.fail("the stream still delivers results 198 frames after the agent was killed")


def test_an_agent_speaking_another_protocol_version_is_refused(board):
    """A fake agent on the board's localhost greets with version 99; the host refuses it in one line."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def fake_agent():
        conn, _ = server.accept()
        body = json.dumps({"v": 99, "type": "hello", "jpeg": 0}).encode()
        conn.sendall(len(body).to_bytes(4, "big") + body)
        conn.recv(1)
        conn.close()

    threading.Thread(target=fake_agent, daemon=True).start()
    run = AgentRun(BOARD, "fake", "/nonexistent.json", "/nonexistent.log", "/", os.getpid(), server.getsockname()[1],
                   "token")
    with pytest.raises(BoardError, match="protocol version 99, this studio speaks 1"):
        list(AgentStream(Access(BOARD).open, run))
    server.close()


@pytest.mark.slow  # pushes to the board over SSH (7-18 s here)
def test_no_password_in_any_file_or_log(cli, sshd, board, tiny_onnx, scenes, monkeypatch, caplog, capfd):
    """The password is asked (once per command) and offered to SSH; the key logs in first here, as the test
    server takes no passwords, so this checks what the studio itself writes: nothing holds the password."""
    secret = "pw-Zq7!never-written"
    monkeypatch.setattr("getpass.getpass", lambda prompt="": secret)
    caplog.set_level("DEBUG")
    for args in (["check", BOARD], ["push", BOARD, tiny_onnx],
                 ["run", BOARD, tiny_onnx, "--backend", "ort", "--source", scenes, "--frames", 2]):
        result = cli("board", *args, "--ask-password")
        assert result.exit_code == 0, result.stderr
        assert secret not in result.stdout + result.stderr
    assert secret not in caplog.text and secret not in "".join(capfd.readouterr())
    home = Path(os.environ["EDGE_STUDIO_HOME"])
    for folder in (home, board, sshd.root):
        for path in folder.rglob("*"):
            if path.is_file() and path.stat().st_size < 50_000_000:
                assert secret.encode() not in path.read_bytes(), path


def make_wheel(folder: Path, filename: str, package: str, dist: str, version: str) -> Path:
    """A minimal wheel: one package and its dist-info (enough for import and importlib.metadata)."""
    import zipfile

    path = folder / filename
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(f"{package}/__init__.py", f"__version__ = {version!r}\n")
        info = f"{dist.replace('-', '_')}-{version}.dist-info"
        whl.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        whl.writestr(f"{info}/RECORD", "")
    return path


@pytest.mark.slow  # pushes to the board over SSH (7-18 s here)
def test_setup_provisions_an_offline_board_and_refuses_wheels_for_another_machine(cli, board, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "rknn_toolkit_lite2-2.3.0-py3-none-any.whl", "rknnlite", "rknn-toolkit-lite2", "2.3.0")
    (wheels / "librknnrt.so").write_bytes(b"\x7fELF...librknnrt version: 2.3.0 (c949ad889d@2024-11-07T11:35:33)\0")
    result = cli("board", "setup", BOARD, "--wheels", wheels, "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["setup"]["installed"] == ["rknn_toolkit_lite2-2.3.0-py3-none-any.whl"]
    assert out["check"]["rknn_toolkit_lite2"] == "2.3.0" and out["check"]["librknnrt"] == "2.3.0"
    assert {m["part"] for m in out["check"]["missing"]} & {"rknn-toolkit-lite2", "librknnrt.so"} == set()
    assert (board / "site" / "rknnlite" / "__init__.py").exists() and (board / "lib" / "librknnrt.so").exists()

    make_wheel(wheels, "numpy-1.26.4-cp39-cp39-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", "numpy", "numpy",
               "1.26.4")
    refused = cli("board", "setup", BOARD, "--wheels", wheels)
    assert refused.exit_code == 2 and "numpy-1.26.4" in refused.stderr
    assert "the board runs Python" in refused.stderr or "the board is" in refused.stderr


@pytest.mark.slow  # pushes to the board over SSH (7-18 s here)
def test_bench_measures_each_worker_count_on_the_board(cli, board, tiny_onnx, scenes):
    result = cli("board", "bench", BOARD, tiny_onnx, "--backend", "ort", "--source", scenes, "--workers", "1,2",
                 "--frames", 16, "--json")
    assert result.exit_code == 0, result.stderr
    bench = json.loads(result.stdout)
    assert [r["workers"] for r in bench["runs"]] == [1, 2] and all(r["frames"] == 16 for r in bench["runs"])
    assert bench["runs"][0]["speedup"] == 1.0 and bench["runs"][1]["fps"] > 0
    assert bench["runs"][1]["stage_ms"]["infer"] > 0 and "on the board" in bench["measured"]
    for run in bench["runs"]:  # latency from read to result, measured on the board, and inference per worker
        lat = run["latency_ms"]
        assert lat["p50"] <= lat["p95"] <= lat["p99"] and lat["p50"] >= run["stage_ms"]["infer"]
        assert set(run["infer_ms_by_worker"]) == {str(w) for w in range(run["workers"])}
    report = board.parent / "bench-report"
    shown = cli("board", "bench", BOARD, tiny_onnx, "--backend", "ort", "--source", scenes, "--workers", "1,2",
                "--frames", 12, "--report", report)
    assert shown.exit_code == 0, shown.stderr
    assert "latency p50 ms" in shown.stdout and "| 2 |" in (report / "bench.md").read_text()
    assert (report / "latency.png").stat().st_size > 5000 and json.loads((report / "bench.json").read_text())[BOARD]
    assert cli("board", "bench", BOARD, tiny_onnx, "--backend", "ort", "--source", scenes,
               "--report", report).exit_code == 2  # an earlier report is kept unless --force
    assert cli("board", "bench", BOARD, tiny_onnx, "--backend", "ort", "--source", scenes,
               "--workers", "one").exit_code == 2


@pytest.mark.slow  # pushes to the board over SSH (7-18 s here)
def test_the_agent_serves_only_the_token_holder_and_a_newer_host_takes_over(board, tiny_onnx, scenes):
    access, run = _started(BOARD, tiny_onnx, RunOptions(str(scenes), "ort", workers=1, loop=True))
    try:
        intruder = socket.create_connection(("127.0.0.1", run.port), timeout=10)  # another user on the board
        protocol.receive(intruder)
        protocol.send(intruder, {"type": "since", "token": "guess", "seq": 0})
        deadline = time.monotonic() + 60
        with pytest.raises(protocol.ConnectionClosed):
            while True:  # only pings or nothing, then the agent hangs up
                assert protocol.receive(intruder)[0]["type"] != "result"
                assert time.monotonic() < deadline, "the agent kept a connection without the token open for 60 s"
        intruder.close()

        first, second = AgentStream(access.open, run), AgentStream(access.open, run)
        a = iter(first)
        next(a), next(a)
        b = iter(second)  # the first link is still open (as a half-open one would be): the new host takes over
        frames = [next(b).frame for _ in range(3)]
        assert frames == list(range(frames[0], frames[0] + 3))
        first.stop()
        second.stop()
    finally:
        stop_run(access, run)
    assert processes_with(run.run_id) == []


def test_a_deleted_key_file_is_a_user_error(cli, board, sshd, tmp_path):
    key = tmp_path / "gone_key"
    key.write_bytes(sshd.client_key.read_bytes())
    assert cli("board", "add", "other", "--host", "127.0.0.1", "--user", sshd.user, "--port", sshd.port,
               "--key", key).exit_code == 0
    key.unlink()
    result = cli("board", "check", "other", "--trust")
    assert result.exit_code == 2 and "the key file" in result.stderr


@pytest.mark.slow  # pushes to the board over SSH (7-18 s here)
def test_detached_run_is_streamed_and_stopped_from_later_commands(cli, board, tiny_onnx, scenes):
    started = cli("board", "run", BOARD, tiny_onnx, "--backend", "ort", "--source", scenes, "--loop", "--detach",
                  "--json")
    assert started.exit_code == 0, started.stderr
    run = json.loads(started.stdout)
    assert processes_with(run["run_id"]) == [run["pid"]]
    streamed = cli("board", "stream", BOARD, "--frames", 5, "--json")
    assert streamed.exit_code == 0, streamed.stderr
    lines = [json.loads(line) for line in streamed.stdout.splitlines()]
    assert len(lines) == 6 and lines[-1]["summary"]["frames"] == 5
    assert processes_with(run["run_id"]) == [run["pid"]]  # detached: it runs on after the stream
    again = [json.loads(line) for line in cli("board", "stream", BOARD, "--frames", 3, "--json").stdout.splitlines()]
    assert again[-1]["summary"]["frames"] == 3
    assert again[0]["frame"] > lines[-2]["frame"]  # a new attach starts with new results, not the ones already seen
    assert cli("board", "stop", BOARD).exit_code == 0
    assert processes_with(run["run_id"]) == []
    assert cli("board", "stop", BOARD).exit_code == 0  # stopping again is harmless


def test_the_agent_streams_turned_boxes_of_an_oriented_box_model(cli, board, obb_onnx, scenes):
    """Each detection of an OBB model comes back with its turned box and corners, exactly as the board computed them."""
    result = cli("board", "run", BOARD, obb_onnx, "--backend", "ort", "--source", scenes, "--conf", 0.3, "--json")
    assert result.exit_code == 0, result.stderr
    frames = [json.loads(line) for line in result.stdout.splitlines()][:-1]
    found = [d for f in frames for d in f["detections"]]
    assert found and all(len(d["rbox"]) == 5 and len(d["corners"]) == 4 for d in found)
    assert any(0.1 < d["rbox"][4] < 1.4 for d in found)  # turned, not upright


@pytest.mark.slow  # pushes to the board over SSH and runs a scene there
def test_a_geotiff_on_the_board_is_read_by_windows_there_and_its_map_features_come_home(cli, board, obb_onnx,
                                                                                     board_python, tmp_path):
    """The board has rasterio (check and doctor say so): a tiled run of a GeoTIFF that lives on the board comes back
    as the same georeferenced features a local run of the same scene writes."""
    from pyogrio.raw import read

    from tests.test_raster import scene_rgb, write_tif

    check = json.loads(cli("board", "check", BOARD, "--json").stdout)
    probe = "import rasterio; print(rasterio.__version__)"
    assert check["rasterio"] == subprocess.run([board_python, "-c", probe], capture_output=True, text=True,
                                               check=True).stdout.strip()
    doctor = cli("board", "doctor", BOARD)
    assert f"rasterio  {check['rasterio']} (GeoTIFFs read by windows" in doctor.stdout
    scene = board / "scenes" / "scene.tif"  # on the stand-in board's disk
    scene.parent.mkdir(parents=True)
    write_tif(scene, scene_rgb(300, 400, seed=4).transpose(2, 0, 1).copy())
    args = ["--tile", 96, "--conf", 0.3]
    result = cli("board", "run", BOARD, obb_onnx, "--backend", "ort", "--source", scene, *args, "--features",
                 tmp_path / "board-map", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]
    assert summary["frames"] == 1 and summary["features"][0]["coordinates"].startswith("map")
    local = cli("predict", obb_onnx, scene, *args, "--features", tmp_path / "local-map", "--json")
    assert local.exit_code == 0, local.stderr
    for suffix in ("gpkg", "geojson"):
        on_board, _, board_geometry, board_fields = read(str(tmp_path / "board-map" / f"scene.{suffix}"))
        here, _, local_geometry, local_fields = read(str(tmp_path / "local-map" / f"scene.{suffix}"))
        assert on_board["crs"] == here["crs"] and len(board_geometry) == len(local_geometry) > 0
        assert list(board_fields[1]) == list(local_fields[1])
        ring = lambda wkb: np.frombuffer(wkb[13:], "<f8")  # noqa: E731
        assert all(np.allclose(ring(a), ring(b), atol=1e-3 if suffix == "gpkg" else 1e-8)
                   for a, b in zip(board_geometry, local_geometry))


@pytest.mark.slow  # pushes to the board over SSH and runs a scene's tiles there in batches
def test_a_scene_here_is_tiled_here_inferred_on_the_board_and_merged_as_a_local_run(cli, board, obb_onnx, tmp_path,
                                                                                     monkeypatch):
    """studio predict --board: a GeoTIFF on this computer, its tiles sent to the board a batch at a time, gives the
    features a local run gives, and the board keeps none of the tiles, not even when a run fails mid-scene."""
    from pyogrio.raw import read

    from deploy.errors import UserError
    from studio.core import board_tiles
    from tests.test_raster import scene_rgb, write_tif

    monkeypatch.setattr(board_tiles, "BATCH", 8)  # 20 tiles: three round trips
    scene = tmp_path / "scene.tif"
    write_tif(scene, scene_rgb(300, 400, seed=4).transpose(2, 0, 1).copy())
    args = ["--tile", 96, "--conf", 0.3]
    result = cli("predict", obb_onnx, scene, *args, "--board", BOARD, "--backend", "ort", "--workers", 2,
                 "--features", tmp_path / "board-map", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]
    assert summary["frames"] == 1 and summary["tiles"] == 20 and summary["features"][0]["coordinates"].startswith("map")
    local = cli("predict", obb_onnx, scene, *args, "--features", tmp_path / "local-map", "--json")
    assert local.exit_code == 0, local.stderr
    on_board, _, board_geometry, board_fields = read(str(tmp_path / "board-map" / "scene.gpkg"))
    here, _, local_geometry, local_fields = read(str(tmp_path / "local-map" / "scene.gpkg"))
    assert on_board["crs"] == here["crs"] and len(board_geometry) == len(local_geometry) > 0
    assert list(board_fields[1]) == list(local_fields[1])
    ring = lambda wkb: np.frombuffer(wkb[13:], "<f8")  # noqa: E731
    assert all(np.allclose(ring(a), ring(b), atol=1e-3) for a, b in zip(board_geometry, local_geometry))
    assert not [p for p in (board / "studio" / "data").rglob("*") if p.is_file()]  # every batch was removed

    sent = []  # now the first batch fails on the board while the second is already on its way
    pushing = board_tiles.push_images

    def counted(*args, **kwargs):
        images = pushing(*args, **kwargs)
        sent.append(images.folder)
        return images

    def failing(*args, **kwargs):
        while len(sent) < 2:  # the next batch has reached the board before this one's run ends
            time.sleep(0.05)
        raise UserError("the board's agent stopped")

    monkeypatch.setattr(board_tiles, "push_images", counted)
    monkeypatch.setattr(board_tiles, "stream_run", failing)
    failed = cli("predict", obb_onnx, scene, *args, "--board", BOARD, "--backend", "ort", "--features",
                 tmp_path / "failed-map")
    assert failed.exit_code == 2 and "the board's agent stopped" in failed.stderr
    assert len(sent) == 2 and sent[0] != sent[1]
    assert not [p for p in (board / "studio" / "data").rglob("*") if p.is_file()]  # both batches removed


def test_predict_on_a_board_refuses_a_backend_it_has_not_and_a_camera_here(cli, obb_onnx, tmp_path):
    result = cli("predict", obb_onnx, tmp_path, "--board", BOARD, "--backend", "rknn-sim")
    assert result.exit_code == 2 and "--backend rknn-sim does not run on a board: rknnlite or ort" in result.stderr
    result = cli("predict", obb_onnx, "camera:0", "--board", BOARD)
    assert result.exit_code == 2 and "camera:0 is live" in result.stderr and "studio board run" in result.stderr
