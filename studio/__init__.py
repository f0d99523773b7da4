"""Edge Deploy Studio: take a YOLO detector from training to a Rockchip NPU board."""

import os

# Nothing in the studio may reach the network for weights, fonts or update checks, nor install
# packages: ultralytics would otherwise pip-install what it thinks missing (say, on an odd image).
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

__version__ = "0.1.0"
