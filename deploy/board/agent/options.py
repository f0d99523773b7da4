"""The agent's options, declared once: its own parser and the host's command line that starts it both come from here."""
from deploy.runtime.options import Option, Options
from deploy.runtime.run_options import RUN_OPTIONS

AGENT_OPTIONS = Options(
    Option("model", str, None, "the .rknn (or .onnx) with its sidecar", required=True),
    Option("source", str, None, "camera:N, a video, an image folder or glob", required=True),
    Option("run_file", str, None, "where the port, pid and outcome are written", required=True),
    Option("backend", str, "rknnlite", "rknnlite on the board; ort where a host stands in for one",
           choices=("rknnlite", "ort")),
    RUN_OPTIONS["workers"].but(default=3),
    Option("port", int, 0, "0: any free port (the run file says which)", low=0, high=65535),
    RUN_OPTIONS["conf"],
    RUN_OPTIONS["iou"],
    RUN_OPTIONS["max_det"],
    RUN_OPTIONS["tile"],
    RUN_OPTIONS["overlap"],
    Option("multi_label", bool, False, "every class above conf is a candidate, not only each anchor's best (mAP)"),
    Option("raw_first", int, 0, "keep the input and raw outputs of the first N inferences beside the run file",
           low=0),
    RUN_OPTIONS["jpeg_quality"],
    RUN_OPTIONS["max_frames"],
    Option("loop", bool, False, "start a finished folder or video again"),
    Option("idle_exit", float, 30.0, "stop after this many seconds without a connected host (0: never, as a "
                                      "service)", low=0),
    Option("results", str, None, "also append every result to this file as a JSON line (a service's output)"),
)
AgentConfig = AGENT_OPTIONS.dataclass("AgentConfig", doc="What one agent run does; fields are AGENT_OPTIONS.")
# What the host chooses for a run; the model, the run file and the port are the push's and the agent's to fill in.
RunOptions = AGENT_OPTIONS.dataclass("RunOptions", leave_out=("model", "run_file", "port"),
                                     doc="What `studio board run` asks of the agent; fields are AGENT_OPTIONS.")
