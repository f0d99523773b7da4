"""`python3 -m deploy.board.agent --model M --source S --run-file R`: what `studio board run` starts on a board."""
import logging
import signal
import sys

from deploy.board.agent.options import AGENT_OPTIONS, AgentConfig
from deploy.board.agent.server import Agent


def parse(argv) -> AgentConfig:
    return AgentConfig(**vars(AGENT_OPTIONS.parser("deploy.board.agent", __doc__).parse_args(argv)))


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    agent = Agent(parse(sys.argv[1:] if argv is None else argv))
    def on_signal(signum, _frame) -> None:
        logging.getLogger("agent").info("signal %s: stopping", signal.Signals(signum).name)
        agent.gate.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):  # SIGHUP stays ignored (nohup): a closed SSH session is no reason
        signal.signal(sig, on_signal)
    agent.serve()
    return 1 if agent.state["state"] == "failed" else 0


if __name__ == "__main__":
    sys.exit(main())
