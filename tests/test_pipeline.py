"""The pipeline: frame order with several workers, drop-oldest for live sources, failures that never hang."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from deploy.runtime.backends import Backend
from deploy.runtime.frame import Frame
from deploy.runtime.metadata import ModelMeta
from deploy.runtime.pipeline import Pipeline, PipelineError, percentiles
from studio.core.heads import synthetic_heads


class ScriptedBackend(Backend):
    """Test double: returns synthetic heads whose single object encodes the frame index, after a delay."""

    layout = "nchw-float"

    def __init__(self, delays=(0.0,), fail_on: int | None = None):
        self.delays, self.fail_on, self.calls = delays, fail_on, 0

    def infer(self, tensor):
        index = int(round(float(tensor[0, 0, 0, 0]) * 255))  # the frame index, painted into the pixel
        time.sleep(self.delays[index % len(self.delays)])
        if index == self.fail_on:
            raise ValueError("boom")
        self.calls += 1
        return synthetic_heads(nc=4, imgsz=64, objects=index % 3, seed=index).outputs


META = ModelMeta(format="onnx", names=["a", "b", "c", "d"], imgsz=64, layout="rknn-split",
                 outputs=["box0", "cls0", "box1", "cls1", "box2", "cls2"], strides=[8, 16, 32])


def frames(n: int):
    for i in range(n):
        image = np.zeros((64, 64, 3), np.uint8)
        image[0, 0, 0] = i  # letterbox keeps a 64x64 image untouched, so the backend can read i back
        yield Frame(image, i, f"frame{i}")


@pytest.mark.parametrize("workers", [1, 3])
def test_results_come_out_in_frame_order(workers):
    pipeline = Pipeline(lambda i: ScriptedBackend(delays=(0.02, 0.0, 0.01, 0.005)), META, workers=workers)
    results = list(pipeline.run(frames(24)))
    assert [d.frame for d in results] == list(range(24))
    assert [len(d) > 0 for d in results] == [i % 3 > 0 for i in range(24)]
    assert pipeline.stats.frames == 24 and pipeline.stats.dropped == 0
    assert set(pipeline.stats.stage_ms) == {"read", "queue", "preprocess", "infer", "postprocess", "total"}
    assert all(set(d.timings) >= {"preprocess", "infer", "postprocess", "total"} for d in results)


def test_each_worker_gets_its_own_backend():
    made = []
    lock = threading.Lock()

    def factory(i):
        with lock:
            made.append(i)
        return ScriptedBackend()

    list(Pipeline(factory, META, workers=3).run(frames(6)))
    assert sorted(made) == [0, 1, 2]


class HeldBackend(ScriptedBackend):
    """Infers only once `ready` is set (waiting at most 30 s), as a worker busy with one long frame would."""

    def __init__(self, ready: threading.Event):
        super().__init__()
        self.ready = ready

    def infer(self, tensor):
        assert self.ready.wait(30), "the source never finished"
        return super().infer(tensor)


def test_live_source_drops_oldest_and_keeps_order():
    read_all = threading.Event()

    def camera():  # 40 frames while the one worker is still busy with its first
        yield from frames(40)
        read_all.set()

    pipeline = Pipeline(lambda i: HeldBackend(read_all), META, workers=1, live=True)
    results = list(pipeline.run(camera()))
    indices = [d.frame for d in results]
    assert len(indices) + pipeline.stats.dropped == 40
    # the worker held one frame; of the rest only the newest waited in the one-frame queue
    assert len(indices) <= 2 and pipeline.stats.dropped >= 38
    assert indices == sorted(indices) and indices[-1] == 39  # the newest frames are the ones kept


def test_worker_exception_is_raised_not_swallowed_and_does_not_hang():
    pipeline = Pipeline(lambda i: ScriptedBackend(fail_on=5), META, workers=2)
    with pytest.raises(PipelineError, match="frame5 #5: ValueError: boom") as info:
        list(pipeline.run(frames(50)))  # a hang here fails on the suite's per-test timeout
    assert isinstance(info.value.__cause__, ValueError)
    assert not [t for t in threading.enumerate() if t.name.startswith("pipeline-")]  # its threads have ended


def test_failing_backend_factory_is_reported():
    def factory(i):
        raise RuntimeError("no NPU")

    with pytest.raises(PipelineError, match="worker 0 failed: RuntimeError: no NPU"):
        list(Pipeline(factory, META, workers=1).run(frames(3)))


def test_source_failure_is_reported():
    def broken():
        yield from frames(2)
        raise OSError("camera unplugged")

    with pytest.raises(PipelineError, match="source failed: OSError: camera unplugged"):
        list(Pipeline(lambda i: ScriptedBackend(), META, workers=2).run(broken()))


def test_consumer_stopping_early_shuts_workers_down():
    pipeline = Pipeline(lambda i: ScriptedBackend(delays=(0.01,)), META, workers=2)
    for d in pipeline.run(frames(1000)):
        if d.frame == 3:
            break  # the generator is closed as the loop lets go of it: its finally stops and joins the threads
    assert not [t for t in threading.enumerate() if t.name.startswith("pipeline-")]


class CountingBackend(ScriptedBackend):
    """Counts frames inferred, across all workers."""

    def __init__(self, counter: list, lock: threading.Lock):
        super().__init__()
        self.counter, self.lock = counter, lock

    def infer(self, tensor):
        out = super().infer(tensor)
        with self.lock:
            self.counter[0] += 1
        return out


@pytest.mark.parametrize("workers", [1, 3])
def test_a_slow_consumer_holds_the_workers_back(workers):
    """Results in flight stay within 2 x workers while the consumer dawdles; a file source loses nothing."""
    inferred, lock = [0], threading.Lock()
    pipeline = Pipeline(lambda i: CountingBackend(inferred, lock), META, workers=workers)
    ahead = []
    taken = []
    for dets in pipeline.run(frames(30)):
        taken.append(dets.frame)
        time.sleep(0.01)  # a slow sink; during it, uncapped workers would run through the whole source
        with lock:
            ahead.append(inferred[0] - len(taken))
    assert taken == list(range(30)) and pipeline.stats.dropped == 0
    assert max(ahead) <= 2 * workers


def test_latency_counts_the_wait_in_the_queue_and_for_earlier_frames():
    """One worker at 20 ms a frame, fed as fast as it can take them: each frame waits for the one before it, so
    its latency (read to result) exceeds its own work by about one inference; two workers halve the wait."""
    waits = {}
    for workers in (1, 2):
        pipeline = Pipeline(lambda i: ScriptedBackend(delays=(0.02,)), META, workers=workers)
        results = list(pipeline.run(frames(20)))
        for d in results:
            assert d.timings["latency"] >= d.timings["queue"] + d.timings["total"] - 0.01
        stats = pipeline.stats.to_dict()
        lat = stats["latency_ms"]
        assert lat["p50"] <= lat["p95"] <= lat["p99"] and lat["p50"] >= 20.0
        assert set(stats["infer_ms_by_worker"]) == {str(w) for w in range(workers)}
        assert all(ms >= 19.0 for ms in stats["infer_ms_by_worker"].values())
        waits[workers] = stats["queue_ms"]["p50"]
    assert waits[1] >= 15.0 and waits[2] < waits[1]


def test_percentiles_are_nearest_rank():
    assert percentiles(range(1, 101)) == {"p50": 50, "p95": 95, "p99": 99}
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0}
    assert percentiles([]) == {}
