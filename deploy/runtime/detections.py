"""The one detection result type used by evaluation, the live panel, JSON output and the board protocol."""
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from deploy.runtime.rotated import corners


@dataclass
class Detections:
    """Detections of one frame, in original-image pixels, ordered by score (ties by anchor index)."""

    boxes: np.ndarray  # (N, 4) float32 xyxy
    scores: np.ndarray  # (N,) float32
    classes: np.ndarray  # (N,) int32
    timings: dict[str, float] = field(default_factory=dict)  # per stage, milliseconds
    frame: int = 0  # index of the frame in its source
    source: str = ""  # where the frame came from (file, camera:0, a scene)
    tile: Optional[dict] = None  # for a tile of a large scene: offset, tile index, tile count
    image: Optional[np.ndarray] = None  # the frame (H, W, 3) RGB, kept only when a sink draws on it
    worker: int = -1  # which pipeline worker (on a board: which NPU core) produced it
    rboxes: Optional[np.ndarray] = None  # (N, 5) float32 cx, cy, w, h, angle in radians (oriented boxes);
    # `boxes` then holds the upright boxes around them
    georef: Optional[dict] = None  # a scene from a raster on a board: raster.georeference() of it, sent home

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    def to_dict(self, names: Optional[list[str]] = None) -> dict:
        """JSON-ready: one entry per detection, plus timings."""
        items = []
        turned = None if self.rboxes is None else zip(self.rboxes.tolist(), corners(self.rboxes).tolist())
        for box, score, cls in zip(self.boxes.tolist(), self.scores.tolist(), self.classes.tolist()):
            item = {"box": [round(v, 2) for v in box], "score": round(score, 4), "class": cls}
            if turned is not None:
                (cx, cy, w, h, angle), quad = next(turned)
                item["rbox"] = [round(cx, 2), round(cy, 2), round(w, 2), round(h, 2), round(angle, 5)]
                item["corners"] = [[round(x, 2), round(y, 2)] for x, y in quad]
            if names is not None and 0 <= cls < len(names):
                item["name"] = names[cls]
            items.append(item)
        return {"frame": self.frame, "source": self.source, "worker": self.worker, "detections": items,
                "timings_ms": {k: round(v, 3) for k, v in self.timings.items()}}
