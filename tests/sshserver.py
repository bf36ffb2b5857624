"""A real OpenSSH server on loopback for ssh:// tests.

sshd runs in the foreground with its own config, host key, authorized_keys and
pid file in one work directory, listening on 127.0.0.1 on a free port, public
key authentication only. The remote command is Mercurial's ``hg serve --stdio``
(clients set ``ui.remotecmd`` to the venv's hg); ``SetEnv`` gives the server
side its own hgrc. Stopped by pid.

Keys are made in memory (``cryptography``): no private key file is ever
written by this module, so a leak scan may search its directory too.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hgserver import HG, _free_port
from processes import stop_process

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
START_TIMEOUT = 15.0
# sshd refuses to start without its privilege separation directory (Debian's service makes it).
PRIVSEP_DIR = Path("/run/sshd")


def new_key_pair(comment: str = "hg-keyvault-test") -> tuple[bytes, str]:
    """An ed25519 key: the OpenSSH private key (bytes) and the public key line."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, f"{public.decode()} {comment}"


@dataclass
class SshServer:
    workdir: Path
    port: int
    user: str
    known_hosts: Path
    authorized_keys: Path
    log: Path
    repos_dir: Path
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def repo_url(self, name: str = "repo") -> str:
        # ssh://user@host:port//absolute/path
        return f"ssh://{self.user}@127.0.0.1:{self.port}/{self.repos_dir / name}"

    def origin(self) -> str:
        return f"ssh://127.0.0.1:{self.port}/"

    def add_repo(self, name: str, env: dict[str, str]) -> Path:
        path = self.repos_dir / name
        subprocess.run([HG, "init", str(path)], env=env, check=True, capture_output=True)
        (path / "README").write_text("seeded over ssh\n")
        subprocess.run(
            [HG, "-R", str(path), "commit", "-A", "-q", "-m", "seed", "-u", "seed <s@localhost>"],
            env=env,
            check=True,
            capture_output=True,
        )
        return path

    def authorize(self, public_key_line: str) -> None:
        with self.authorized_keys.open("a") as f:
            f.write(public_key_line.strip() + "\n")

    def ssh_command(self) -> str:
        """``ui.ssh`` for clients: only this server's host key, no prompts, no ssh_config."""
        return (
            f"ssh -F none -o BatchMode=yes -o StrictHostKeyChecking=yes "
            f"-o UserKnownHostsFile={self.known_hosts} -o IdentityFile=none"
        )

    def auth_log(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        stop_process(self._proc)


def start_sshd(workdir: Path) -> SshServer:
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    repos = workdir / "repos"
    repos.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    host_key = workdir / "ssh_host_ed25519_key"
    private, public = new_key_pair("hg-keyvault-test-host")
    fd = os.open(host_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    authorized = workdir / "authorized_keys"
    authorized.write_text("")
    server_hgrc = workdir / "server.hgrc"
    server_hgrc.write_text("[ui]\nusername = ssh server <ssh@localhost>\n")
    user = pwd.getpwuid(os.geteuid()).pw_name
    log = workdir / "sshd.log"
    port = _free_port()
    config = workdir / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {host_key}\n"
        f"PidFile {workdir / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized}\n"
        # The work dir lives under a temp dir whose modes StrictModes would refuse.
        "StrictModes no\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "PermitRootLogin prohibit-password\n"
        f"AllowUsers {user}\n"
        "AllowAgentForwarding no\n"
        "AllowTcpForwarding no\n"
        "X11Forwarding no\n"
        "PrintMotd no\n"
        f"SetEnv HGRCPATH={server_hgrc} HGPLAIN=1 HGENCODING=utf-8\n"
        "LogLevel VERBOSE\n"
    )
    known = workdir / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {public}\n")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = SshServer(
        workdir=workdir,
        port=port,
        user=user,
        known_hosts=known,
        authorized_keys=authorized,
        log=log,
        repos_dir=repos,
        _proc=proc,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while "Server listening on 127.0.0.1" not in server.auth_log():
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError("sshd did not start:\n" + server.auth_log())
        time.sleep(0.02)
    with contextlib.closing(socket.create_connection(("127.0.0.1", port), timeout=5)):
        pass
    return server
