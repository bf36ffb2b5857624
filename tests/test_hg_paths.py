"""The vault password also serves the HTTP paths that share Mercurial's opener
(largefiles transfers) and commands run through chg's forking command server."""

from __future__ import annotations

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


def test_chg_commands_authenticate_in_forked_workers(bed, tmp_path, chg_env):
    url = bed.server.add_repo("chg")  # a repository without largefiles
    client = bed.client(tmp_path)
    client.env.update(chg_env)
    first = client.hg("clone", url, "one", program=CHG)
    assert first.returncode == 0, first.output
    # The second command runs in a new worker forked from the same server, which has
    # already loaded the extension: the vault session must be rebuilt after the fork.
    second = client.hg("clone", url, "two", program=CHG)
    assert second.returncode == 0, second.output
    work = client.home / "two"
    (work / "chg.txt").write_text("through chg\n")
    assert client.hg("commit", "-A", "-m", "via chg", cwd=work, program=CHG).returncode == 0
    push = client.hg("push", cwd=work, program=CHG)
    assert push.returncode == 0, push.output
    assert list(Path(chg_env["CHGSOCKNAME"]).parent.iterdir()), "chg started no server"
    assert not any(bed.server.password in out for out in client.outputs)
