"""Every numeric option of every `studio` command, one range per name: checked before any command starts work.

The runtime's and the compression stages' tables are merged with the options only the other
commands have; a name declared with two different ranges fails at import, so one name means
one thing everywhere. studio/cli.py checks every command's values against this table.
"""
from __future__ import annotations

from deploy.runtime.options import Option, Options, ranges
from deploy.runtime.run_options import RUN_OPTIONS
from studio.core.compress.options import IMGSZ, SECTIONS

COMMAND_OPTIONS = Options(
    Option("epochs", int, None, "training epochs", low=1),
    Option("batch", int, None, "images per step", low=1),
    Option("nproc", int, 1, "processes", low=1),
    Option("report_count", int, 8, "images for the verification report", low=1),
    Option("doctor_layers", int, 3, "layers the int8 doctor keeps in float16", low=1),
    Option("images", int, None, "how many images", low=1),
    Option("size", int, None, "image or tile side in pixels", low=32),
    Option("scene_size", int, 2048, "side of the large scenes", low=32),
    Option("scenes", int, 0, "large scenes", low=0),
    Option("seed", int, 0, "random seed", low=0),
    Option("min_area", float, 0.5, "share of a cut object's area kept in a tile", low=0, high=1, positive=True),
    Option("nc", int, 80, "number of classes", low=1),
    Option("objects", int, None, "planted objects", low=1),
    Option("repeat", int, None, "timed runs", low=1),
    Option("frames", int, None, "frames", low=1),
    Option("tiles", int, 64, "tiles", low=1),
    Option("port", int, 22, "TCP port", low=1, high=65535),
    Option("target", float, None, "latency target", positive=True),
)
RANGES = ranges(RUN_OPTIONS, Options(IMGSZ), *SECTIONS.values(), COMMAND_OPTIONS)
