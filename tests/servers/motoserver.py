"""moto (PyPI ``moto[server]``), a third-party AWS emulator, as the test bed's Secrets Manager,
STS and IAM: on 127.0.0.1, a free port, HTTPS with a certificate from the bed's trustme CA.

    moto = start_moto(workdir, ca)            # moto.url, moto.ca_file, moto.region
    moto.sm.create_secret(...)                 # boto3 clients as the admin (any key is accepted)
    user = moto.create_user("ci")              # an IAM user with an access key and a policy
    creds = moto.assume_role(moto.create_role("hg-env"))   # temporary keys moto knows
    mark = moto.mark(); ...; moto.calls(mark)  # ["secretsmanager.GetSecretValue", ...]
    moto.enforce_iam(True)                     # signatures and IAM policies checked from now on
    moto.stop()                                # by pid

The request log is moto's own recorder (``MOTO_ENABLE_RECORDING``, one JSON line per request
that reaches moto, with its headers and body, written before moto handles it): the count of
requests the product sends is read there, not guessed. That file holds what a server receives
(signed headers, session tokens, values sent by PutSecretValue), so it lives where the caller
says, outside anything a leak scan searches as "the client's".

IAM enforcement: moto checks SigV4 signatures and IAM policies only after its count of
unauthenticated actions (``INITIAL_NO_AUTH_ACTION_COUNT``, infinite by default) is used up;
``enforce_iam`` sets it at run time through ``POST /moto-api/reset-auth`` (moto's documented
control endpoint), so the bed is set up unauthenticated and the test then runs checked.

Run as a program (``python motoserver.py --cert C --key K --recording R``) it serves moto's own
WSGI application (the one ``moto_server`` runs) on a port the kernel picks, and prints one JSON
ready line with that port: no race for a "free" port between two processes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import ssl
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

READY_TIMEOUT = 60.0
# moto's default account; every ARN it makes carries it.
ACCOUNT_ID = "123456789012"
REGION = "eu-west-1"
# Any key pair works while IAM is not enforced; the bed's own set-up calls use this one.
ADMIN_KEYS = {
    "aws_access_key_id": "AKIAMOTOBEDADMIN0001",
    "aws_secret_access_key": "moto-bed-admin",
}
# What an IAM user or role of the bed may do (the product's reads and writes, and whoami).
BED_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["secretsmanager:*", "sts:GetCallerIdentity"],
            "Resource": "*",
        }
    ],
}
TRUST_ANYONE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
            "Action": ["sts:AssumeRole", "sts:AssumeRoleWithWebIdentity"],
        }
    ],
}
_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")


@dataclass
class MotoRequest:
    """One request as moto's recorder saw it."""

    method: str
    path: str
    # "secretsmanager.GetSecretValue", "sts.AssumeRoleWithWebIdentity", or the path for others.
    call: str
    access_key_id: str | None
    region: str | None
    session_token: str | None
    user_agent: str
    headers: dict[str, str]


