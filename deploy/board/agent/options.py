"""The agent's options, declared once: its own parser and the host's command line that starts it both come from here."""
from deploy.runtime.options import Option, Options

AGENT_OPTIONS = Options(
    Option("model", str, None, "the .rknn (or .onnx) with its sidecar", required=True),
    Option("source", str, None, "camera:N, a video, an image folder or glob", required=True),
    Option("run_file", str, None, "where the port, pid and outcome are written", required=True),
    Option("backend", str, "rknnlite", "rknnlite on the board; ort where a host stands in for one",
           choices=("rknnlite", "ort")),
    Option("workers", int, 3, "pipeline workers; on the RK3588 worker i runs on NPU core i % 3", low=1, high=64),
    Option("port", int, 0, "0: any free port (the run file says which)", low=0, high=65535),
    Option("conf", float, 0.25, "minimum class score", low=0, high=1),
    Option("iou", float, 0.45, "NMS IoU threshold", low=0, high=1),
    Option("jpeg_quality", int, 0, "send frames as JPEG of this quality (0: none, only detections)", low=0, high=100),
    Option("max_frames", int, None, "stop after this many frames", low=1),
    Option("loop", bool, False, "start a finished folder or video again"),
    Option("idle_exit", float, 30.0, "stop after this many seconds without a connected host", positive=True),
)
AgentConfig = AGENT_OPTIONS.dataclass("AgentConfig", doc="What one agent run does; fields are AGENT_OPTIONS.")
# What the host chooses for a run; the model, the run file and the port are the push's and the agent's to fill in.
RunOptions = AGENT_OPTIONS.dataclass("RunOptions", leave_out=("model", "run_file", "port"),
                                     doc="What `studio board run` asks of the agent; fields are AGENT_OPTIONS.")
