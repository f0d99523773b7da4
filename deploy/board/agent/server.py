"""The agent: runs the pipeline over a source and serves its results to one host at a time on 127.0.0.1.

The host reaches the port through its SSH connection (a direct-tcpip channel), so nothing
listens on the network. If the host's connection drops, the agent keeps its place and
waits for the host to come back; with no host for `idle_exit` seconds it stops by itself,
so a lost studio never leaves an orphan running on the board. A run file (JSON, written
atomically) tells the host the port and pid, and afterwards how the run ended.
"""
import json
import logging
import os
import queue
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Optional

import deploy
from deploy.board.agent import protocol
from deploy.board.agent.messages import encode_jpeg, result_header
from deploy.runtime.backends import OrtBackend, RknnLiteBackend, worker_core_masks
from deploy.runtime.metadata import load_meta
from deploy.runtime.pipeline import Frame, Pipeline
from deploy.runtime.postprocess import NmsConfig
from deploy.runtime.sources import open_source

log = logging.getLogger("agent")
POLL_S = 0.1


@dataclass
class AgentConfig:
    model: str
    source: str
    run_file: str
    backend: str = "rknnlite"  # rknnlite on the board; ort where a host stands in for one
    workers: int = 3
    port: int = 0  # 0: any free port (the run file says which)
    conf: float = 0.25
    iou: float = 0.45
    jpeg_quality: int = 0  # 0: send no frames, only detections
    max_frames: Optional[int] = None
    loop: bool = False
    idle_exit: float = 30.0  # seconds without a connected host before the agent stops


