"""A loopback listener standing for an HTTP proxy (HTTP_PROXY / http_proxy of a CI runner): it
records what each connection sent first (a proxied request line names the absolute URL, with
its headers) and closes it. A test asserts it saw nothing: host-local credential endpoints
(IMDS, the ECS container endpoint, App Service, Arc) must be asked directly."""

from __future__ import annotations

import socket
import threading


class RecordingProxy:
    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed by stop()
            with conn:
                conn.settimeout(2)
                try:
                    self.connections.append(conn.recv(4096))
                except OSError:
                    self.connections.append(b"")

    def env(self) -> dict[str, str]:
        """The http proxy variables pointing here; no exemptions and no https or catch-all proxy
        (empty: the vault and moto are https and would rightly use those)."""
        env = {"HTTP_PROXY": self.url, "http_proxy": self.url}
        for name in (
            "NO_PROXY",
            "no_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ):
            env[name] = ""
        return env

    def stop(self) -> None:
        self.sock.close()
        self.thread.join(timeout=5)
