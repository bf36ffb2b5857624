"""The EC2 instance metadata service, IMDSv2 only, on a thread.

moto answers the IMDS paths on its own port, but it does not check IMDSv2's session token (any
method on /latest/api/token gets a token, and metadata GETs without one are answered) and its
credentials are fixed strings ("test-key") that no IAM user or role in moto owns. This server
does what the EC2 user guide says an instance with "IMDSv2 required" does ("Use the Instance
Metadata Service to access instance metadata", "Retrieve security credentials from instance
metadata"):

- ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds`` (1-21600) answers a
  token; a PUT without that header is 400, a GET there 405;
- every ``GET /latest/meta-data/...`` needs ``X-aws-ec2-metadata-token`` with a live token, else
  401;
- ``/latest/meta-data/iam/security-credentials/`` lists the role name, and
  ``.../security-credentials/<role>`` answers ``Code``, ``LastUpdated``, ``Type``,
  ``AccessKeyId``, ``SecretAccessKey``, ``Token``, ``Expiration``.

Other paths (``security-credentials-extended/`` included) are 404, as on an instance that does
not offer them: SDKs then use the classic path. The keys are a real moto session of the
instance profile's role, minted when the server starts.
"""

from __future__ import annotations

import json
import secrets
import time

from servers.localhttp import LocalHttpServer, serve

TOKEN_PATH = "/latest/api/token"
CREDS_PATH = "/latest/meta-data/iam/security-credentials/"


class InstanceMetadata:
    def __init__(self, moto, role_arn: str, *, host: str = "127.0.0.1", port: int = 0,
                 session: str = "i-0hgkeyvault0bed") -> None:  # fmt: skip
        creds = moto.assume_role(role_arn, session)
        self.role_name = role_arn.rsplit("/", 1)[1]
        self.caller_arn = moto.assumed_role_arn(role_arn, session)
        self.tokens: dict[str, float] = {}
        self.keys = {
            "Code": "Success",
            "LastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "Type": "AWS-HMAC",
            "AccessKeyId": creds["AccessKeyId"],
            "SecretAccessKey": creds["SecretAccessKey"],
            "Token": creds["SessionToken"],
            "Expiration": creds["Expiration"],
        }
        self.http: LocalHttpServer = serve(self._answer, host=host, port=port)

    def _answer(self, method: str, path: str, headers: dict[str, str]):
        text = {"Content-Type": "text/plain"}
        if path == TOKEN_PATH:
            if method != "PUT":
                return 405, text, b""
            ttl = headers.get("x-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return 400, text, b""
            token = "imds-" + secrets.token_urlsafe(32)
            self.tokens[token] = time.monotonic() + int(ttl)
            return 200, {**text, "X-aws-ec2-metadata-token-ttl-seconds": ttl}, token.encode()
        if method != "GET":
            return 405, text, b""
        expires = self.tokens.get(headers.get("x-aws-ec2-metadata-token", ""), 0.0)
        if expires < time.monotonic():
            return 401, text, b""
        if path == CREDS_PATH:
            return 200, text, self.role_name.encode()
        if path == CREDS_PATH + self.role_name:
            return 200, text, json.dumps(self.keys).encode()
        return 404, text, b""

    @property
    def endpoint(self) -> str:
        """For AWS_EC2_METADATA_SERVICE_ENDPOINT."""
        return self.http.url + "/"

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request, in order."""
        return [(r.method, r.path, r.status) for r in self.http.log]

    def needles(self) -> list[bytes]:
        return [self.keys["SecretAccessKey"].encode(), self.keys["Token"].encode(),
                *(t.encode() for t in self.tokens)]  # fmt: skip

    def stop(self) -> None:
        self.http.stop()