@dataclass
class Moto:
    url: str
    port: int
    ca_file: Path
    recording: Path
    region: str = REGION
    account_id: str = ACCOUNT_ID
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    # --- boto3 as the bed's admin -----------------------------------------------------------

    def client(self, service: str, **keys: str):
        """A boto3 client for ``service`` at moto (the admin's keys unless ``keys`` are given)."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=self.region,
            verify=str(self.ca_file),
            **(keys or ADMIN_KEYS),
        )

    def _admin(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.client(service)
        return self._clients[service]

    @property
    def sm(self):
        return self._admin("secretsmanager")

    @property
    def iam(self):
        return self._admin("iam")

    @property
    def sts(self):
        return self._admin("sts")

    def create_secret(self, name: str, value: str | bytes, ref: str | None = None) -> str:
        """A secret as an operator's tooling would make it; returns its ARN (with AWS's suffix)."""
        args: dict[str, Any] = {"Name": name}
        args["SecretBinary" if isinstance(value, bytes) else "SecretString"] = value
        if ref is not None:
            args["Tags"] = [{"Key": "hg-keyvault-ref", "Value": ref}]
        return self.sm.create_secret(**args)["ARN"]

    def secret_value(self, secret_id: str, stage: str = "AWSCURRENT") -> dict[str, Any]:
        return self.sm.get_secret_value(SecretId=secret_id, VersionStage=stage)

    def create_user(self, name: str, policy: dict | None = None) -> dict[str, str]:
        """An IAM user with an inline policy (the bed's by default) and one access key:
        ``{"arn", "aws_access_key_id", "aws_secret_access_key"}``."""
        arn = self.iam.create_user(UserName=name)["User"]["Arn"]
        self.iam.put_user_policy(
            UserName=name, PolicyName="hg-bed", PolicyDocument=json.dumps(policy or BED_POLICY)
        )
        key = self.iam.create_access_key(UserName=name)["AccessKey"]
        return {
            "arn": arn,
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }

    def create_role(self, name: str, policy: dict | None = None) -> str:
        """An IAM role anyone in the account may assume (web identity too); returns its ARN."""
        arn = self.iam.create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST_ANYONE)
        )["Role"]["Arn"]
        self.iam.put_role_policy(
            RoleName=name, PolicyName="hg-bed", PolicyDocument=json.dumps(policy or BED_POLICY)
        )
        return arn

    def assume_role(self, role_arn: str, session: str = "hg-bed") -> dict[str, str]:
        """Temporary keys for ``role_arn`` that moto knows (GetCallerIdentity names the role):
        the AWS JSON shape ``AccessKeyId``/``SecretAccessKey``/``SessionToken``/``Expiration``
        (an ISO 8601 string)."""
        creds = self.sts.assume_role(RoleArn=role_arn, RoleSessionName=session)["Credentials"]
        creds["Expiration"] = creds["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ")
        return creds

    def assumed_role_arn(self, role_arn: str, session: str) -> str:
        """The caller ARN sts:GetCallerIdentity gives for a session of ``role_arn``."""
        role = role_arn.rsplit("/", 1)[1]
        return f"arn:aws:sts::{self.account_id}:assumed-role/{role}/{session}"

    # --- moto's control endpoints --------------------------------------------------------------

    def _control(self, path: str, body: bytes | None = None) -> bytes:
        req = urllib.request.Request(self.url + path, data=body, method="POST" if body else "GET")
        # Not a form (urllib's default): moto reads the raw body (request.data).
        req.add_header("Content-Type", "text/plain")
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.read()

    def enforce_iam(self, on: bool = True) -> None:
        """From now on moto checks every request's SigV4 signature against the IAM access keys
        it knows, and the caller's IAM policies (``on=False``: accepts anything again)."""
        self._control("/moto-api/reset-auth", b"0" if on else b"inf")

    # --- the request log -----------------------------------------------------------------------

    def requests(self, since: int = 0) -> list[MotoRequest]:
        """Every request moto received (after the first ``since``), bed control calls excluded."""
        if not self.recording.exists():
            return []
        out = []
        for line in self.recording.read_text().splitlines()[since:]:
            if not line:
                continue
            entry = json.loads(line)
            out.append(_parse(entry))
        return [r for r in out if not r.path.startswith("/moto-api/")]

    def mark(self) -> int:
        """A position in the request log (its line count) for ``calls(since=...)``."""
        if not self.recording.exists():
            return 0
        return len(self.recording.read_text().splitlines())

    def calls(self, since: int = 0) -> list[str]:
        """The API calls moto received after ``since``: ``["secretsmanager.GetSecretValue"]``."""
        return [r.call for r in self.requests(since)]

    def stop(self) -> None:
        from processes import stop_process

        stop_process(self._proc)


_UNSIGNED_STS = {"AssumeRoleWithWebIdentity": "sts", "AssumeRoleWithSAML": "sts"}


def _parse(entry: dict) -> MotoRequest:
    import base64
    import urllib.parse

    headers = {k.lower(): v for k, v in entry["headers"].items()}
    url = urllib.parse.urlsplit(entry["url"])
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    credential = _CREDENTIAL.search(headers.get("authorization", ""))
    service = credential.group(3) if credential else None
    call = url.path
    if "x-amz-target" in headers:
        # JSON protocol (Secrets Manager): "secretsmanager.GetSecretValue".
        call = headers["x-amz-target"]
    else:
        # Query protocol (STS, IAM): Action=... in the form body or the query.
        form = urllib.parse.parse_qs(body) if "=" in body else {}
        form.update(urllib.parse.parse_qs(url.query))
        if "Action" in form:
            action = form["Action"][0]
            # STS's calls where the token is the credential are sent unsigned (AWS STS API
            # reference, AssumeRoleWithWebIdentity / AssumeRoleWithSAML): no signature names
            # the service, the action does. Tests check ``access_key_id is None`` for that.
            service = service or _UNSIGNED_STS.get(action, "unsigned")
            call = f"{service}.{action}"
    return MotoRequest(
        method=entry["method"],
        path=url.path,
        call=call,
        access_key_id=credential.group(1) if credential else None,
        region=credential.group(2) if credential else None,
        session_token=headers.get("x-amz-security-token"),
        user_agent=headers.get("user-agent", ""),
        headers=headers,
    )


def start_moto(workdir: Path, ca, *, recording: Path | None = None) -> Moto:
    """moto on 127.0.0.1 over HTTPS with a certificate from ``ca`` (a trustme.CA); its request
    log at ``recording`` (default: ``workdir/moto-requests.jsonl``)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file = workdir / "moto-cert.pem", workdir / "moto-key.pem"
    cert_file.write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    key_file.touch(mode=0o600)
    key_file.write_bytes(cert.private_key_pem.bytes())
    ca_file = workdir / "moto-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    recording = recording or workdir / "moto-requests.jsonl"
    recording.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(MOTO_ENABLE_RECORDING="True", MOTO_RECORDER_FILEPATH=str(recording))
    # moto's own account and region defaults, whatever the machine says.
    env.update(MOTO_ACCOUNT_ID=ACCOUNT_ID, AWS_DEFAULT_REGION=REGION)
    stderr = open(workdir / "moto-stderr.log", "ab")
    try:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--cert", str(cert_file), "--key", str(key_file)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=workdir,
        )
    finally:
        stderr.close()
    ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT)
    line = proc.stdout.readline() if ready else b""
    if not line:
        proc.kill()
        proc.wait()
        err = (workdir / "moto-stderr.log").read_text(errors="replace")
        raise RuntimeError(f"moto did not start:\n{err[-3000:]}")
    port = json.loads(line)["port"]
    return Moto(
        url=f"https://127.0.0.1:{port}", port=port, ca_file=ca_file, recording=recording, _proc=proc
    )


def _serve(cert: str, key: str) -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        "127.0.0.1",
        0,
        app,
        threaded=True,
        request_handler=MotoRequestHandler,
        ssl_context=(cert, key),
    )
    port = server.server_address[1]
    os.environ["MOTO_PORT"] = str(port)
    print(json.dumps({"port": port}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    _serve(args.cert, args.key)
