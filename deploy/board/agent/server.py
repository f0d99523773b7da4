"""The agent: runs the pipeline over a source and serves its results to one host at a time on 127.0.0.1.

The host reaches the port through its SSH connection (a direct-tcpip channel), so nothing
listens on the network. A host proves it may connect with the token from the run file
(readable by the board user only) and says the last result it has; the agent replays what
it sent after that from a short buffer, so a dropped link loses nothing. A newer host
takes over from an older one (a half-open link cannot lock the host out), pings keep an
idle link observable, and with no host for `idle_exit` seconds the agent stops by itself,
so a lost studio never leaves an orphan running on the board.
"""
import collections
import functools
import logging
import os
import queue
import secrets
import select
import socket
import threading
import time
from dataclasses import replace
from typing import Optional

import numpy as np

import deploy
from deploy.board.agent import protocol
from deploy.board.agent.messages import encode_jpeg, result_header, result_line
from deploy.board.agent.options import AgentConfig
from deploy.board.agent.raw import RawRecorder, raw_folder
from deploy.runtime.atomic import write_json_atomic
from deploy.runtime.backends import worker_backends
from deploy.runtime.metadata import read_model_meta
from deploy.runtime.postprocess import NmsConfig
from deploy.runtime.run_loop import Gate, RunLoop, replayed
from deploy.runtime.sources import open_source

log = logging.getLogger("agent")
POLL_S = 0.1
PING_S = 2.0  # an idle link still carries a ping this often
REPLAY = 256  # results kept for a host that reconnects


def scenes_by_windows() -> bool:
    """Whether this board reads rasters tile window by tile window (rasterio installed; never required: without
    it a GeoTIFF is decoded whole by OpenCV, which suits scenes that fit in memory)."""
    import importlib.util

    return importlib.util.find_spec("rasterio") is not None


@functools.cache
def located(path: str, by_rasterio: bool) -> Optional[dict]:
    """A raster scene's georeference (raster.georeference), read once per file, so the host writes map features
    of a scene it never had; without rasterio only its modification time, and why; None for no raster."""
    from deploy.runtime.sources import RASTER_SUFFIXES

    if os.path.splitext(path)[1].lower() not in RASTER_SUFFIXES:
        return None
    if by_rasterio:
        from deploy.runtime.raster import georeference

        return georeference(path)
    return {"transform": None, "crs": None, "mtime": os.stat(path).st_mtime,
            "why": "the board has no rasterio to read the raster's geotransform"}


def write_run_file(path: str, state: dict) -> None:
    """Replace the run file in one step (owner-only: it holds the token), so the host never reads half of it."""
    write_json_atomic(path, state, mode=0o600, indent=None)


class HostGone(Exception):
    """The connected host left, or a newer one arrived."""


RESULTS_BYTES = 16 << 20  # a results file this large moves to FILE.1 (the one before is dropped)


class ResultsFile:
    """Every result as a JSON line appended to a file a user's program can tail; kept under about 32 MB."""

    def __init__(self, path: str):
        self.path = path
        self.file = open(path, "a", buffering=1)

    def write(self, line: str) -> None:
        if self.file.tell() > RESULTS_BYTES:
            self.file.close()
            os.replace(self.path, self.path + ".1")
            self.file = open(self.path, "a", buffering=1)
        self.file.write(line)

    def close(self) -> None:
        self.file.close()


