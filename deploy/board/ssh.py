"""SSH to a board with paramiko, checking its host key against the studio's known_hosts.

The first connection to a board stops with the key's fingerprint; the user compares it
with the board's (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the board) and
trusts it once (--trust, or the GUI's confirmation). A key that later changes is refused.
Authentication: the profile's key file, ssh-agent, ~/.ssh's keys; a password only when the
caller passes one (asked once per run, never stored or logged).
"""
from __future__ import annotations

import base64
import hashlib
import logging
from pathlib import Path

import paramiko

from deploy.board.profiles import BoardProfile
from deploy.errors import UnreachableError, UserError
from deploy.runtime.atomic import write_text_atomic

TIMEOUT_S = 10
# paramiko's transport thread logs its own traceback (a port that is not SSH, a dropped link) before
# the caller's one-line error; with a handler of its own it no longer falls through to stderr.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form: SHA256:<base64 of the key blob's digest, unpadded>."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class UnknownHostKey(UserError):
    """The board's key is not trusted yet; `fingerprint` is what the user must compare."""

    def __init__(self, board: str, key: paramiko.PKey):
        self.fingerprint = fingerprint(key)
        self.key_type = key.get_name()
        super().__init__(f"{board}: the board's host key is not trusted yet ({self.key_type} {self.fingerprint}). "
                         "Compare it with the board's own (on the board: ssh-keygen -lf "
                         "/etc/ssh/ssh_host_ed25519_key.pub) and, if they match, run again with --trust")


class HostKeyChanged(UserError):
    """The board answered with another key than the trusted one: refused."""


def _save_keys(keys: paramiko.HostKeys, path: Path) -> None:
    """known_hosts in OpenSSH's format, replaced in one step."""
    write_text_atomic(path, "".join(f"{host} {kt} {k.get_base64()}\n" for host, entry in keys.items()
                                    for kt, k in entry.items()), mode=0o600)


class _TrustPolicy(paramiko.MissingHostKeyPolicy):
    """An unknown key is accepted only when the user said to trust it; it is then saved."""

    def __init__(self, board: str, known_hosts: Path, trust: bool | str):
        self.board, self.known_hosts, self.trust = board, known_hosts, trust

    def missing_host_key(self, client, hostname, key):
        if self.trust is not True and self.trust != fingerprint(key):
            raise UnknownHostKey(self.board, key)
        keys = paramiko.HostKeys()
        if self.known_hosts.exists():
            keys.load(str(self.known_hosts))
        keys.add(hostname, key.get_name(), key)
        _save_keys(keys, self.known_hosts)
        client.get_host_keys().add(hostname, key.get_name(), key)


def connect(profile: BoardProfile, known_hosts: Path, trust: bool | str = False,
            password: str | None = None, timeout: float = TIMEOUT_S) -> paramiko.SSHClient:
    """An authenticated SSH client to the board, or a one-line error (UserError or UnreachableError).

    trust: True trusts whatever key an unknown board shows; a fingerprint string trusts only that key.
    """
    client = paramiko.SSHClient()
    if known_hosts.exists():
        client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(_TrustPolicy(profile.name, known_hosts, trust))
    key = str(Path(profile.key).expanduser()) if profile.key else None
    if key is not None and not Path(key).is_file():
        raise UserError(f"{profile.name}: the key file {profile.key} is gone; point the profile at another "
                        f"(studio board add {profile.name} ... --key PATH --replace)")
    try:
        client.connect(profile.host, port=profile.port, username=profile.user, key_filename=key, password=password,
                       timeout=timeout, banner_timeout=timeout, auth_timeout=timeout, allow_agent=True,
                       look_for_keys=key is None)
    except UserError:
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise HostKeyChanged(
            f"{profile.name}: the board's host key CHANGED (trusted {fingerprint(exc.expected_key)}, now "
            f"{fingerprint(exc.key)}); refusing to connect. If the board was reinstalled, forget the old key "
            f"with: studio board forget-key {profile.name}; otherwise someone may be in between") from None
    except paramiko.AuthenticationException:
        client.close()
        how = f"key {profile.key}" if profile.key else "ssh-agent and ~/.ssh keys"
        raise UserError(f"{profile.name}: {profile.address} refused the login ({how}"
                        f"{', password' if password else ''}); put your public key in the board's "
                        "~/.ssh/authorized_keys, or pass --key, or --ask-password") from None
    except paramiko.SSHException as exc:
        client.close()
        if "authentication" in str(exc).lower():  # "No authentication methods available": no key, agent, password
            raise UserError(f"{profile.name}: no way to log in as {profile.user} ({exc}); pass --key, start "
                            "ssh-agent, or use --ask-password") from None
        if "banner" in str(exc).lower():  # something answers on the port, but it does not speak SSH
            raise UserError(f"{profile.name}: {profile.host} port {profile.port} answers, but not as an SSH "
                            "server; is the port right? (studio board add ... --port, usually 22)") from None
        raise UnreachableError(f"{profile.name}: cannot reach {profile.address} ({type(exc).__name__}: "
                               f"{exc or 'no answer'})") from None
    except (TimeoutError, OSError) as exc:
        client.close()
        raise UnreachableError(f"{profile.name}: cannot reach {profile.address} ({type(exc).__name__}: "
                               f"{exc or 'no answer'})") from None
    return client


def forget_host_key(profile: BoardProfile, known_hosts: Path) -> bool:
    """Remove the trusted key of a board (after a reinstall); True if there was one."""
    if not known_hosts.exists():
        return False
    name = profile.host if profile.port == 22 else f"[{profile.host}]:{profile.port}"
    keys = paramiko.HostKeys(str(known_hosts))
    if name not in keys:
        return False
    del keys[name]
    _save_keys(keys, known_hosts)
    return True
