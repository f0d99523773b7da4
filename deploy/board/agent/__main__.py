"""`python3 -m deploy.board.agent --model M --source S --run-file R`: what `studio board run` starts on a board."""
import argparse
import logging
import signal
import sys

from deploy.board.agent.server import Agent, AgentConfig


def parse(argv) -> AgentConfig:
    p = argparse.ArgumentParser(prog="deploy.board.agent", description=__doc__)
    p.add_argument("--model", required=True, help="the .rknn (or .onnx) with its sidecar")
    p.add_argument("--source", required=True, help="camera:N, a video, an image folder or glob")
    p.add_argument("--run-file", required=True, help="where the port, pid and outcome are written")
    p.add_argument("--backend", default="rknnlite", choices=("rknnlite", "ort"))
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--conf", type=float, default=0.25)
    p.add_argument("--iou", type=float, default=0.45)
    p.add_argument("--jpeg-quality", type=int, default=0, help="send frames as JPEG of this quality (0: none)")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--loop", action="store_true", help="start a finished folder or video again")
    p.add_argument("--idle-exit", type=float, default=30.0, help="stop after this long without a host")
    a = p.parse_args(argv)
    return AgentConfig(a.model, a.source, a.run_file, a.backend, a.workers, a.port, a.conf, a.iou,
                       a.jpeg_quality, a.max_frames, a.loop, a.idle_exit)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    agent = Agent(parse(sys.argv[1:] if argv is None else argv))
    def on_signal(signum, _frame) -> None:
        logging.getLogger("agent").info("signal %s: stopping", signal.Signals(signum).name)
        agent.stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):  # SIGHUP stays ignored (nohup): a closed SSH session is no reason
        signal.signal(sig, on_signal)
    agent.serve()
    return 1 if agent.state["state"] == "failed" else 0


if __name__ == "__main__":
    sys.exit(main())
