"""The vault password also serves the HTTP paths that share Mercurial's opener
(largefiles transfers) and commands run through chg's forking command server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from bed import Bed, files_containing, start_bed
from hgserver import HG

CHG = str(Path(HG).with_name("chg"))


@pytest.fixture(scope="module")
def bed(tmp_path_factory) -> Bed:
    bed = start_bed(tmp_path_factory.mktemp("paths"), server_config="[extensions]\nlargefiles =\n")
    try:
        bed.provision()
        yield bed
    finally:
        bed.stop()


def test_largefiles_upload_and_download_authenticate_through_the_vault(bed, tmp_path):
    largefiles = "[extensions]\nlargefiles =\n[largefiles]\nusercache = {}\n"
    pusher = bed.client(tmp_path / "pusher", extra=largefiles.format(tmp_path / "cache-pusher"))
    assert pusher.hg("clone", bed.server.repo_url(), "work").returncode == 0
    work = pusher.home / "work"
    blob = os.urandom(256 * 1024)
    (work / "big.bin").write_bytes(blob)
    assert pusher.hg("add", "--large", "big.bin", cwd=work).returncode == 0
    assert pusher.hg("commit", "-m", "a largefile", cwd=work).returncode == 0
    push = pusher.hg("push", cwd=work)
    assert push.returncode == 0, push.output
    log = bed.server.requests()
    assert any(r["cmd"] == "putlfile" and r["status"] == 200 for r in log), log[-5:]

    # A second client with an empty cache must download the largefile over the same auth.
    fetcher = bed.client(tmp_path / "fetcher", extra=largefiles.format(tmp_path / "cache-fetcher"))
    clone = fetcher.hg("clone", bed.server.repo_url(), "copy")
    assert clone.returncode == 0, clone.output
    assert (fetcher.home / "copy" / "big.bin").read_bytes() == blob
    assert any(r["cmd"] == "getlfile" and r["status"] == 200 for r in bed.server.requests())

    hits, _ = files_containing([tmp_path], bed.server.password.encode())
    assert hits == []


@pytest.fixture
def chg_env(tmp_path):
    socket = tmp_path / "chg" / "server"
    socket.parent.mkdir()
    yield {"CHGHG": HG, "CHGSOCKNAME": str(socket), "CHGTIMEOUT": "60"}
    subprocess.run(
        [CHG, "--kill-chg-daemon"],
        env={**os.environ, "CHGHG": HG, "CHGSOCKNAME": str(socket)},
        capture_output=True,
        timeout=30,
        check=False,
    )


def chg_server_pids(socket: Path) -> set[int]:
    """The chg server listening under ``socket``: the ``hg serve --cmdserver chgunix``
    process whose parent is not one (a worker that is still exiting is its child)."""
    parents = {}
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if b"chgunix" in argv and any(str(socket).encode() in a for a in argv):
            # pid (comm) state ppid ...: comm may hold spaces, so split after its ')'.
            parents[int(proc.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return {pid for pid, ppid in parents.items() if ppid not in parents}


def test_chg_commands_authenticate_in_forked_workers(bed, tmp_path, chg_env):
    # chg's server loads the extension (and the wrapped url module) once, then forks one
    # worker per command. Each worker must build its own runtime, token and connection:
    # with the token cache off, nothing but the in-process state could spare a command
    # its own token, so every vault access must show a fresh token in its own worker
    # (that a session used before a fork rebuilds itself is rust/keyvault-core/tests/fork.rs
    # and test_native.py's fork test).
    url = bed.server.add_repo("chg")  # a repository without largefiles
    audit = tmp_path / "audit.jsonl"
    client = bed.client(tmp_path, extra=f"[keyvault]\ntoken-cache = no\naudit-log = {audit}\n")
    client.env.update(chg_env)
    socket = Path(chg_env["CHGSOCKNAME"])

    def through_chg(*args: str, cwd: Path | None = None) -> list[str]:
        before = len(bed.emulator.requests())
        result = client.hg(*args, cwd=cwd, program=CHG)
        assert result.returncode == 0, result.output
        return [f"{r['target']} {r['status']}" for r in bed.emulator.requests()[before:]]

    # The managed identity's token, then the secret: in every command, not only the first.
    assert through_chg("clone", url, "one")[-2:] == ["identity 200", "vault 200"]
    servers = chg_server_pids(socket)
    assert len(servers) == 1, servers
    assert through_chg("clone", url, "two")[-2:] == ["identity 200", "vault 200"]
    work = client.home / "two"
    (work / "chg.txt").write_text("through chg\n")
    assert through_chg("commit", "-A", "-m", "via chg", cwd=work) == []
    assert through_chg("push", cwd=work)[-2:] == ["identity 200", "vault 200"]
    # One server served them all, each command in a worker of its own.
    assert chg_server_pids(socket) == servers
    entries = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(e["command"], e["outcome"]) for e in entries] == [
        ("clone", "ok"),
        ("clone", "ok"),
        ("push", "ok"),
    ]
    workers = {e["pid"] for e in entries}
    assert len(workers) == 3 and not workers & servers, (workers, servers)
    assert not any(bed.server.password in out for out in client.outputs)
