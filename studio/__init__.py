"""Edge Deploy Studio: take a YOLO detector from training to a Rockchip NPU board."""

import os

# Nothing in the studio may reach the network for weights, fonts or update checks.
os.environ.setdefault("YOLO_OFFLINE", "1")

__version__ = "0.1.0"
