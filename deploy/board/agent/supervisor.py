"""`python3 -m deploy.board.agent.supervisor --status FILE -- AGENT OPTIONS`: keep an installed model running.

What `studio board install` starts on a board without systemd (where systemd runs, it supervises
the agent itself). It runs the agent as its child and starts it again when it fails, after a pause
that doubles up to a minute (and drops back once it has run a while); an agent that ends cleanly
(its source ran out) is not restarted. TERM or INT stop the agent and then the supervisor. The
status file says its state, both pids and how often the agent was restarted.
"""
import argparse
import logging
import os
import signal
import subprocess
import sys
import time

from deploy.runtime.atomic import write_json_atomic

log = logging.getLogger("supervisor")
FIRST_PAUSE_S, LONGEST_PAUSE_S, SETTLED_S = 1.0, 60.0, 60.0


class Supervisor:
    """One agent child at a time; `run()` returns when told to stop or when the agent ends cleanly."""

    def __init__(self, status_file: str, agent_args: list):
        self.status_file, self.agent_args = status_file, agent_args
        self.child = None
        self.stopping = False
        self.restarts = 0

    def status(self, state: str, **more) -> None:
        write_json_atomic(self.status_file, {"state": state, "pid": os.getpid(), "restarts": self.restarts,
                                             "agent_pid": self.child.pid if self.child else None, **more})

    def stop(self, signum=None, _frame=None) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()

    def run(self) -> int:
        pause = FIRST_PAUSE_S
        while not self.stopping:
            started = time.monotonic()
            self.child = subprocess.Popen([sys.executable, "-s", "-m", "deploy.board.agent", *self.agent_args])
            if self.stopping:  # told to stop while the child was starting
                self.child.terminate()
            self.status("running")
            code = self.child.wait()
            if self.stopping or code == 0:
                self.status("stopped" if self.stopping else "ended", last_exit=code)
                return 0
            pause = FIRST_PAUSE_S if time.monotonic() - started > SETTLED_S else min(pause * 2, LONGEST_PAUSE_S)
            self.restarts += 1
            log.warning("the agent exited with code %s; starting it again in %.0f s", code, pause)
            self.status("restarting", last_exit=code)
            deadline = time.monotonic() + pause
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(0.1)
        self.status("stopped")
        return 0


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    split = args.index("--") if "--" in args else len(args)
    parser = argparse.ArgumentParser(prog="deploy.board.agent.supervisor", description=__doc__.splitlines()[0])
    parser.add_argument("--status", required=True, help="where the supervisor writes its state (JSON)")
    options = parser.parse_args(args[:split])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    supervisor = Supervisor(options.status, args[split + 1:])
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, supervisor.stop)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
