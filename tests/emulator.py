"""Start and drive hg-keyvault-emulator (a local Key Vault + Entra ID on loopback HTTPS).

    emu = start_emulator(tmp_path, {"target": "vault", "kind": "status", "status": 429})
    emu.vault_url, emu.ca_file, emu.principal("officer")["client_secret"], ...
    emu.set_faults([...]); emu.clear_faults(); emu.requests(); emu.stop()

Identity endpoints (start with ``http_listen=["imds=169.254.169.254:80", "arc=127.0.0.1:0", ...]``):
``emu.http["arc"]``, ``emu.identity_env("arc")``, ``emu.set_federated_credentials([...])``,
``emu.ci_env("github")``, ``emu.mint_oidc("gitlab")``; see docs/emulator.md.

The binary comes from $HG_KEYVAULT_EMULATOR, else <repo>/target/debug/hg-keyvault-emulator.
Only the standard library is used, so any test (and the demo) can import this.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import signal
import ssl
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from processes import stop_process

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 30.0


def emulator_binary() -> Path:
    env = os.environ.get("HG_KEYVAULT_EMULATOR")
    return Path(env) if env else REPO / "target" / "debug" / "hg-keyvault-emulator"


@dataclasses.dataclass
class Emulator:
    vault_url: str
    authority_host: str
    tenant_id: str
    ca_file: str
    identity_endpoint: str
    identity_header: str
    control_url: str
    request_log: str
    pid: int
    port: int
    principals: list[dict[str, Any]]
    state_dir: str = ""
    http: dict[str, str] = dataclasses.field(default_factory=dict)
    msi_secret: str = ""
    arc_token_dir: str = ""
    oidc: dict[str, Any] = dataclasses.field(default_factory=dict)
    process: subprocess.Popen | None = dataclasses.field(default=None, repr=False)

    def principal(self, name: str) -> dict[str, Any]:
        for p in self.principals:
            if p["name"] == name:
                return p
        raise KeyError(f"no emulator principal named {name!r}")

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.control_url}{path}", data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        ctx = ssl.create_default_context(cafile=self.ca_file)
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def set_faults(self, faults: list[dict[str, Any]]) -> Any:
        """Replaces the active faults (see docs/emulator.md for the spec)."""
        return self._control("POST", "/faults", list(faults))

    def clear_faults(self) -> Any:
        return self._control("DELETE", "/faults")

    def state(self) -> Any:
        return self._control("GET", "/state")

    def set_permission_model(self, model: str) -> Any:
        """``rbac`` (the default) or ``access-policy``: which 403 the vault answers with."""
        return self._control("PUT", "/permission-model", {"model": model})

    def freeze_clock(self, at: int | None) -> Any:
        """Stamp secrets with ``at`` (Unix seconds) as created/updated time; None: the clock."""
        return self._control("PUT", "/clock", {"frozen_at": at})

    def set_federated_credentials(self, credentials: list[dict[str, Any]]) -> Any:
        """Replaces the apps' federated credentials:
        [{"principal", "issuer", "subject", "audiences"?}]."""
        return self._control("POST", "/federated-credentials", list(credentials))

    def federate(self, principal: str, ci: str, subject: str | None = None) -> None:
        """Lets ``principal`` accept the ID tokens of ``ci`` (github, pipelines, gitlab) whose
        subject is ``subject`` (default: the subject that CI mints by default)."""
        default = {
            "github": "repo:hg-keyvault/ci:ref:refs/heads/main",
            "pipelines": "sc://hg-keyvault/ci/hg-keyvault",
            "gitlab": "project_path:hg-keyvault/ci:ref_type:branch:ref:main",
        }[ci]
        issuer = self.oidc[ci]["issuer"]
        self.set_federated_credentials(
            [{"principal": principal, "issuer": issuer, "subject": subject or default}]
        )

    def set_identities(self, system_assigned: bool = True, user_assigned=("user-assigned",)) -> Any:
        body = {"system_assigned": system_assigned, "user_assigned": list(user_assigned)}
        return self._control("POST", "/identities", body)

    def set_arc_realm(self, realm: str) -> Any:
        """normal, outside (not in the token directory), not-key, too-big."""
        return self._control("POST", "/arc", {"realm": realm})

    def set_oidc_claims(self, ci: str, claims: dict[str, Any]) -> Any:
        """Claims merged over ``ci``'s defaults in every token it mints ({} restores them)."""
        return self._control("POST", f"/oidc/{ci}/claims", claims)

    def mint_oidc(self, ci: str, aud: str | None = None, **claims: Any) -> str:
        body: dict[str, Any] = {"issuer": ci, "claims": claims}
        if aud:
            body["aud"] = aud
        return self._control("POST", "/oidc/mint", body)["token"]

    def register_app(
        self,
        app_id_uri: str,
        *,
        token_version: int = 1,
        roles: dict[str, list[str]] | None = None,
        client_id: str | None = None,
    ) -> dict[str, Any]:
        """Registers an API (replacing one with the same App ID URI); ``roles`` maps an app
        role's value to the principals (name, client id or object id) assigned to it. Returns
        the registration, with its client id."""
        body: dict[str, Any] = {
            "app_id_uri": app_id_uri,
            "token_version": token_version,
            "roles": roles or {},
        }
        if client_id:
            body["client_id"] = client_id
        return self._control("POST", "/entra/apps", body)

    def rotate_signing_key(self, *, publish: bool = True) -> dict[str, Any]:
        """A new key signs app tokens; the JWKS keeps the previous one (or, publish=False,
        does not list the new one: an unknown kid to every relying party)."""
        return self._control("POST", "/entra/keys/rotate", {"publish": publish})

    def set_token_settings(self, **settings: Any) -> Any:
        """lifetime=, issuer_tenant=, claims_time_offset= for app tokens (none: defaults)."""
        return self._control("POST", "/entra/settings", settings)

    def identity_env(self, role: str) -> dict[str, str]:
        """The environment a host of ``role`` gives its processes, pointing at this emulator."""
        url = self.http[role]
        if role == "arc":
            return {
                "IDENTITY_ENDPOINT": url + "/metadata/identity/oauth2/token",
                "IMDS_ENDPOINT": url,
            }
        if role == "cloudshell":
            return {"MSI_ENDPOINT": url + "/oauth2/token"}
        if role == "ml":
            return {"MSI_ENDPOINT": url + "/MSI/auth", "MSI_SECRET": self.msi_secret}
        if role == "appservice":
            return {
                "IDENTITY_ENDPOINT": url + "/msi/token",
                "IDENTITY_HEADER": self.identity_header,
            }
        if role == "imds":
            return {}  # the address is fixed; the VM is recognised by its SMBIOS asset tag
        raise KeyError(role)

    def ci_env(self, ci: str) -> dict[str, str]:
        """The variables a CI job of ``ci`` has (without AZURE_CLIENT_ID / AZURE_TENANT_ID)."""
        o = self.oidc[ci]
        if ci == "github":
            return {
                "GITHUB_ACTIONS": "true",
                "GITHUB_RUN_ID": "7301234567",
                "GITHUB_JOB": "build",
                "ACTIONS_ID_TOKEN_REQUEST_URL": o["request_url"],
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN": o["request_token"],
            }
        if ci == "pipelines":
            return {
                "TF_BUILD": "True",
                "BUILD_BUILDID": "4711",
                "SYSTEM_JOBNAME": "build",
                "SYSTEM_OIDCREQUESTURI": o["request_uri"],
                "SYSTEM_ACCESSTOKEN": o["access_token"],
                "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID": o["service_connection_id"],
            }
        raise KeyError(ci)

    def requests(self) -> list[dict[str, Any]]:
        """The request log, parsed (one dict per HTTP request, control API excluded)."""
        path = Path(self.request_log)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        """SIGTERM by pid, then wait (SIGKILL if it does not exit within 5 s)."""
        if self.process is not None:
            stop_process(self.process, timeout=5)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)


