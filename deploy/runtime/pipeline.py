"""Multithreaded inference: one reader, N workers (each with its own backend), results in frame order.

    pipeline = Pipeline(lambda i: OrtBackend("m.onnx"), meta, workers=2)
    for dets in pipeline.run(frames):
        ...
    print(pipeline.stats.fps)

Why threads: the heavy parts (resize, ONNX Runtime, the NPU driver, most numpy) release
the GIL, so N workers overlap; on the RK3588 worker i is pinned to NPU core i % 3.
Queues are bounded, and so are results in flight (taken by a worker but not yet
handed on, 2 x workers by default): a slow consumer holds the workers back instead of
letting finished frames and their images pile up. A file source then waits; a live
source (camera) drops the oldest waiting frame instead of falling behind, and counts it.
A worker's exception stops the pipeline and is raised from run(); nothing waits forever.
"""
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Callable, Optional

from deploy.runtime.backends import Backend
from deploy.runtime.detections import Detections
from deploy.runtime.frame import Frame
from deploy.runtime.heads import Head, head_for
from deploy.runtime.metadata import ModelMeta
from deploy.runtime.postprocess import NmsConfig
from deploy.runtime.preprocess import letterbox, to_nchw_float, to_nhwc_uint8

STAGES = ("read", "queue", "preprocess", "infer", "postprocess", "total")  # total: the work, queue left out
LATENCY_WINDOW = 10_000  # the latest frames whose latency the percentiles are over
LATENCY_KEYS = ("latency_ms", "queue_ms", "infer_ms_by_worker")  # what to_dict adds to throughput
_END = object()
POLL_S = 0.05  # how often blocked threads look at the stop flag


class PipelineError(RuntimeError):
    """A worker or the source failed; the message names which and on what frame."""


def percentiles(values, points=(50, 95, 99)) -> dict[str, float]:
    """{"p50": ..., "p95": ..., "p99": ...} of values (nearest rank, no interpolation); empty when there are none."""
    ordered = sorted(values)
    if not ordered:
        return {}
    return {f"p{p}": round(ordered[min(len(ordered) - 1, max(0, -(-p * len(ordered) // 100) - 1))], 3)
            for p in points}


@dataclass
class PipelineStats:
    frames: int = 0
    dropped: int = 0
    seconds: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)  # mean per frame
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))  # ms, read start to result
    queue_waits: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))  # ms in the queue
    worker_infer: dict[int, list[float]] = field(default_factory=dict)  # worker -> [sum ms, frames]
    stage_sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))  # ms, for stage_ms

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def add(self, dets: Detections) -> None:
        """Count one result in order: its latency, its wait in the queue, its worker's inference time."""
        self.frames += 1
        self.latencies.append(dets.timings.get("latency", 0.0))
        self.queue_waits.append(dets.timings.get("queue", 0.0))
        entry = self.worker_infer.setdefault(dets.worker, [0.0, 0])
        entry[0] += dets.timings.get("infer", 0.0)
        entry[1] += 1
        for stage in STAGES:
            self.stage_sums[stage] += dets.timings.get(stage, 0.0)

    def finish(self, seconds: float) -> None:
        """The run ended after `seconds`: each stage's mean per frame becomes stage_ms."""
        self.seconds = seconds
        if self.frames:
            self.stage_ms = {k: v / self.frames for k, v in self.stage_sums.items()}

    def to_dict(self) -> dict:
        """fps and mean ms per stage, with the latency from reading a frame to its result in order (p50, p95,
        p99 over the latest frames), the wait in the queue, and inference per worker (worker i: NPU core i % 3)."""
        return {"frames": self.frames, "dropped": self.dropped, "seconds": round(self.seconds, 3),
                "fps": round(self.fps, 2), "stage_ms": {k: round(v, 3) for k, v in self.stage_ms.items()},
                "latency_ms": percentiles(self.latencies), "queue_ms": percentiles(self.queue_waits),
                "infer_ms_by_worker": {str(w): round(total / n, 3)
                                       for w, (total, n) in sorted(self.worker_infer.items()) if n}}


def detect(backend: Backend, meta: ModelMeta, frame: Frame, cfg: NmsConfig, keep_image: bool = False,
           head: Optional[Head] = None) -> Detections:
    """Preprocess, infer and post-process one frame; boxes in the frame's own pixels (`head`: the meta's
    decoder, when the caller already has it)."""
    t0 = time.perf_counter()
    canvas, info = letterbox(frame.image, meta.imgsz)
    tensor = to_nhwc_uint8(canvas) if backend.layout == "nhwc-uint8" else to_nchw_float(canvas)
    t1 = time.perf_counter()
    outputs = backend.infer(tensor)
    t2 = time.perf_counter()
    head = head or head_for(meta)
    result = head.decode(outputs, cfg, backend.int8_outputs)
    boxes, rboxes = head.to_original(result, info)
    t3 = time.perf_counter()
    timings = {"read": frame.read_ms, "preprocess": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3,
               "postprocess": (t3 - t2) * 1e3}
    timings["total"] = sum(timings.values())
    return Detections(boxes, result.scores, result.classes, timings, frame.index, frame.source,
                      frame.extra or None, frame.image if keep_image else None, rboxes=rboxes)