def write_run_file(path: str, state: dict) -> None:
    """Replace the run file in one step, so the host never reads half of it."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)


class Agent:
    """Pipeline thread -> bounded outbox -> the connected host. `serve()` blocks until the run ends."""

    def __init__(self, cfg: AgentConfig):
        self.cfg = cfg
        self.stop = threading.Event()
        self.running = threading.Event()  # cleared while the host has paused the run
        self.running.set()
        self.steps = threading.Semaphore(0)  # frames the host let through while paused
        self.outbox: queue.Queue = queue.Queue(maxsize=8)
        self.pipeline: Optional[Pipeline] = None
        self.live = False
        self.names: list = []
        self.state = {"pid": os.getpid(), "v": protocol.VERSION, "state": "starting", "port": None}
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", cfg.port))
        self.listener.listen(1)
        self.listener.settimeout(POLL_S)
        self.state["port"] = self.listener.getsockname()[1]

    def _update(self, **changes) -> None:
        self.state.update(changes)
        write_run_file(self.cfg.run_file, self.state)

    # --- the pipeline side -------------------------------------------------------------------

    def _backend_factory(self):
        model, masks = self.cfg.model, worker_core_masks(self.cfg.workers)
        if self.cfg.backend == "ort":
            return lambda i: OrtBackend(model, threads=1)
        if self.cfg.backend == "rknnlite":
            return lambda i: RknnLiteBackend(model, core_mask=masks[i])
        raise ValueError(f"unknown backend {self.cfg.backend!r} (rknnlite or ort)")

    def _frames(self, source):
        index = 0
        while not self.stop.is_set():
            produced = False
            for frame in source:
                produced = True
                while not self.running.is_set() and not self.stop.is_set():
                    if self.steps.acquire(timeout=POLL_S):
                        break
                yield Frame(frame.image, index, frame.source, frame.read_ms)
                index += 1
                if self.stop.is_set() or (self.cfg.max_frames and index >= self.cfg.max_frames):
                    return
            if not (self.cfg.loop and produced) or source.live:
                return

    def _post(self, item) -> None:
        """Hand a message to the server side; a live source drops the oldest waiting result instead of waiting."""
        while not self.stop.is_set():
            try:
                self.outbox.put(item, timeout=POLL_S)
                return
            except queue.Full:
                if self.live and item[0] == "result":
                    try:
                        self.outbox.get_nowait()
                    except queue.Empty:
                        pass

    def run_pipeline(self) -> None:
        """Runs in its own thread; every outcome ends with an end or error message in the outbox."""
        try:
            meta = load_meta(self.cfg.model)
            self.names = list(meta.names)
            source = open_source(self.cfg.source, warn=log.warning, max_frames=self.cfg.max_frames)
            self.live = source.live
            self.pipeline = Pipeline(self._backend_factory(), meta, NmsConfig(conf=self.cfg.conf, iou=self.cfg.iou),
                                     workers=self.cfg.workers, live=source.live,
                                     keep_images=self.cfg.jpeg_quality > 0)
            self._update(state="running")
            for dets in self.pipeline.run(self._frames(source)):
                payload = encode_jpeg(dets.image, self.cfg.jpeg_quality) if self.cfg.jpeg_quality else b""
                self._post(("result", result_header(dets), payload))
                if self.stop.is_set():
                    break
            self._post(("end", {"type": "end", "stats": self.pipeline.stats.to_dict()}, b""))
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
        pending = None  # a message that could not be delivered, for the next host
        idle_since = time.monotonic()
        try:
            while not self.stop.is_set():
                try:
                    conn, _ = self.listener.accept()
                except TimeoutError:
                    if time.monotonic() - idle_since > self.cfg.idle_exit:
                        log.info("no host for %.0f s: stopping", self.cfg.idle_exit)
                        self.stop.set()
                    continue
                log.info("host connected")
                finished, pending = self._stream(conn, pending)
                conn.close()
                idle_since = time.monotonic()
                if finished:
                    break
        finally:
            self.stop.set()
            self.listener.close()
            if self.state["state"] in ("starting", "running"):
                self._update(state="ended")

    def _hello(self) -> dict:
        return {"type": "hello", "pid": os.getpid(), "model": os.path.basename(self.cfg.model),
                "backend": self.cfg.backend, "workers": self.cfg.workers, "source": self.cfg.source,
                "names": self.names, "live": self.live,
                "runtime": os.path.dirname(os.path.dirname(os.path.abspath(deploy.__file__)))}

    def _stream(self, conn: socket.socket, pending):
        """Send the outbox to one host. Returns (run finished, the undelivered message if the host left)."""
        conn.settimeout(30)
        item = pending
        try:
            protocol.send(conn, self._hello())
            while not self.stop.is_set():
                if self._host_says_stop(conn):
                    log.info("the host asked to stop")
                    self.stop.set()
                    return True, None
                if item is None:
                    try:
                        item = self.outbox.get(timeout=POLL_S)
                    except queue.Empty:
                        continue
                kind, header, payload = item
                protocol.send(conn, header, payload)
                item = None
                if kind in ("end", "error"):
                    self._wait_for_goodbye(conn)
                    return True, None
        except (OSError, protocol.ProtocolError) as exc:
            log.info("host connection lost (%s); waiting for it to come back", exc)
            return False, item
        return True, None

    def _host_says_stop(self, conn: socket.socket) -> bool:
        """Read what the host sent, if anything: stop, pause, resume, step, thresholds. A closed connection raises."""
        while select.select([conn], [], [], 0)[0]:
            header, _ = protocol.receive(conn)
            kind = header.get("type")
            if kind == "stop":
                return True
            if kind == "pause":
                self.running.clear()
            elif kind == "resume":
                self.running.set()
            elif kind == "step" and not self.running.is_set():
                self.steps.release()
            elif kind == "thresholds" and self.pipeline is not None:
                self.pipeline.cfg = NmsConfig(conf=float(header["conf"]), iou=float(header["iou"]))
        return False

    @staticmethod
    def _wait_for_goodbye(conn: socket.socket) -> None:
        """Give the host a moment to read the last message before the connection closes."""
        try:
            conn.settimeout(5)
            conn.recv(1)
        except OSError:
            pass
