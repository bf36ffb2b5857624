"""Start and drive hg-keyvault-emulator (a local Key Vault + Entra ID on loopback HTTPS).

    emu = start_emulator(tmp_path, {"target": "vault", "kind": "status", "status": 429})
    emu.vault_url, emu.ca_file, emu.principal("officer")["client_secret"], ...
    emu.set_faults([...]); emu.clear_faults(); emu.requests(); emu.stop()

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


def start_emulator(tmp_path: Path | str, *faults: dict[str, Any], **options: Any) -> Emulator:
    """Starts the emulator with its state under tmp_path and waits for its ready line.

    Each extra positional argument is a fault spec (passed as --fault). Keyword options
    become flags: token_lifetime=5 -> --token-lifetime 5, ca_cert=..., ca_key=..., port=...
    """
    state_dir = Path(tmp_path) / "emulator"
    state_dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(emulator_binary()), "--state-dir", str(state_dir)]
    for fault in faults:
        cmd += ["--fault", json.dumps(fault)]
    for key, value in options.items():
        cmd += ["--" + key.replace("_", "-"), str(value)]
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
