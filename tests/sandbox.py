"""`make sandbox`: a vault and an hg server on this machine, for following docs/quickstart.md.

Starts the Key Vault emulator and the authenticated hg server of the test bed (one test CA), then
writes DIR/env: shell variables that stand in for a real setup (VAULT_URL, HG_SERVER, HG_USER,
HG_PASSWORD, the managed identity of an Azure runner), a private HOME whose ~/.hgrc trusts the test
CA, and PATH with the venv's hg first. It then waits until SIGTERM or SIGINT (`make sandbox-stop`
sends it, by the pid in DIR/pid) and stops everything it started.

HG_PASSWORD is the sandbox server's throwaway password, kept in DIR/env (mode 0600) only so that the
quickstart's provisioning step can be pasted as it is; a real password is typed at the hidden prompt
of `hg vault set`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bed import Bed, start_bed  # noqa: E402
from hgserver import HG  # noqa: E402

# Only a 127.0.0.1 vault needs these: Azure's vaults have public certificates and match the
# challenge's vault.azure.net resource.
SANDBOX_HGRC = """\
# sandbox only: trust the sandbox's test CA, and accept a vault on 127.0.0.1 (see docs/emulator.md)
[web]
cacerts = {ca}
[keyvault]
cacerts = {ca}
verify-challenge-resource = false
"""


@dataclass
class Sandbox:
    root: Path
    bed: Bed
    env_file: Path
    home: Path

    def variables(self) -> dict[str, str]:
        """What DIR/env exports, as a dict (the quickstart test runs with exactly these)."""
        emulator, server = self.bed.emulator, self.bed.server
        return {
            "HOME": str(self.home),
            "PATH": f"{Path(HG).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            # The identity: the managed identity of an Azure-hosted runner (the emulator's).
            "IDENTITY_ENDPOINT": emulator.identity_endpoint,
            "IDENTITY_HEADER": emulator.identity_header,
            "AZURE_AUTHORITY_HOST": emulator.authority_host,
            "VAULT_URL": emulator.vault_url,
            "HG_SERVER": server.url.rstrip("/"),
            "HG_USER": server.username,
            "HG_PASSWORD": server.password,
        }

    def stop(self) -> None:
        self.bed.stop()


def start_sandbox(root: Path) -> Sandbox:
    root.mkdir(parents=True, exist_ok=True)
    for old in (root / "bed", root / "home"):  # a fresh start, also after a crash
        shutil.rmtree(old, ignore_errors=True)
    bed = start_bed(root / "bed")
    home = root / "home"
    home.mkdir(exist_ok=True)
    (home / ".hgrc").write_text(SANDBOX_HGRC.format(ca=bed.ca_file))
    sandbox = Sandbox(root=root, bed=bed, env_file=root / "env", home=home)
    lines = [f"export {k}={shlex.quote(v)}" for k, v in sandbox.variables().items()]
    lines.append("unset HGRCPATH AZURE_CLIENT_ID AZURE_CLIENT_SECRET AZURE_TENANT_ID")
    fd = os.open(sandbox.env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(
            "# written by `make sandbox`; source it in the shell you follow the quickstart in\n"
        )
        f.write("\n".join(lines) + "\n")
    return sandbox


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else ".work/sandbox").resolve()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    sandbox = start_sandbox(root)
    try:
        (root / "pid").write_text(f"{os.getpid()}\n")
        print(f"sandbox ready: vault {sandbox.bed.emulator.vault_url}, hg {sandbox.bed.server.url}")
        print(f"  . {sandbox.env_file}    # then follow docs/quickstart.md from step 2")
        sys.stdout.flush()
        stop.wait()
    finally:
        sandbox.stop()
        (root / "pid").unlink(missing_ok=True)
        sandbox.env_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
