"""`make demo`: the main job, end to end, on the local emulator.

Starts the Key Vault emulator and an authenticated hg server (nginx + hgweb)
sharing one test CA, stores the server's password in the vault with
`hg vault set`, clones and pushes with real `hg` authenticating through the
vault, shows `hg vault`, checks that no file holds the password, and stops
everything it started.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import trustme  # noqa: E402
from emulator import start_emulator  # noqa: E402
from hgserver import HG, start_hg_server  # noqa: E402
from servers.fixtures import write_ca_files  # noqa: E402

REF = "secret://demo/ci-bot/password"


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(args: list[str], env: dict[str, str], cwd: Path, stdin: bytes | None = None) -> str:
    shown = " ".join(a if " " not in a else repr(a) for a in args)
    print(f"$ {shown}", flush=True)
    proc = subprocess.run(
        args, env=env, cwd=cwd, input=stdin, capture_output=True, timeout=120, check=False
    )
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    sys.stdout.write(out)
    if proc.returncode != 0:
        raise SystemExit(f"demo failed: {shown} exited {proc.returncode}")
    return out


def files_containing(root: Path, needle: bytes) -> list[Path]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle in path.read_bytes():
                    hits.append(path)
            except OSError:
                continue
    return hits


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="hg-keyvault-demo-"))
    emulator = server = None
    try:
        step("one test CA for the vault emulator and the hg server")
        ca = trustme.CA()
        ca_cert, ca_key = write_ca_files(ca, work / "ca")

        step("start the Key Vault + Entra ID emulator (loopback, HTTPS)")
        emulator = start_emulator(work, ca_cert=ca_cert, ca_key=ca_key)
        print(f"vault {emulator.vault_url} (pid {emulator.pid})")

        step("start an authenticated hg server: hgweb under gunicorn behind nginx (TLS + Basic)")
        server = start_hg_server(work / "hgserver", ca=ca)
        print(f"server {server.url} (nginx pid {server.nginx_pid})")
        password = server.password.encode()

        home = work / "home"
        home.mkdir()
        hgrc = home / ".hgrc"
        hgrc.write_text(
            "[ui]\nusername = Demo CI <ci@example.com>\n"
            "[extensions]\nkeyvault =\n"
            f"[web]\ncacerts = {ca_cert}\n"
            "[keyvault]\n"
            f"url = {emulator.vault_url}\n"
            f"cacerts = {ca_cert}\n"
            "# a 127.0.0.1 vault cannot match the challenge's vault.azure.net domain\n"
            "verify-challenge-resource = false\n"
            "[auth]\n"
            f"demo.prefix = {server.url}\n"
            f"demo.username = {server.username}\n"
            f"demo.vault = {REF}\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HG", "AZURE_"))}
        env.update(
            HOME=str(home),
            HGRCPATH=str(hgrc),
            HGPLAIN="1",
            # The identity: a managed identity, as on an Azure VM or App Service runner.
            IDENTITY_ENDPOINT=emulator.identity_endpoint,
            IDENTITY_HEADER=emulator.identity_header,
            AZURE_AUTHORITY_HOST=emulator.authority_host,
        )
        print(f"hgrc: {hgrc}")
        print(hgrc.read_text())

        step("provision the password (read from stdin, never argv)")
        run([HG, "vault", "set", REF], env, home, stdin=password)

        step("clone, commit and push: the password comes from the vault")
        run([HG, "clone", server.repo_url("repo"), "work"], env, home)
        clone = home / "work"
        (clone / "hello.txt").write_text("hello from the demo\n")
        run([HG, "add", "hello.txt"], env, clone)
        run([HG, "commit", "-m", "demo commit"], env, clone)
        run([HG, "push"], env, clone)

        step("hg vault: identity, vault, state of every configured secret (never a value)")
        run([HG, "vault"], env, clone)

        step("no file holds the password")
        print(f"{hgrc} holds a password: {'yes' if password in hgrc.read_bytes() else 'no'}")
        hits = files_containing(work, password)
        for hit in hits:
            print(f"LEAK: {hit}")
        print(f"searched {sum(1 for p in work.rglob('*') if p.is_file())} files: {len(hits)} hits")
        if hits:
            return 1
        print("\ndemo ok")
        return 0
    finally:
        step("stop everything")
        if server is not None:
            server.stop()
            print(f"stopped hg server (nginx pid {server.nginx_pid})")
        if emulator is not None:
            emulator.stop()
            print(f"stopped emulator (pid {emulator.pid})")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