# Azure IMDS's address: served only inside a test's own network namespace (unshare -n).
IMDS_ADDRESS = "169.254.169.254"


def start_emulator(tmp_path: Path | str, *faults: dict[str, Any], **options: Any) -> Emulator:
    """Starts the emulator with its state under tmp_path and waits for its ready line.

    Each extra positional argument is a fault spec (passed as --fault). Keyword options
    become flags: token_lifetime=5 -> --token-lifetime 5, ca_cert=..., ca_key=..., port=...;
    a list repeats its flag: http_listen=["arc=127.0.0.1:0", ...].
    """
    if any(IMDS_ADDRESS in str(x) for x in options.get("http_listen", ())):
        # The fake IMDS lives only in a test's own network namespace (tests/netns.py).
        devices = [
            line.split(":")[0].strip() for line in open("/proc/self/net/dev").readlines()[2:]
        ]
        assert devices == ["lo"], (
            f"{IMDS_ADDRESS} is served only inside the test's own network namespace (only lo), "
            f"not with {devices}"
        )
    state_dir = Path(tmp_path) / "emulator"
    state_dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(emulator_binary()), "--state-dir", str(state_dir)]
    for fault in faults:
        cmd += ["--fault", json.dumps(fault)]
    for key, value in options.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            cmd += ["--" + key.replace("_", "-"), str(item)]
    stderr = open(state_dir / "stderr.log", "ab")
    try:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL
        )
    finally:
        stderr.close()
    ready_now, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT)
    line = proc.stdout.readline() if ready_now else b""
    if not line:
        proc.kill()
        proc.wait()
        err = (state_dir / "stderr.log").read_text(errors="replace")
        raise RuntimeError(f"emulator did not start: {' '.join(cmd)}\n{err}")
    ready = json.loads(line)
    fields = {f.name for f in dataclasses.fields(Emulator)}
    return Emulator(**{k: v for k, v in ready.items() if k in fields}, process=proc)
