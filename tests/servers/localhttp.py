"""A plain-HTTP server on a thread of this process, with a request log: the base of the bed's
small AWS metadata servers (container credentials, IMDSv2). They live on loopback (or, for
the link-local metadata addresses, only inside a test's own network namespace: tests/netns.py),
speak HTTP as the real ones do, and are stopped with the test (``stop()``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

# (status, headers, body) for a request (method, path, headers).
Handler = Callable[[str, str, dict[str, str]], tuple[int, dict[str, str], bytes]]


@dataclass
class LoggedRequest:
    method: str
    path: str
    headers: dict[str, str]
    status: int


@dataclass
class LocalHttpServer:
    host: str
    port: int
    log: list[LoggedRequest] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def serve(handler: Handler, host: str = "127.0.0.1", port: int = 0) -> LocalHttpServer:
    """Answers every request with ``handler`` and logs it (method, path, headers, status)."""
    state = LocalHttpServer(host=host, port=0)

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, out_headers, body = handler(self.command, self.path, headers)
            state.log.append(LoggedRequest(self.command, self.path, headers, status))
            self.send_response(status)
            for k, v in out_headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = _answer

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass

    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    state._server = server
    state._thread = threading.Thread(target=server.serve_forever, daemon=True)
    state._thread.start()
    return state
