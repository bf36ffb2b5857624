"""pytest fixtures and helpers for the authenticated hg test server.

Not a conftest: a test module (or the top-level conftest) imports the fixtures it wants, e.g.
``from servers.fixtures import hg_client, hg_server``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from hgserver import HG, HgServer, start_hg_server


@dataclass
class HgClient:
    """Runs the venv's hg non-interactively with its own HOME and a single hgrc (HGRCPATH)."""

    home: Path
    hgrc: Path
    env: dict[str, str]

    def run(
        self, *args: str, cwd: Path | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        # stdin is /dev/null: hg sees no tty, so it is non-interactive as in CI.
        return subprocess.run(
            [HG, *args],
            cwd=cwd or self.home,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def append_config(self, text: str) -> None:
        with self.hgrc.open("a") as f:
            f.write(text if text.endswith("\n") else text + "\n")

    def add_auth(
        self,
        server: HgServer,
        *,
        username: str | None = None,
        password: str | None = None,
        name: str = "hgserver",
    ) -> None:
        """An [auth] entry for the server, in the hgrc file (never in argv)."""
        self.append_config(
            "[auth]\n"
            f"{name}.prefix = {server.url}\n"
            f"{name}.username = {username if username is not None else server.username}\n"
            f"{name}.password = {password if password is not None else server.password}\n"
        )


def make_hg_client(root: Path, *, ca_file: str | None = None) -> HgClient:
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    hgrc = root / "client.hgrc"
    text = "[ui]\nusername = test client <client@localhost>\n"
    if ca_file:
        text += f"[web]\ncacerts = {ca_file}\n"
    hgrc.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HG")}
    env.update(HGRCPATH=str(hgrc), HOME=str(home), HGENCODING="utf-8", LC_ALL="C")
    env.pop("XDG_CONFIG_HOME", None)
    return HgClient(home=home, hgrc=hgrc, env=env)


def write_ca_files(ca: trustme.CA, directory: Path) -> tuple[Path, Path]:
    """The CA's certificate and private key as PEM files, so that a server that takes files
    (the Key Vault emulator: ``start_emulator(..., ca_cert=cert, ca_key=key)``) shares the CA
    with ``start_hg_server(..., ca=ca)``. ``trustme.CA.from_pem`` goes the other way."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "test-ca.pem", directory / "test-ca-key.pem"
    ca.cert_pem.write_to_path(str(cert))
    key.touch(mode=0o600)
    ca.private_key_pem.write_to_path(str(key))
    return cert, key


@pytest.fixture
def test_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def hg_server(tmp_path: Path) -> Iterator[HgServer]:
    server = start_hg_server(tmp_path / "hgserver")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def module_hg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HgServer]:
    """One server for a whole test module (saves ~1 s per test); tests that write should use
    their own repository: ``server.add_repo(name)``."""
    server = start_hg_server(tmp_path_factory.mktemp("hgserver"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hg_client(tmp_path: Path, hg_server: HgServer) -> HgClient:
    return make_hg_client(tmp_path / "client", ca_file=hg_server.ca_file)
