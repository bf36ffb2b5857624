"""ssh:// URLs: the private key lives only in the vault and reaches hg's own ssh
child through a private ssh-agent that dies with the command.

Real parts: OpenSSH's sshd on loopback (public key only, this test's
authorized_keys), the real ssh client, ssh-agent and ssh-add, the venv's hg on
both sides, the Key Vault emulator.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from bed import Bed, files_containing, start_bed
from hgserver import HG
from sshserver import SshServer, new_key_pair, start_sshd

SSH_REF = "secret://hg/ssh/deploy-key"
TAP = Path(__file__).with_name("proctap.py")


@pytest.fixture(scope="module")
def bed(tmp_path_factory) -> Bed:
    bed = start_bed(tmp_path_factory.mktemp("sshbed"))
    try:
        yield bed
    finally:
        bed.stop()


@pytest.fixture(scope="module")
def sshd(bed) -> SshServer:
    server = start_sshd(bed.root / "sshd")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def key(bed, sshd) -> bytes:
    private, public = new_key_pair()
    sshd.authorize(public)
    bed.provision(private, ref=SSH_REF)
    return private


def agent_leftovers(tmpdir: Path) -> list[Path]:
    """What the command left in its TMPDIR besides the token cache's lock directory, which is
    meant to stay (mode 0700, empty lock files only, see test_request_counts.py)."""
    lock_dir = tmpdir / f"hg-keyvault-{os.getuid()}"
    if lock_dir.exists():
        assert all(p.stat().st_size == 0 for p in lock_dir.iterdir())
    return [p for p in tmpdir.iterdir() if p != lock_dir]


def ssh_client(bed, sshd, root: Path, *, ref: str = SSH_REF, tap: str = "", prefix=None):
    """A client whose [auth] group 'box' maps the sshd's origin to the vault key."""
    root.mkdir(parents=True, exist_ok=True)
    ssh = sshd.ssh_command()
    if tap:
        ssh = f"{sys.executable} {TAP} {root / 'tap.jsonl'} {tap} -- {ssh}"
    client = bed.client(
        root,
        extra=(
            f"[ui]\nssh = {ssh}\nremotecmd = {HG}\n"
            f"[auth]\nbox.prefix = {prefix or sshd.origin()}\nbox.vault = {ref}\n"
        ),
    )
    client.env["KEYVAULT_TAP_ROOT"] = str(os.getpid())
    client.env["KEYVAULT_TAP_MARK"] = root.name
    client.env["TMPDIR"] = str(root / "tmp")
    (root / "tmp").mkdir(exist_ok=True)
    return client


def taps(root: Path) -> list[dict]:
    path = root / "tap.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def agent_of(tap: dict) -> dict:
    """The ssh-agent serving the socket that hg handed to its ssh child."""
    me = next(p for p in tap["processes"] if p["pid"] == tap["self"])
    socket = me["environ"]["SSH_AUTH_SOCK"]
    agents = [p for p in tap["processes"] if p["comm"] == "ssh-agent" and socket in p["cmdline"]]
    assert len(agents) == 1, tap
    return agents[0]


