"""A real SMTP server requiring AUTH, on loopback, for ``hg email`` tests.

Run as a program (so tests stop it by pid): aiosmtpd with STARTTLS (a
certificate from the test CA) and an authenticator that accepts one user and
the password read from stdin (never argv). Each message received is written to
the spool directory; each login attempt is one JSON line in ``logins.jsonl``
(user and outcome, never the password tried). Prints one JSON ready line.

    server = start_smtp_server(workdir, ca, user="mailer", password="...")
    server.port, server.messages(), server.logins(), server.stop()
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from processes import stop_process

READY_TIMEOUT = 20.0


@dataclass
class SmtpServer:
    host: str
    port: int
    user: str
    spool: Path
    pid: int
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    def messages(self) -> list[bytes]:
        return [p.read_bytes() for p in sorted(self.spool.glob("*.eml"))]

    def logins(self) -> list[dict]:
        log = self.spool / "logins.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line]

    def stop(self) -> None:
        stop_process(self._proc)


def start_smtp_server(workdir: Path, ca, *, user: str, password: str) -> SmtpServer:
    workdir = Path(workdir)
    spool = workdir / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file = workdir / "smtp-cert.pem", workdir / "smtp-key.pem"
    cert_file.write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    key_file.write_bytes(cert.private_key_pem.bytes())
    cmd = [
        sys.executable, __file__, "--user", user, "--spool", str(spool),
        "--cert", str(cert_file), "--key", str(key_file),
    ]  # fmt: skip
    with open(workdir / "smtp-stderr.log", "ab") as stderr:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
    proc.stdin.write(password.encode() + b"\n")
    proc.stdin.close()
    ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT)
    line = proc.stdout.readline() if ready else b""
    if not line:
        proc.kill()
        proc.wait()
        raise RuntimeError(
            "smtp server did not start: " + (workdir / "smtp-stderr.log").read_text()
        )
    info = json.loads(line)
    return SmtpServer(
        host="127.0.0.1", port=info["port"], user=user, spool=spool, pid=proc.pid, _proc=proc
    )


def _serve(args) -> None:
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    password = sys.stdin.readline().rstrip("\n").encode()
    spool = Path(args.spool)
    lock = threading.Lock()
    counter = [0]

    def record_login(user: str, ok: bool) -> None:
        with lock, (spool / "logins.jsonl").open("a") as f:
            f.write(json.dumps({"user": user, "ok": ok}) + "\n")

    def authenticator(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode(errors="replace")
        ok = user == args.user and auth_data.password == password
        record_login(user, ok)
        return AuthResult(success=ok, handled=False)

    class Spool:
        async def handle_DATA(self, server, session, envelope):
            with lock:
                counter[0] += 1
                path = spool / f"{counter[0]:04d}.eml"
            path.write_bytes(envelope.original_content or envelope.content)
            return "250 OK"

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    # aiosmtpd cannot bind port 0 (it connects to its own port to check it is up).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        Spool(),
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=True,
        require_starttls=True,
        tls_context=context,
    )
    controller.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)
    done.wait()
    controller.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("--user", "--spool", "--cert", "--key"):
        parser.add_argument(name, required=True)
    _serve(parser.parse_args())
