"""docs/quickstart.md is copy-paste runnable: its `sh` blocks, as written, against `make sandbox`;
and so is the plaintext-password path of docs/migration.md.

The sandbox (tests/sandbox.py) is what a reader without Azure starts; its env file is sourced
exactly as the page says. Blocks marked `<!-- not run in the sandbox: why -->` (the reader's own
values, installing, creating an Azure vault) are the only ones left out.
"""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
from pathlib import Path

import pytest
from bed import files_containing
from sandbox import start_sandbox

PAGE = Path(__file__).resolve().parent.parent / "docs" / "quickstart.md"
MIGRATION = PAGE.with_name("migration.md")
NOT_RUN = "<!-- not run in the sandbox:"
BLOCK = re.compile(r"(?P<before>[^\n]*)\n```sh\n(?P<code>.*?)\n```", re.S)


def runnable_blocks(text: str) -> list[str]:
    return [m["code"] for m in BLOCK.finditer(text) if not m["before"].startswith(NOT_RUN)]


def test_page_marks_only_set_up_blocks_as_not_run():
    text = PAGE.read_text()
    blocks = runnable_blocks(text)
    skipped = text.count(NOT_RUN)
    assert skipped == 3, "step 0, 1 and 1a are the only blocks the sandbox replaces"
    # The steps that matter are among the blocks run.
    joined = "\n".join(blocks)
    for needed in ("cat >> ~/.hgrc", "hg vault set", "hg clone", "hg vault check", "hg vault"):
        assert needed in joined


@pytest.fixture
def sandbox(tmp_path):
    box = start_sandbox(tmp_path / "sandbox")
    yield box
    box.stop()


def shell(sandbox, code: str, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess:
    """``code`` in bash after sourcing the sandbox's env file, as a reader's shell would."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HG", "AZURE_", "IDENTITY_", "MSI_", "VAULT_"))
    }
    base["LC_ALL"] = "C"
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", f". {sandbox.env_file}\n{code}"],
        cwd=cwd,
        env=base,
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )


def output(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")


def test_quickstart_runs_as_written(sandbox, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    password = sandbox.bed.server.password
    transcript = []
    for code in runnable_blocks(PAGE.read_text()):
        # The hidden prompt of step 3 reads standard input when it is not a terminal.
        stdin = password.encode() if "hg vault set" in code else b""
        proc = shell(sandbox, code, work, stdin)
        transcript.append(f"$ {code}\n{output(proc)}")
        assert proc.returncode == 0, "\n".join(transcript)

    # The clone is real and complete, through the server's Basic auth.
    log = shell(sandbox, "hg -R repo log -T '{node}\\n'", work)
    assert log.returncode == 0 and log.stdout.strip(), "the clone has no changesets"
    authed = [
        r for r in sandbox.bed.server.requests() if r["remote_user"] == sandbox.bed.server.username
    ]
    assert authed, "the server saw no authenticated request"
    # `hg vault` reported the secret as readable.
    assert "[auth] corp: ok" in transcript[-1]

    # The password reached no file the quickstart touched (the sandbox's env file is its own).
    needle = password.encode()
    hits, _ = files_containing([work, sandbox.home], needle)
    assert hits == []
    for entry in transcript:
        assert password not in entry


def plaintext_migration_blocks() -> list[str]:
    text = MIGRATION.read_text()
    section = text.split("## From plaintext `[auth]` passwords", 1)[1].split("\n## ", 1)[0]
    fenced = re.finditer(r"^( *)```sh\n(.*?)\n\1```", section, re.S | re.M)
    return [textwrap.dedent(m[2]) for m in fenced]


def test_plaintext_migration_runs_as_written(sandbox, tmp_path):
    password = sandbox.bed.server.password
    hgrc = sandbox.home / ".hgrc"
    # Before: the password in plain text, and a clone made with it.
    with hgrc.open("a") as f:
        f.write(
            "[extensions]\nkeyvault =\n"
            f"[keyvault]\nurl = {sandbox.bed.emulator.vault_url}\n"
            f"[auth]\ncorp.prefix = {sandbox.bed.server.url}\n"
            f"corp.username = {sandbox.bed.server.username}\ncorp.password = {password}\n"
        )
    proc = shell(sandbox, 'hg clone "$HG_SERVER/repo" work', tmp_path)
    assert proc.returncode == 0, output(proc)
    clone = tmp_path / "work"

    find, store, check, rotate = plaintext_migration_blocks()
    found = shell(sandbox, find, clone)
    assert found.returncode == 0 and f"{hgrc}:" in output(found), output(found)
    assert "auth.corp.password= ..." in output(found) and password not in output(found)

    stored = shell(sandbox, store, clone)
    assert stored.returncode == 0, output(stored)
    # Step 3, by hand in the page: the password line becomes the ref.
    assert "corp.vault = secret://hg/ci-bot/password" in MIGRATION.read_text()
    text = hgrc.read_text().replace(
        f"corp.password = {password}", "corp.vault = secret://hg/ci-bot/password"
    )
    hgrc.write_text(text)

    checked = shell(sandbox, check.replace("https://hg.contoso.com", "$HG_SERVER"), clone)
    assert checked.returncode == 0, output(checked)
    assert "ok" in output(checked)
    rotated = shell(sandbox, rotate, clone, stdin=password.encode())
    assert rotated.returncode == 0, output(rotated)

    # The server saw the vault's password (hg config's newline dropped), and no file keeps it.
    pulls = [r for r in sandbox.bed.server.requests() if r["cmd"] and r["status"] == 200]
    assert pulls and pulls[-1]["remote_user"] == sandbox.bed.server.username
    hits, _ = files_containing([clone, sandbox.home], password.encode())
    assert hits == []
