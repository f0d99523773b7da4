"""The unit of work every source yields and the pipeline runs: one image and where it came from.

Its own module so that sources and tiling, which make frames, do not import the pipeline.
"""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Frame:
    """One image to run: (H, W, 3) uint8 RGB, plus where it came from."""

    image: np.ndarray
    index: int = 0
    source: str = ""
    read_ms: float = 0.0
    extra: dict = field(default_factory=dict)  # tile offsets and counts, carried to Detections.tile
    queued_at: float = 0.0  # time.perf_counter() when the pipeline's reader queued it (for its latency)
