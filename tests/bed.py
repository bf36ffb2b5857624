"""The end-to-end test bed: the Key Vault emulator and the authenticated hg server
sharing one test CA, and hg clients whose hgrc points the extension at both.

Passwords travel only through stdin (``hg vault set``) and the emulator; the
client's hgrc and argv never hold one.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trustme
from emulator import Emulator, start_emulator
from hgserver import HG, HgServer, start_hg_server
from servers.fixtures import write_ca_files
from servers.gitserver import GitServer

REF = "secret://hg/ci-bot/password"
# Variables through which a host or a CI hands a process its identity or names its job: a client
# inherits none of them from the machine that runs the tests (which may itself be a CI job).
AMBIENT_IDENTITY = (
    "HG",
    "AZURE_",
    "AZURESUBSCRIPTION_",
    "IDENTITY_",
    "IMDS_ENDPOINT",
    "MSI_",
    "ACTIONS_",
    "GITHUB_",
    "GITEA_",
    "FORGEJO_",
    "RUNNER_",
    "SYSTEM_",
    "TF_BUILD",
    "BUILD_",
    "GITLAB_",
    "CI_",
    "CI",
    "JENKINS_",
)


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Client:
    """Runs the venv's real hg, non-interactively, with its own HOME and hgrc."""

    root: Path
    home: Path
    hgrc: Path
    env: dict[str, str]
    outputs: list[str] = field(default_factory=list)
    # The group hg runs as (None: ours); see Bed.group.
    group: int | None = None

    def hg(
        self,
        *args: str,
        cwd: Path | None = None,
        stdin: bytes | None = None,
        timeout=120,
        program: str = HG,
    ) -> Result:
        start = time.monotonic()
        proc = subprocess.run(
            [program, *args],
            cwd=cwd or self.home,
            env=self.env,
            input=stdin if stdin is not None else b"",
            capture_output=True,
            timeout=timeout,
            check=False,
            group=self.group,
        )
        result = Result(
            [program, *args],
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
            time.monotonic() - start,
        )
        # Every captured stream, for the leak checks.
        self.outputs += [result.stdout, result.stderr]
        return result

    def append_config(self, text: str) -> None:
        with self.hgrc.open("a") as f:
            f.write(text if text.endswith("\n") else text + "\n")


@dataclass
class Bed:
    root: Path
    ca_file: Path
    emulator: Emulator
    # client() and provision() need only the server's url, username and password.
    server: HgServer | GitServer
    # The group every client of this bed runs hg as: a module that removes cache keys sets one
    # of its own (kernel_keys.private_group) so that it removes only keys its clients made.
    group: int | None = None

    def identity_env(self, principal: str | None = None) -> dict[str, str]:
        """The Azure identity environment: the managed identity, or a service principal."""
        env = {"AZURE_AUTHORITY_HOST": self.emulator.authority_host}
        if principal is None:
            env["IDENTITY_ENDPOINT"] = self.emulator.identity_endpoint
            env["IDENTITY_HEADER"] = self.emulator.identity_header
        else:
            p = self.emulator.principal(principal)
            env["AZURE_TENANT_ID"] = self.emulator.tenant_id
            env["AZURE_CLIENT_ID"] = p["client_id"]
            env["AZURE_CLIENT_SECRET"] = p["client_secret"]
        return env

    def client(
        self,
        root: Path,
        *,
        principal: str | None = None,
        ref: str = REF,
        prefix: str | None = None,
        vault_url: str | None = None,
        timeout: float = 5,
        extra: str = "",
        identity: dict[str, str] | None = None,
    ) -> Client:
        """A client whose identity is ``principal`` (a service principal), or the emulator's
        App Service managed identity, or exactly the variables of ``identity`` (a host or CI)."""
        home = root / "home"
        home.mkdir(parents=True, exist_ok=True)
        hgrc = root / "hgrc"
        hgrc.write_text(
            "[ui]\nusername = Test CI <ci@example.com>\n"
            "[extensions]\nkeyvault =\n"
            f"[web]\ncacerts = {self.ca_file}\n"
            "[keyvault]\n"
            f"url = {vault_url or self.emulator.vault_url}\n"
            f"cacerts = {self.ca_file}\n"
            "verify-challenge-resource = false\n"
            f"timeout = {timeout}\n"
            "[auth]\n"
            f"corp.prefix = {prefix or self.server.url}\n"
            f"corp.username = {self.server.username}\n"
            f"corp.vault = {ref}\n" + extra
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(AMBIENT_IDENTITY)}
        env.update(HOME=str(home), HGRCPATH=str(hgrc), LC_ALL="C", HGENCODING="utf-8")
        if identity is None:
            env.update(self.identity_env(principal))
        else:
            env.update(AZURE_AUTHORITY_HOST=self.emulator.authority_host, **identity)
        return Client(root=root, home=home, hgrc=hgrc, env=env, group=self.group)

    def provision(self, value: str | bytes | None = None, ref: str = REF) -> Result:
        """Store the server's password (or ``value``) under ``ref`` with ``hg vault set``."""
        admin = self.client(self.root / f"admin-{time.monotonic_ns()}", ref=ref)
        data = value if isinstance(value, bytes) else (value or self.server.password).encode()
        result = admin.hg("vault", "set", ref, stdin=data)
        assert result.returncode == 0, result.output
        return result

    def issue_token(self, principal: str) -> str:
        """An access token for ``principal`` straight from the emulator's token endpoint (its
        header piece is the same in every token this emulator issues: a needle for leak scans)."""
        p = self.emulator.principal(principal)
        form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": p["client_id"],
                "client_secret": p["client_secret"],
                "scope": "https://vault.azure.net/.default",
            }
        ).encode()
        authority = self.emulator.authority_host.rstrip("/")
        url = f"{authority}/{self.emulator.tenant_id}/oauth2/v2.0/token"
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(url, data=form, context=ctx, timeout=10) as resp:
            return json.loads(resp.read())["access_token"]

    def stop(self) -> None:
        try:
            self.server.stop()
        finally:
            self.emulator.stop()


