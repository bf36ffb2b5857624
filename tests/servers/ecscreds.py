"""The container credentials endpoint of ECS tasks and EKS Pod Identity, on a thread.

What the SDKs' container provider expects (aws-config `ecs` module docs; the ECS developer
guide, "Task IAM role"; EKS "Pod Identity"): a GET on the URL of
``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (any loopback address over http; 169.254.170.23 on EKS)
or ``http://169.254.170.2`` + ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` (ECS), carrying the
token of ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` (or the content of
``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``) verbatim in ``Authorization``; the answer is JSON
``AccessKeyId``, ``SecretAccessKey``, ``Token``, ``Expiration`` (ISO 8601) and ``RoleArn``.
A missing or wrong token gets 401 with ``{"code": ..., "message": ...}`` (the documented error
shape), so a test sees whether the product sent the right one.

The keys it hands out are a real session of an IAM role in moto (minted once, when the server
starts: no bed request lands in moto's log while the product runs), so moto accepts them and
sts:GetCallerIdentity names the role.
"""

from __future__ import annotations

import json
import secrets

from servers.localhttp import LocalHttpServer, serve

PATH = "/v2/credentials/hg-task"


class ContainerCredentials:
    def __init__(self, moto, role_arn: str, *, host: str = "127.0.0.1", port: int = 0,
                 session: str = "hg-ecs-task") -> None:  # fmt: skip
        creds = moto.assume_role(role_arn, session)
        self.role_arn = role_arn
        self.caller_arn = moto.assumed_role_arn(role_arn, session)
        self.token = "ecs-auth-" + secrets.token_urlsafe(24)
        self.keys = {
            "AccessKeyId": creds["AccessKeyId"],
            "SecretAccessKey": creds["SecretAccessKey"],
            "Token": creds["SessionToken"],
            "Expiration": creds["Expiration"],
            "RoleArn": role_arn,
        }
        self.http: LocalHttpServer = serve(self._answer, host=host, port=port)

    def _answer(self, method: str, path: str, headers: dict[str, str]):
        if method != "GET" or path != PATH:
            return 404, {}, b""
        if headers.get("authorization") != self.token:
            body = {"code": "AccessDenied", "message": "Authorization header missing or invalid"}
            return 401, {"Content-Type": "application/json"}, json.dumps(body).encode()
        return 200, {"Content-Type": "application/json"}, json.dumps(self.keys).encode()

    @property
    def full_uri(self) -> str:
        return self.http.url + PATH

    def env(self, *, token_file: str | None = None) -> dict[str, str]:
        """The variables ECS / EKS Pod Identity give a container (FULL_URI form)."""
        env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": self.full_uri}
        if token_file is None:
            env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = self.token
        else:
            env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = token_file
        return env

    def needles(self) -> list[bytes]:
        """What must never show up outside the endpoint and moto."""
        return [self.token.encode(), self.keys["SecretAccessKey"].encode(),
                self.keys["Token"].encode()]  # fmt: skip

    def stop(self) -> None:
        self.http.stop()
