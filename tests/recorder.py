"""A tiny HTTPS server that records every request's headers and answers 401.

It stands for "another origin" in redirect tests: whatever reaches it is in its
log, one JSON object per request (method, path, headers). Run as a program so
that tests stop it by pid; prints one JSON ready line with its port.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import select
import signal
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from processes import stop_process

READY_TIMEOUT = 15.0


@dataclass
class Recorder:
    url: str
    port: int
    log: Path
    # Mercurial checks certificates by host name, not IP: clients pin this instead
    # ([hostsecurity] 127.0.0.1:fingerprints = sha256:...).
    fingerprint: str
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    def hgrc(self) -> str:
        """Client config that lets hg talk TLS to it."""
        return f"[hostsecurity]\n127.0.0.1:fingerprints = {self.fingerprint}\n"

    def requests(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def stop(self) -> None:
        stop_process(self._proc)


def start_recorder(workdir: Path, ca, *, port: int = 0, host: str = "127.0.0.1") -> Recorder:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file = workdir / "recorder-cert.pem", workdir / "recorder-key.pem"
    cert_file.write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    key_file.write_bytes(cert.private_key_pem.bytes())
    log = workdir / "recorded.jsonl"
    proc = subprocess.Popen(
        [sys.executable, __file__, "--port", str(port), "--cert", str(cert_file),
         "--key", str(key_file), "--log", str(log)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT)
    line = proc.stdout.readline() if ready else b""
    if not line:
        proc.kill()
        proc.wait()
        raise RuntimeError("recorder did not start")
    port = json.loads(line)["port"]
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    digest = hashlib.sha256(der).hexdigest()
    fingerprint = "sha256:" + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    return Recorder(
        url=f"https://{host}:{port}/", port=port, log=log, fingerprint=fingerprint, _proc=proc
    )


def _serve(args) -> None:
    log = Path(args.log)

    class Handler(BaseHTTPRequestHandler):
        def _record(self):
            entry = {"method": self.command, "path": self.path, "headers": dict(self.headers)}
            with log.open("a") as f:
                f.write(json.dumps(entry) + "\n")
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="another origin"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = _record

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    for name in ("--cert", "--key", "--log"):
        parser.add_argument(name, required=True)
    _serve(parser.parse_args())
