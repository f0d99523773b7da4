"""A real OpenSSH server on 127.0.0.1 standing in for a board: its own host key, one authorized key, a free port.

Run as root it needs /run/sshd (privilege separation); run as another user it can only
log that user in, which is all the tests need. Nothing here is reachable from the network.
"""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, kind: str = "ed25519") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "studio-test", "-f", str(path)], check=True)
    return path


@dataclass
class Sshd:
    """A running sshd; `restart(new_host_key=True)` comes back on the same port with another identity."""

    root: Path
    port: int
    user: str
    client_key: Path
    proc: subprocess.Popen | None = None

    @property
    def host_key(self) -> Path:
        return self.root / "host_ed25519"

    def start(self) -> Sshd:
        if not os.path.exists(SSHD):
            raise RuntimeError("the board tests need OpenSSH's sshd: make sysdeps (apt-get install openssh-server)")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        config = self.root / "sshd_config"
        config.write_text("\n".join([
            "ListenAddress 127.0.0.1", f"Port {self.port}", f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}", f"PidFile {self.root / 'sshd.pid'}",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no", "AllowTcpForwarding local",
            "X11Forwarding no", "PrintMotd no", "LogLevel VERBOSE", "MaxStartups 50",
            "Subsystem sftp internal-sftp", "",
        ]))
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=open(self.root / "sshd.log", "ab"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def restart(self, new_host_key: bool = False) -> None:
        self.stop()
        if new_host_key:
            self.host_key.unlink()
            self.host_key.with_suffix(".pub").unlink()
            keygen(self.host_key)
        self.start()


def start_sshd(root: Path) -> Sshd:
    root.mkdir(parents=True, exist_ok=True)
    keygen(root / "host_ed25519")
    client_key = keygen(root / "client_ed25519")
    (root / "authorized_keys").write_text(client_key.with_suffix(".pub").read_text())
    return Sshd(root, free_port(), getpass.getuser(), client_key).start()
