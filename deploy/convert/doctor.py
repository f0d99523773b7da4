"""The int8 accuracy doctor's reading and writing: per-layer error from rknn-toolkit2, and the hybrid config.

`accuracy_analysis` writes `error_analysis.txt`: per compiled tensor, the cosine between
the float ("golden") and the simulated int8 output, both accumulated through the model
("entire") and for the layer alone, fed the float inputs ("single"). The single error
says which layers quantize badly by themselves; those are the ones to keep in float16
(hybrid quantization), listed by tensor name in the `custom_quantize_layers` of the
toolkit's quantization config. A cell reads `q_zero` where the int8 output is all
zeros (counted as cosine 0) and `f_zero` where the float one is (counted as 1: nothing
to lose).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from deploy.runtime.atomic import write_text_atomic

_VALUE = r"([-+\d.eE]+|nan|inf|q_zero|f_zero)"
_ROW = re.compile(rf"^\[(\w+)\]\s+(\S+)\s+{_VALUE}\s*\|\s*{_VALUE}\s+{_VALUE}\s*\|\s*{_VALUE}", re.M)
_NOT_LAYERS = ("Input", "exDataConvert", "OutputOperator")


@dataclass(frozen=True)
class LayerError:
    op: str
    tensor: str
    entire_cos: float
    single_cos: float

    def to_dict(self) -> dict:
        return asdict(self)


def _cosine(text: str) -> float:
    """A cosine cell; `q_zero` (the int8 output is all zeros: nothing survived) counts as 0."""
    return {"q_zero": 0.0, "f_zero": 1.0}[text] if text in ("q_zero", "f_zero") else float(text)


def layer_errors(analysis: Path) -> list[LayerError]:
    """Every compiled layer of an `error_analysis.txt`, in graph order; a file with none is an error."""
    errors = [LayerError(op, name, _cosine(ec), _cosine(sc))
              for op, name, ec, _, sc, _ in _ROW.findall(Path(analysis).read_text())
              if op not in _NOT_LAYERS]
    if not errors:
        raise ValueError(f"{analysis}: no per-layer rows could be read (an unknown toolkit format?)")
    return errors


def _nan_last(cos: float) -> float:
    return cos if cos == cos else 2.0  # nan: the toolkit could not compare; rank it after every real figure


def worst_layers(errors: list[LayerError], count: int, keep_int8: tuple[str, ...] = ()) -> list[LayerError]:
    """The `count` layers that lose most on their own (lowest single-layer cosine), except `keep_int8`
    (the model's outputs: their int8 grids are what the runtime dequantizes with)."""
    return sorted((e for e in errors if e.tensor not in keep_int8), key=lambda e: _nan_last(e.single_cos))[:count]


def mark_float16(config: Path, tensors: list[str]) -> None:
    """Add `tensors` to the custom_quantize_layers of a quantization config written by hybrid step 1.

    Edited as text: the toolkit refuses a config whose quantize_parameters changed, and a
    YAML round trip would rewrite their floats.
    """
    entries = "".join(f"    '{name.replace(chr(39), chr(39) * 2)}': float16\n" for name in tensors)
    lines = Path(config).read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("custom_quantize_layers:"):
            if line.split(":", 1)[1].strip() == "{}":
                lines[i] = "custom_quantize_layers:\n" + entries
            else:
                lines[i] = line + entries
            break
    else:
        raise ValueError(f"{config}: no custom_quantize_layers entry to extend")
    write_text_atomic(config, "".join(lines))
