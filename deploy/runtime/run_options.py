"""The runtime's numeric options, declared once: the board agent, predict, eval, live and bench share these ranges."""
from deploy.runtime.options import Option, Options

RUN_OPTIONS = Options(
    Option("conf", float, 0.25, "minimum class score", low=0, high=1),
    Option("iou", float, 0.45, "NMS IoU threshold", low=0, high=1),
    Option("workers", int, 1, "pipeline workers; on the RK3588 worker i runs on NPU core i % 3", low=1, high=64),
    Option("max_det", int, 300, "most detections per image (per tile with tiles)", low=1),
    Option("max_frames", int, None, "stop after this many frames", low=1),
    Option("limit", int, None, "only the first N images", low=1),
    Option("imgsz", int, None, "input size in pixels", low=32),
    Option("tile", int, None, "cut large images into tiles of this side", low=64),
    Option("overlap", float, 0.2, "overlap between neighbouring tiles (a fraction)", low=0, high=0.9),
    Option("jpeg_quality", int, 0, "send frames as JPEG of this quality (0: none, only detections)", low=0, high=100),
)