def gone(pid: int, within: float = 5.0) -> bool:
    """True once pid has exited (a zombie counts as exited), polling up to ``within`` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def test_clone_push_pull_over_ssh_with_the_key_only_in_the_vault(bed, sshd, key, tmp_path):
    sshd.add_repo("repo", bed.client(tmp_path / "admin").env)
    client = ssh_client(bed, sshd, tmp_path / "c", tap="")
    work = client.home / "work"

    clone = client.hg("clone", "--debug", sshd.repo_url(), str(work))
    assert clone.returncode == 0, clone.output
    assert "keyvault: using [auth] box" in clone.output
    (work / "over-ssh.txt").write_text("pushed with the vault's key\n")
    assert client.hg("commit", "-A", "-m", "ssh commit", cwd=work).returncode == 0
    push = client.hg("push", cwd=work)
    assert push.returncode == 0, push.output
    pull = client.hg("pull", cwd=work)
    assert pull.returncode == 0, pull.output

    # The server accepted our key (the only one it knows) three times.
    assert sshd.auth_log().count("Accepted publickey for") >= 3
    server_log = client.hg("log", "-R", str(sshd.repos_dir / "repo"), "-T", "{desc}\n")
    assert "ssh commit" in server_log.stdout
    # No key file, no agent socket directory left behind; the key is in no file.
    assert agent_leftovers(tmp_path / "c" / "tmp") == []
    hits, searched = files_containing([tmp_path, bed.root], key.strip().splitlines()[-2])
    assert searched > 10 and hits == []
    assert not any(b"PRIVATE KEY" in out.encode() for out in client.outputs)


def test_only_hgs_ssh_child_gets_the_agent_and_it_dies_with_the_command(bed, sshd, key, tmp_path):
    sshd.add_repo("repo2", bed.client(tmp_path / "admin").env)
    root = tmp_path / "c"
    client = ssh_client(bed, sshd, root, tap=" ")
    hook = f"{sys.executable} {TAP} {root / 'hook.jsonl'}"
    client.append_config(f"[hooks]\nchangegroup.tap = {hook}\n")

    result = client.hg("clone", sshd.repo_url("repo2"), "work")
    assert result.returncode == 0, result.output

    [tap] = taps(root)
    agent = agent_of(tap)
    socket = Path(
        next(p for p in tap["processes"] if p["pid"] == tap["self"])["environ"]["SSH_AUTH_SOCK"]
    )
    by_pid = {p["pid"]: p for p in tap["processes"]}
    assert by_pid[agent["ppid"]]["ppid"] == tap["hg"], "the agent runs under hg's own child"
    # The agent and hg's other children (the hook) never see the socket or any key.
    [hook_tap] = [json.loads(line) for line in (root / "hook.jsonl").read_text().splitlines()]
    me = next(p for p in hook_tap["processes"] if p["pid"] == hook_tap["self"])
    assert "SSH_AUTH_SOCK" not in me["environ"]
    hg = next(p for p in tap["processes"] if p["pid"] == tap["hg"])
    assert hg["environ"].get("SSH_AUTH_SOCK") != str(socket)
    assert not any(k.startswith("AZURE_") or k.startswith("IDENTITY_") for k in agent["environ"])
    # After the command: the agent has exited and its directory is gone.
    assert gone(agent["pid"])
    assert not socket.parent.exists()


@pytest.mark.parametrize("sig", ["TERM", "KILL"])
def test_agent_dies_when_hg_is_terminated_or_killed(bed, sshd, key, tmp_path, sig):
    sshd.add_repo(f"repo-{sig}", bed.client(tmp_path / "admin").env)
    root = tmp_path / "c"
    client = ssh_client(bed, sshd, root, tap=f"--signal-hg {sig}")

    result = client.hg("clone", sshd.repo_url(f"repo-{sig}"), "work")
    assert result.returncode != 0
    [tap] = taps(root)
    agent = agent_of(tap)
    # TERM: Mercurial's exit handlers stop it; KILL: the kernel's parent-death signal.
    assert gone(agent["pid"])
    if sig == "TERM":
        assert agent_leftovers(root / "tmp") == []


def test_a_key_the_server_does_not_know_aborts_without_a_partial_clone(bed, sshd, tmp_path):
    other, _public = new_key_pair("not-authorized")
    ref = "secret://hg/ssh/unknown-key"
    bed.provision(other, ref=ref)
    sshd.add_repo("repo3", bed.client(tmp_path / "admin").env)
    client = ssh_client(bed, sshd, tmp_path / "c", ref=ref)
    result = client.hg("clone", sshd.repo_url("repo3"), "work")
    assert result.returncode == 255
    assert "no suitable response from remote hg" in result.stderr
    assert "Permission denied (publickey)" in result.stderr
    assert not (client.home / "work").exists()


def test_a_value_that_is_not_a_key_aborts_naming_the_group_and_ref(bed, sshd, tmp_path):
    ref = "secret://hg/ssh/not-a-key"
    bed.provision("just a password", ref=ref)
    client = ssh_client(bed, sshd, tmp_path / "c", ref=ref)
    result = client.hg("clone", sshd.repo_url("repo"), "work")
    assert result.returncode == 255
    assert "ssh-add refused the key of [auth] box" in result.stderr
    assert f"hg vault set {ref}" in result.stderr
    assert agent_leftovers(tmp_path / "c" / "tmp") == []


def test_a_tmpdir_too_long_for_the_agent_socket_is_named_not_a_timeout(bed, sshd, key, tmp_path):
    client = ssh_client(bed, sshd, tmp_path / "c")
    long_tmp = tmp_path / "c" / "tmp" / ("t" * 100)
    long_tmp.mkdir()
    client.env["TMPDIR"] = str(long_tmp)
    result = client.hg("clone", sshd.repo_url("repo"), "work")
    assert result.returncode == 255
    assert "cannot start ssh-agent: its socket path" in result.stderr, result.stderr
    assert "set TMPDIR to a shorter directory" in result.stderr
    assert "did not start within" not in result.stderr
    assert agent_leftovers(long_tmp) == []
    assert not (client.home / "work").exists()


def test_ssh_urls_no_group_matches_are_left_to_ssh(bed, sshd, key, tmp_path):
    # A group for another port: the vault is never asked, ssh has no key and fails.
    before = len(bed.emulator.requests())
    client = ssh_client(bed, sshd, tmp_path / "c", prefix="ssh://127.0.0.1:1/")
    result = client.hg("clone", sshd.repo_url("repo"), "work")
    assert result.returncode == 255
    assert "keyvault" not in result.stderr
    assert len(bed.emulator.requests()) == before


def test_the_key_read_is_one_audit_line_tied_to_its_vault_request(bed, sshd, key, tmp_path):
    sshd.add_repo("audited", bed.client(tmp_path / "admin").env)
    client = ssh_client(bed, sshd, tmp_path / "c")
    log = tmp_path / "audit.jsonl"
    client.append_config(f"[keyvault]\naudit-log = {log}\n")
    before = len(bed.emulator.requests())

    clone = client.hg("clone", sshd.repo_url("audited"), "work")

    assert clone.returncode == 0, clone.output
    [entry] = [json.loads(line) for line in log.read_text().splitlines()]
    assert (entry["action"], entry["use"], entry["outcome"]) == ("read", "ssh", "ok")
    assert (entry["group"], entry["ref"], entry["command"]) == ("box", SSH_REF, "clone")
    assert entry["version"] and entry["credential"] == "managed-identity"
    [read] = [
        r
        for r in bed.emulator.requests()[before:]
        if r["client_request_id"] == entry["request_id"] and r["status"] == 200
    ]
    assert read["method"] == "GET"
    assert b"PRIVATE KEY" not in log.read_bytes()