class Pipeline:
    """N workers over a bounded queue; `run(frames)` yields Detections in frame order."""

    def __init__(self, backend_factory: Callable[[int], Backend], meta: ModelMeta, cfg: NmsConfig = NmsConfig(),
                 workers: int = 1, live: bool = False, queue_size: Optional[int] = None, keep_images: bool = False,
                 in_flight: Optional[int] = None):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.factory, self.meta, self.cfg, self.workers, self.live = backend_factory, meta, cfg, workers, live
        self.queue_size = queue_size or (workers if live else 2 * workers)
        self.keep_images = keep_images  # attach each frame to its Detections (for drawing sinks)
        self.head = head_for(meta)  # chosen once, not per frame
        self.in_flight = in_flight or 2 * workers
        self.stats = PipelineStats()

    def run(self, frames: Iterable[Frame]) -> Iterator[Detections]:
        """Yield Detections in the order frames were taken; raise PipelineError if anything failed."""
        run = _Run(self)
        self.stats = PipelineStats()
        threads = [threading.Thread(target=self._read, args=(run, frames), name="pipeline-reader", daemon=True)]
        threads += [threading.Thread(target=self._work, args=(run, i), name=f"pipeline-worker-{i}", daemon=True)
                    for i in range(self.workers)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        pending: dict[int, Detections] = {}
        next_seq, finished = 0, 0
        try:
            while finished < self.workers:
                try:
                    kind, seq, payload, cause = run.outbox.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                if kind == "error":
                    raise payload from cause
                if kind == "done":
                    finished += 1
                    continue
                pending[seq] = payload
                while next_seq in pending:
                    dets = pending.pop(next_seq)
                    run.slots.release()
                    dets.timings["latency"] = dets.timings.get("read", 0.0) + \
                        (time.perf_counter() - run.queued_at.pop(next_seq)) * 1e3
                    next_seq += 1
                    self.stats.add(dets)
                    yield dets
        finally:
            run.stop.set()
            for t in threads:
                t.join(timeout=5)
            self.stats.finish(time.perf_counter() - started)

    def _read(self, run: "_Run", frames: Iterable[Frame]) -> None:
        """The reader thread: frames into the inbox, then one end marker per worker."""
        try:
            for frame in frames:
                if run.stop.is_set():
                    return
                self._enqueue(run.inbox, frame, run.stop)
        except Exception as exc:  # a source failure ends the run with its message
            run.outbox.put(("error", None, PipelineError(f"source failed: {type(exc).__name__}: {exc}"), exc))
        finally:
            for _ in range(self.workers):
                self._enqueue(run.inbox, _END, run.stop, never_drop=True)

    def _work(self, run: "_Run", index: int) -> None:
        """Worker thread `index`: its own backend, frames from the inbox, numbered results to the outbox."""
        backend = None
        try:
            backend = self.factory(index)
            while not run.stop.is_set():
                if not self._acquire(run.slots, run.stop):
                    break
                with run.take_lock:  # sequence numbers follow the queue order, so results can be re-ordered
                    item = self._dequeue(run.inbox, run.stop)
                    seq = run.taken
                    if item is not _END and item is not None:
                        run.taken += 1
                if item is _END or item is None:
                    run.slots.release()
                    break
                run.queued_at[seq] = item.queued_at
                waited = (time.perf_counter() - item.queued_at) * 1e3
                try:
                    dets = detect(backend, self.meta, item, self.cfg, self.keep_images, self.head)  # cfg may change
                except Exception as exc:
                    raise PipelineError(f"worker {index} failed on {item.source or 'frame'} #{item.index}: "
                                        f"{type(exc).__name__}: {exc}") from exc
                dets.worker = index
                dets.timings["queue"] = waited
                run.outbox.put(("ok", seq, dets, None))
        except PipelineError as exc:
            run.outbox.put(("error", None, exc, exc.__cause__))
        except Exception as exc:
            run.outbox.put(("error", None, PipelineError(f"worker {index} failed: {type(exc).__name__}: {exc}"), exc))
        finally:
            if backend is not None:
                backend.close()
            run.outbox.put(("done", None, None, None))

    def _enqueue(self, inbox: "queue.Queue", item, stop: threading.Event, never_drop: bool = False) -> None:
        """Put a frame; a live source drops the oldest waiting frame rather than wait."""
        while not stop.is_set():
            try:
                if item is not _END:
                    item.queued_at = time.perf_counter()
                if self.live and not never_drop:
                    inbox.put_nowait(item)
                else:
                    inbox.put(item, timeout=POLL_S)
                return
            except queue.Full:
                if self.live and not never_drop:
                    try:
                        dropped = inbox.get_nowait()
                        if dropped is _END:  # never drop an end marker
                            inbox.put_nowait(dropped)
                        else:
                            self.stats.dropped += 1
                    except (queue.Empty, queue.Full):
                        pass

    @staticmethod
    def _acquire(slots: threading.Semaphore, stop: threading.Event) -> bool:
        while not stop.is_set():
            if slots.acquire(timeout=POLL_S):
                return True
        return False

    @staticmethod
    def _dequeue(inbox: "queue.Queue", stop: threading.Event):
        while not stop.is_set():
            try:
                return inbox.get(timeout=POLL_S)
            except queue.Empty:
                continue
        return None


class _Run:
    """The queues, flags and counters of one Pipeline.run, shared by its reader, workers and consumer."""

    def __init__(self, pipeline: Pipeline):
        self.inbox: queue.Queue = queue.Queue(pipeline.queue_size)
        self.outbox: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.take_lock = threading.Lock()
        self.taken = 0  # frames taken by workers so far: the next sequence number
        self.queued_at: dict[int, float] = {}  # sequence number -> when its frame was queued, until it is yielded
        self.slots = threading.Semaphore(pipeline.in_flight)  # released when the consumer takes a result
