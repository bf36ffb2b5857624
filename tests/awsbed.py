"""The AWS test bed: the authenticated hg server of tests/bed.py and moto (Secrets Manager, STS,
IAM) sharing one test CA, and hg clients configured with ``[keyvault] provider = aws``.

Secrets are provisioned with boto3 under the documented name rule (``keyvault.name-prefix`` +
the ref's path: ``secret://hg/ci-bot/password`` is ``hg-hg/ci-bot/password``, docs/usage.md
"AWS names") with the ref tag the product writes, or with ``hg vault set`` where the test is
about writing. A client's environment holds only what the test gives it: no AWS variable of
the machine, no ~/.aws, and ``AWS_EC2_METADATA_DISABLED=true`` unless the test plays an EC2
instance (so that nothing is ever sent to the metadata address from the machine's own namespace).
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import trustme
from bed import AMBIENT_IDENTITY, REF, Bed, Client, start_bed
from servers.motoserver import Moto, start_moto

PREFIX = "hg-"
SCHEME = "secret://"


def aws_name(ref: str, prefix: str = PREFIX) -> str:
    """The Secrets Manager name of a ``secret://`` ref (docs/usage.md, "AWS names")."""
    assert ref.startswith(SCHEME), ref
    return prefix + ref[len(SCHEME) :]


def unique_ref(label: str) -> str:
    """A ref no other test of the module uses (moto is shared per module)."""
    return f"secret://hg/{label}-{secrets.token_hex(3)}/password"


@dataclass
class AwsBed:
    root: Path
    ca: trustme.CA
    bed: Bed
    moto: Moto

    @property
    def server(self):
        return self.bed.server

    @property
    def ca_file(self) -> Path:
        return self.bed.ca_file

    def put(self, ref: str, value: str | bytes | None = None) -> str:
        """Stores ``value`` (default: the hg server's password) under ``ref``; returns the ARN."""
        value = self.server.password if value is None else value
        return self.moto.create_secret(aws_name(ref), value, ref=ref)

    def client(
        self,
        root: Path,
        identity: dict[str, str | None],
        *,
        ref: str = REF,
        timeout: float = 5,
        region: str | None = None,
        extra: str = "",
        endpoint: str | None = None,
    ) -> Client:
        """An hg client whose AWS identity is exactly ``identity`` (a value None removes a
        variable the bed sets by default), region ``region`` (default moto's) in the hgrc."""
        home = root / "home"
        home.mkdir(parents=True, exist_ok=True)
        (root / "aws").mkdir(exist_ok=True)
        hgrc = root / "hgrc"
        region_line = "" if region == "" else f"aws-region = {region or self.moto.region}\n"
        hgrc.write_text(
            "[ui]\nusername = Test CI <ci@example.com>\n"
            "[extensions]\nkeyvault =\n"
            f"[web]\ncacerts = {self.ca_file}\n"
            "[keyvault]\nprovider = aws\n"
            f"{region_line}cacerts = {self.ca_file}\ntimeout = {timeout}\n"
            "[auth]\n"
            f"corp.prefix = {self.server.url}\n"
            f"corp.username = {self.server.username}\n"
            f"corp.vault = {ref}\n" + extra
        )
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith((*AMBIENT_IDENTITY, "AWS_", "REQUESTS_CA", "SSL_CERT"))
        }
        env.update(
            HOME=str(home),
            HGRCPATH=str(hgrc),
            LC_ALL="C",
            HGENCODING="utf-8",
            TMPDIR=str(root / "tmp"),
            AWS_ENDPOINT_URL=endpoint or self.moto.url,
            # Files that do not exist unless the test writes them: never the machine's.
            AWS_CONFIG_FILE=str(root / "aws" / "config"),
            AWS_SHARED_CREDENTIALS_FILE=str(root / "aws" / "credentials"),
            AWS_EC2_METADATA_DISABLED="true",
        )
        (root / "tmp").mkdir(exist_ok=True)
        for key, value in identity.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return Client(root=root, home=home, hgrc=hgrc, env=env)

    def role_session_env(self, role: str, session: str) -> tuple[dict[str, str], str]:
        """Environment keys with a session token for a session of a new role, and its caller ARN."""
        arn = self.moto.create_role(role)
        creds = self.moto.assume_role(arn, session)
        env = {
            "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"],
        }
        return env, self.moto.assumed_role_arn(arn, session)

    def stop(self) -> None:
        try:
            self.moto.stop()
        finally:
            self.bed.stop()


def start_aws_bed(root: Path) -> AwsBed:
    """The hg server (and the Key Vault emulator of tests/bed.py, for migrations) and moto.
    moto's request log lives beside ``root``, not under it: it holds what a server receives."""
    root.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    bed = start_bed(root / "bed", ca=ca)
    try:
        moto = start_moto(
            root / "moto", ca, recording=root.parent / f"{root.name}-moto-requests.jsonl"
        )
    except BaseException:
        bed.stop()
        raise
    return AwsBed(root=root, ca=ca, bed=bed, moto=moto)


def fake_jwt(label: str) -> str:
    """A web identity token as an OIDC provider hands it out (moto does not verify it): three
    base64url parts, the last one random, so that a leak scan can search for it."""
    import base64
    import json

    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    header = part({"alg": "RS256", "typ": "JWT"})
    claims = part({"sub": label, "aud": "sts.amazonaws.com", "iss": "https://oidc.example"})
    return f"{header}.{claims}.{secrets.token_urlsafe(64)}"


class BlackHole:
    """A TCP listener that accepts connections and never answers a byte: an endpoint that is
    up at the network level and hangs (a firewall that drops, a wedged proxy)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _run(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(conn)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()