def start_bed(
    root: Path,
    *,
    server_config: str = "",
    ca: trustme.CA | None = None,
    redirect_to: str | None = None,
    plain_http: bool = False,
    emulator_options: dict | None = None,
) -> Bed:
    """The emulator and the hg server; ``ca`` lets a test sign its own extra servers;
    ``emulator_options`` are more emulator flags (e.g. ``http_listen=[...]``)."""
    root.mkdir(parents=True, exist_ok=True)
    ca = ca or trustme.CA()
    ca_cert, ca_key = write_ca_files(ca, root / "ca")
    emulator = start_emulator(root, ca_cert=ca_cert, ca_key=ca_key, **(emulator_options or {}))
    try:
        server = start_hg_server(
            root / "hgserver",
            ca=ca,
            server_config=server_config,
            redirect_to=redirect_to,
            plain_http=plain_http,
        )
    except BaseException:
        emulator.stop()
        raise
    return Bed(root=root, ca_file=ca_cert, emulator=emulator, server=server)


def officer_vault(bed: Bed, monkeypatch):
    """The native core as the officer principal (environment link), set up through monkeypatch."""
    from hgext3rd.keyvault import _native

    for key, value in bed.identity_env("officer").items():
        monkeypatch.setenv(key, value)
    return _native.Vault(
        bed.emulator.vault_url,
        credential="environment",
        cacerts=str(bed.ca_file),
        verify_challenge_resource=False,
    )


def sdk_client(bed: Bed):
    """The official Python SDK as the officer: for what the extension never does (disable...)."""
    from azure.identity import ClientSecretCredential
    from azure.keyvault.secrets import SecretClient

    officer = bed.emulator.principal("officer")
    credential = ClientSecretCredential(
        bed.emulator.tenant_id,
        officer["client_id"],
        officer["client_secret"],
        authority=bed.emulator.authority_host,
        disable_instance_discovery=True,
        connection_verify=str(bed.ca_file),
    )
    return SecretClient(
        bed.emulator.vault_url,
        credential,
        verify_challenge_resource=False,
        connection_verify=str(bed.ca_file),
    )


def files_containing(roots: list[Path], needle: bytes) -> tuple[list[Path], int]:
    """Files under ``roots`` whose bytes contain ``needle``, and how many files were searched."""
    hits, searched = needles_in_files(roots, {"needle": needle})
    return [path for path, _ in hits], searched


def needles_in_files(
    roots: list[Path],
    needles: dict[str, bytes],
    skip: Callable[[Path], bool] = lambda path: False,
) -> tuple[list[tuple[Path, str]], int]:
    """(file, needle name) for every named needle found in a regular file under ``roots``
    (symlinks not followed, unreadable files passed over, ``skip`` ones left out), and how many
    files were searched: the file walk of every leak scan."""
    hits: list[tuple[Path, str]] = []
    searched = 0
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file() or path.is_symlink() or skip(path):
                continue
            searched += 1
            try:
                data = path.read_bytes()
            except OSError:
                continue
            hits += [(path, name) for name, needle in needles.items() if needle in data]
    return hits, searched