class Agent:
    """Pipeline thread -> bounded outbox -> the connected host. `serve()` blocks until the run ends."""

    def __init__(self, cfg: AgentConfig):
        self.cfg = cfg
        self.gate = Gate()  # stop, and the host's pause and step
        self.ready = threading.Event()  # the model's metadata is read (or reading it failed)
        self.outbox: queue.Queue = queue.Queue(maxsize=8)
        self.sent: collections.deque = collections.deque(maxlen=REPLAY)  # (seq, header, payload)
        self.seq = 0
        self.loop: Optional[RunLoop] = None
        self.live = False
        self.keep_up = False  # drop the oldest unsent result rather than wait (a live source, a service)
        self.names: list = []
        self.token = secrets.token_hex(16)
        self._state_lock = threading.Lock()
        self.state = {"pid": os.getpid(), "v": protocol.VERSION, "state": "starting", "port": None,
                      "token": self.token}
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", cfg.port))
        self.listener.listen(2)
        self.listener.settimeout(POLL_S)
        self.state["port"] = self.listener.getsockname()[1]

    def _update(self, **changes) -> None:
        with self._state_lock:
            self.state.update(changes)
            write_run_file(self.cfg.run_file, self.state)

    # --- the pipeline side -------------------------------------------------------------------

    def _post(self, item) -> None:
        """Hand a message to the server side; a live source drops the oldest waiting result instead of waiting."""
        while not self.gate.stopped:
            try:
                self.outbox.put(item, timeout=POLL_S)
                return
            except queue.Full:
                if self.keep_up and item[0] == "result":
                    try:
                        self.outbox.get_nowait()
                    except queue.Empty:
                        pass

    def run_pipeline(self) -> None:
        """Runs in its own thread; every outcome ends with an end or error message in the outbox."""
        try:
            try:
                meta = read_model_meta(self.cfg.model)
                self.names = list(meta.names)
            finally:
                self.ready.set()
            windowed = bool(self.cfg.tile) and scenes_by_windows()
            source = open_source(self.cfg.source, warn=log.warning, max_frames=self.cfg.max_frames, windowed=windowed)
            self.live = source.live
            self.keep_up = source.live or not self.cfg.idle_exit  # a service never waits for a host to read
            backends = worker_backends(self.cfg.backend, self.cfg.model, self.cfg.workers)
            if self.cfg.raw_first:
                backends = RawRecorder(raw_folder(self.cfg.run_file), self.cfg.raw_first).wrap(backends)
            self.loop = RunLoop(backends, meta,
                                NmsConfig(conf=self.cfg.conf, iou=self.cfg.iou, max_det=self.cfg.max_det,
                                          multi_label=self.cfg.multi_label), workers=self.cfg.workers,
                                live=source.live, gate=self.gate, keep_images=self.cfg.jpeg_quality > 0,
                                tile=self.cfg.tile, overlap=self.cfg.overlap)
            self._update(state="running")
            first, count = None, 0
            results = ResultsFile(self.cfg.results) if self.cfg.results else None
            for dets in self.loop.results(replayed(source, self.cfg.loop, self.gate, self.cfg.max_frames)):
                now = time.perf_counter()
                first, count = first or now, count + 1
                if results is not None:
                    results.write(result_line(dets, self.names))
                if self.cfg.tile:
                    dets.georef = located(dets.source, windowed)
                sent = self.cfg.jpeg_quality and isinstance(dets.image, np.ndarray)  # a raster is never sent whole
                payload = encode_jpeg(dets.image, self.cfg.jpeg_quality) if sent else b""
                self._post(("result", result_header(dets), payload))
            if results is not None:
                results.close()
            stats = self.loop.stats.to_dict()
            # frames/s from the first result on, without the time the backends took to load the model
            span = time.perf_counter() - first if first else 0.0
            stats["steady_fps"] = round((count - 1) / span, 2) if count > 1 and span > 0 else None
            self._post(("end", {"type": "end", "stats": stats}, b""))
        except Exception as exc:  # reported to the host as one line; the log keeps the traceback
            log.exception("the pipeline failed")
            message = f"{type(exc).__name__}: {exc}" if not str(exc).startswith(self.cfg.model) else str(exc)
            self._update(state="failed", error=message)
            self._post(("error", {"type": "error", "message": message}, b""))

    # --- the host side -----------------------------------------------------------------------

    def serve(self) -> None:
        """Accept hosts one after another and stream to them until the run ends, is stopped or idles out."""
        self._update()
        threading.Thread(target=self.run_pipeline, name="agent-pipeline", daemon=True).start()
        idle_since = time.monotonic()
        conn = None
        try:
            while not self.gate.stopped:
                if conn is None:
                    try:
                        conn, _ = self.listener.accept()
                    except socket.timeout:  # (not TimeoutError: on Python 3.9 they differ)
                        if self.cfg.idle_exit and time.monotonic() - idle_since > self.cfg.idle_exit:
                            log.info("no host for %.0f s: stopping", self.cfg.idle_exit)
                            self.gate.stop()
                        continue
                finished, conn = self._stream(conn)
                idle_since = time.monotonic()
                if finished:
                    break
        finally:
            self.gate.stop()
            if conn is not None:
                conn.close()
            self.listener.close()
            if self.state["state"] in ("starting", "running"):
                self._update(state="ended")

    def _hello(self) -> dict:
        return {"type": "hello", "pid": os.getpid(), "model": os.path.basename(self.cfg.model),
                "backend": self.cfg.backend, "workers": self.cfg.workers, "source": self.cfg.source,
                "names": self.names, "live": self.live, "last_seq": self.seq,
                "runtime": os.path.dirname(os.path.dirname(os.path.abspath(deploy.__file__)))}

    def _greet(self, conn: socket.socket) -> int:
        """Hello, then the host's token and the last result it holds; returns that sequence number."""
        self.ready.wait(30)
        protocol.send(conn, self._hello())
        header, _ = protocol.receive(conn)
        if header.get("type") != "since" or not secrets.compare_digest(str(header.get("token", "")), self.token):
            raise HostGone("a connection without the run's token")
        return int(header.get("seq", 0))

    def _stream(self, conn: socket.socket):
        """Serve one host. Returns (run finished, the connection to serve next or None)."""
        conn.settimeout(30)
        try:
            since = self._greet(conn)
            log.info("host connected (has results up to %d)", since)
            for seq, header, payload in list(self.sent):
                if seq > since:
                    protocol.send(conn, header, payload)
            last_send = time.monotonic()
            while not self.gate.stopped:
                newer = self._newer_host()
                if newer is not None:
                    log.info("a newer host connected: it takes over")
                    conn.close()
                    return False, newer
                if self._host_says_stop(conn):
                    log.info("the host asked to stop")
                    self.gate.stop()
                    return True, conn
                try:
                    kind, header, payload = self.outbox.get(timeout=POLL_S)
                except queue.Empty:
                    if time.monotonic() - last_send > PING_S:
                        protocol.send(conn, {"type": "ping"})
                        last_send = time.monotonic()
                    continue
                self.seq += 1
                header = dict(header, seq=self.seq)
                self.sent.append((self.seq, header, payload))
                protocol.send(conn, header, payload)
                last_send = time.monotonic()
                if kind in ("end", "error"):
                    self._wait_for_goodbye(conn)
                    return True, conn
        except (OSError, ValueError, protocol.ProtocolError, HostGone) as exc:
            log.info("host connection lost (%s); waiting for it to come back", exc)
            conn.close()
            return False, None
        return True, conn

    def _newer_host(self) -> Optional[socket.socket]:
        if not select.select([self.listener], [], [], 0)[0]:
            return None
        try:
            conn, _ = self.listener.accept()
            return conn
        except OSError:
            return None

    def _host_says_stop(self, conn: socket.socket) -> bool:
        """Read what the host sent, if anything: stop, pause, resume, step, thresholds. A closed connection raises."""
        while select.select([conn], [], [], 0)[0]:
            header, _ = protocol.receive(conn)
            kind = header.get("type")
            if kind == "stop":
                return True
            if kind == "pause":
                self.gate.pause()
            elif kind == "resume":
                self.gate.resume()
            elif kind == "step":
                self.gate.step()
            elif kind == "thresholds" and self.loop is not None:
                try:
                    conf, iou = float(header["conf"]), float(header["iou"])
                except (KeyError, TypeError, ValueError):
                    log.warning("ignored thresholds without numbers: %s", header)
                    continue
                self.loop.cfg = replace(self.loop.cfg, conf=conf, iou=iou)  # max_det, multi_label stay
        return False

    @staticmethod
    def _wait_for_goodbye(conn: socket.socket) -> None:
        """Give the host a moment to read the last message before the connection closes."""
        try:
            conn.settimeout(5)
            conn.recv(1)
        except OSError:
            pass
