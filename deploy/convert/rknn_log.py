"""What rknn-toolkit2's build log says about the compiled graph: each NPU layer, its data type and cycle estimate.

A verbose build prints a table with one row per compiled layer (op type, data type,
target, shapes, `Cycles(DDR/NPU/Total)`, ...). From it the studio reports how much of a
model really runs in int8 (float16 islands are slow and a sign of a mis-placed grid)
and the toolkit's static cycle estimate, a latency proxy available without a board.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_ROW = re.compile(r"^D RKNN: \[[^\]]+\]\s+(\d+)\s+(\w+)\s+(\w+)\s+(NPU|CPU)\s.*?\s(\d+)/(\d+)/(\d+)\s", re.M)


@dataclass(frozen=True)
class Layer:
    index: int
    op: str
    dtype: str  # INT8, FLOAT16, ...
    target: str  # NPU or CPU
    cycles: int  # the toolkit's estimate: max of memory and compute cycles


def layers(log_text: str) -> list[Layer]:
    """The compiled layers of the (last) build in a log, in order."""
    rows = [Layer(int(i), op, dtype, target, int(total))
            for i, op, dtype, target, _, _, total in _ROW.findall(log_text)]
    # a log may hold more than one build (a rebuild for simulation): keep the last table
    starts = [k for k, row in enumerate(rows) if row.index <= 1]
    return rows[starts[-1]:] if starts else rows


def summary(log_path: Path) -> dict | None:
    """{'layers', 'convs', 'int8_convs', 'float16_convs', 'mcycles'} for a build log; None without a layer table."""
    found = layers(Path(log_path).read_text(errors="replace")) if Path(log_path).is_file() else []
    if not found:
        return None
    convs = [layer for layer in found if layer.op.startswith("Conv")]
    return {"layers": len(found), "convs": len(convs), "int8_convs": sum(c.dtype == "INT8" for c in convs),
            "float16_convs": sum(c.dtype == "FLOAT16" for c in convs),
            "mcycles": round(sum(layer.cycles for layer in found) / 1e6, 3)}
