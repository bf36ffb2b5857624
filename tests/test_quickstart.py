"""docs/quickstart.md is copy-paste runnable: its `sh` blocks, as written, against `make sandbox`.

The sandbox (tests/sandbox.py) is what a reader without Azure starts; its env file is sourced
exactly as the page says. Blocks marked `<!-- not run in the sandbox: why -->` (the reader's own
values, installing, creating an Azure vault) are the only ones left out.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from bed import files_containing
from sandbox import start_sandbox

PAGE = Path(__file__).resolve().parent.parent / "docs" / "quickstart.md"
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


def test_quickstart_runs_as_written(sandbox, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HG", "AZURE_", "IDENTITY_", "MSI_", "VAULT_"))
    }
    base["LC_ALL"] = "C"
    password = sandbox.bed.server.password
    transcript = []
    for code in runnable_blocks(PAGE.read_text()):
        # The hidden prompt of step 3 reads standard input when it is not a terminal.
        stdin = password.encode() if "hg vault set" in code else b""
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", f". {sandbox.env_file}\n{code}"],
            cwd=work,
            env=base,
            input=stdin,
            capture_output=True,
            timeout=120,
            check=False,
        )
        out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
        transcript.append(f"$ {code}\n{out}")
        assert proc.returncode == 0, "\n".join(transcript)

    # The clone is real and complete, through the server's Basic auth.
    log = subprocess.run(
        ["bash", "-c", f". {sandbox.env_file}\nhg -R repo log -T '{{node}}\\n'"],
        cwd=work,
        env=base,
        capture_output=True,
        check=True,
    )
    assert log.stdout.strip(), "the clone has no changesets"
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
