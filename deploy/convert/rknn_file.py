"""Read the int8 grids of a model's inputs and outputs from a built .rknn file.

rknn-toolkit2 2.5 stores, in the file's header, a Python-literal description of the
model that includes `'quant_tab'`: per input and output tensor, its quantization type,
scale and zero point. That is what the NPU runtime will use to (de)quantize, so it is
the truth to record in the sidecar and to compare with the scales a QAT model learned.
The layout is the toolkit's, not a documented format: a file without it reads as None.
"""
from __future__ import annotations

import ast
from pathlib import Path

_KEY = b"'quant_tab': "
_HEADER_BYTES = 1 << 20  # the description sits near the start; weights follow


def _balanced(data: bytes, start: int) -> bytes | None:
    """The `{...}` literal starting at `start`, braces balanced (none appear inside its strings)."""
    depth = 0
    for end in range(start, len(data)):
        char = data[end:end + 1]
        if char == b"{":
            depth += 1
        elif char == b"}":
            depth -= 1
            if depth == 0:
                return data[start:end + 1]
    return None


def quant_table(path: Path) -> dict[str, dict] | None:
    """{tensor name: {'qtype', 'scale', 'zero_point', ...}} for the model's inputs and outputs, or None."""
    with open(path, "rb") as f:
        data = f.read(_HEADER_BYTES)
    at = data.find(_KEY)
    if at < 0:
        return None
    literal = _balanced(data, at + len(_KEY))
    if literal is None:
        return None
    try:
        table = ast.literal_eval(literal.decode("utf-8"))
    except (ValueError, SyntaxError, UnicodeDecodeError):
        return None
    return table if isinstance(table, dict) else None


def output_grids(path: Path, outputs: list[str]) -> list[dict] | None:
    """Per output, {'name', 'dtype', 'scale', 'zero_point'} as the sidecar records it; None if unreadable."""
    table = quant_table(path)
    if table is None or not all(name in table for name in outputs):
        return None
    grids = []
    for name in outputs:
        entry = table[name]
        if entry.get("qtype") not in ("asym", "sym"):
            grids.append({"name": name, "dtype": "float16"})
            continue
        if not entry.get("scale") or not entry.get("zero_point"):  # a hybrid build records only min/max
            return None
        grids.append({"name": name, "dtype": "int8", "scale": float(entry["scale"][0]),
                      "zero_point": int(entry["zero_point"][0])})
    return grids
