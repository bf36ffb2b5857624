"""`hg vault`: status of every configured secret (never a value), `-T json`, `hg vault set`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from bed import REF, officer_vault, sdk_client
from hgext3rd.keyvault import _native

pytestmark = pytest.mark.usefixtures("clean_faults")


def groups_config(groups: dict[str, str]) -> str:
    lines = ["[auth]"]
    for name, ref in groups.items():
        lines += [
            f"{name}.prefix = https://{name}.example/",
            f"{name}.username = u-{name}",
            f"{name}.vault = {ref}",
        ]
    return "\n".join(lines) + "\n"


def test_status_reports_identity_vault_and_each_secret_as_json(bed, tmp_path, monkeypatch):
    bed.provision()
    vault = officer_vault(bed, monkeypatch)
    soon = vault.set("secret://status/soon", b"v", expires=time.time() + 3 * 86400)
    expired = vault.set("secret://status/expired", b"v", expires=time.time() - 60)
    disabled = vault.set("secret://status/disabled", b"v")
    sdk_client(bed).update_secret_properties(disabled["name"], enabled=False)
    client = bed.client(
        tmp_path,
        extra=groups_config(
            {
                "soon": "secret://status/soon",
                "expired": "secret://status/expired",
                "disabled": "secret://status/disabled",
                "missing": "secret://status/missing",
            }
        ),
    )

    result = client.hg("vault", "-T", "json")

    assert result.returncode == 1, result.output  # some configured secret cannot be read
    [status] = json.loads(result.stdout)
    managed = bed.emulator.principal("managed")
    assert status["provider"] == "azure"
    assert status["url"] == bed.emulator.vault_url
    assert status["credential"] == "managed-identity"
    assert status["tenant_id"] == bed.emulator.tenant_id
    assert status["client_id"] == managed["client_id"]
    assert status["object_id"] == managed["object_id"]
    assert status["answered"] is True
    assert isinstance(status["elapsed_ms"], int)
    assert status["error"] is None
    secrets = {s["group"]: s for s in status["secrets"]}
    assert set(secrets) == {"corp", "soon", "expired", "disabled", "missing"}
    corp = secrets["corp"]
    assert corp["state"] == "ok"
    assert corp["prefix"] == bed.server.url
    assert corp["username"] == bed.server.username
    assert corp["ref"] == REF
    assert corp["name"] == _native.secret_name(REF)
    assert corp["version"]
    assert corp["expires"] is None
    assert secrets["soon"]["state"] == "expiring soon"
    assert secrets["soon"]["version"] == soon["version"]
    assert secrets["soon"]["expires"].endswith("Z")
    assert secrets["expired"]["state"] == "expired"
    assert secrets["expired"]["version"] in (None, expired["version"])
    assert secrets["disabled"]["state"] == "disabled"
    assert secrets["missing"]["state"] == "missing"
    assert secrets["missing"]["error_kind"] == "not-found"
    assert "hg vault set secret://status/missing" in secrets["missing"]["hint"]
    # Never a value, in any field.
    assert bed.server.password not in result.output


def test_status_exits_zero_when_every_secret_is_readable(bed, tmp_path):
    bed.provision()
    client = bed.client(tmp_path)
    result = client.hg("vault")
    assert result.returncode == 0, result.output
    assert "[auth] corp: ok" in result.stdout
    assert "answered:   yes" in result.stdout
    assert bed.server.password not in result.output


def test_status_names_the_missing_role_of_a_forbidden_identity(bed, tmp_path):
    bed.provision()
    client = bed.client(tmp_path, principal="nobody")
    result = client.hg("vault", "-T", "json")
    assert result.returncode == 1
    [status] = json.loads(result.stdout)
    [corp] = status["secrets"]
    assert corp["state"] == "forbidden"
    assert "Key Vault Secrets User" in corp["hint"]


def test_status_without_any_identity_lists_every_link_and_asks_nobody(bed, tmp_path):
    client = bed.client(tmp_path)
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
        del client.env[name]
    client.env["PATH"] = "/usr/bin:/bin"
    if any(Path(d, "az").exists() for d in ("/usr/bin", "/bin")):
        pytest.skip("az is installed: the azure-cli link applies")
    before = len(bed.emulator.requests())
    result = client.hg("vault", "-T", "json")
    assert result.returncode == 1
    [status] = json.loads(result.stdout)
    assert status["asked"] is False
    assert status["answered"] is False
    assert status["error_kind"] == "unauthenticated"
    assert status["error"].startswith("no Azure credential could get a token; tried:\n")
    assert "  azure-vm: skipped: not an Azure VM" in status["error"]
    assert {s["state"] for s in status["secrets"]} == {"unknown"}
    plain = client.hg("vault")
    assert "answered:   not asked: no identity applies\n" in plain.stdout
    # Nothing was sent: not to the vault, not to any identity endpoint.
    assert bed.emulator.requests()[before:] == []


def test_status_of_a_vault_that_does_not_answer_is_quick_and_nonzero(bed, tmp_path):
    bed.emulator.set_faults([{"target": "vault", "kind": "hang"}])
    client = bed.client(
        tmp_path, timeout=1.5, extra=groups_config({"a": "secret://a", "b": "secret://b"})
    )
    result = client.hg("vault", "-T", "json")
    assert result.returncode == 1
    [status] = json.loads(result.stdout)
    assert status["answered"] is False
    assert status["error_kind"] == "timeout"
    assert {s["state"] for s in status["secrets"]} == {"unknown"}
    # One timeout, not one per secret.
    assert result.seconds < 1.5 + 3


def test_set_reads_the_value_from_stdin_and_strips_one_newline(bed, tmp_path, monkeypatch):
    client = bed.client(tmp_path)
    result = client.hg("vault", "set", "secret://set/stdin", "-T", "json", stdin=b"from-stdin\n")
    assert result.returncode == 0, result.output
    [stored] = json.loads(result.stdout)
    assert stored["ref"] == "secret://set/stdin"
    assert stored["name"] == _native.secret_name("secret://set/stdin")
    value, props = officer_vault(bed, monkeypatch).get("secret://set/stdin")
    assert value == b"from-stdin"
    assert props["version"] == stored["version"]
    assert "from-stdin" not in result.output


def test_set_refuses_an_empty_value(bed, tmp_path):
    client = bed.client(tmp_path)
    result = client.hg("vault", "set", "secret://set/empty", stdin=b"")
    assert result.returncode == 255
    assert "refusing to store an empty value" in result.stderr


def test_set_with_a_reader_identity_names_the_officer_role(bed, tmp_path):
    client = bed.client(tmp_path, principal="reader")
    result = client.hg("vault", "set", "secret://set/reader", stdin=b"value")
    assert result.returncode == 255
    assert "Key Vault Secrets Officer" in result.stderr


def test_unknown_subcommand_is_a_usage_error(bed, tmp_path):
    client = bed.client(tmp_path)
    result = client.hg("vault", "frobnicate")
    assert result.returncode == 255
    assert "invalid arguments" in result.stderr


def test_set_on_a_terminal_asks_at_a_hidden_prompt(bed, tmp_path, monkeypatch):
    import os
    import pty
    import select
    import termios

    from hgserver import HG

    client = bed.client(tmp_path)
    value = "typed-at-the-prompt"
    pid, fd = pty.fork()
    if pid == 0:  # the child: hg on a real terminal
        os.execve(HG, [HG, "vault", "set", "secret://set/tty"], client.env)
    transcript = b""
    deadline = time.monotonic() + 30

    def read_until(marker: bytes) -> None:
        nonlocal transcript
        while marker not in transcript and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    return
                if not chunk:
                    return
                transcript += chunk

    read_until(b"value (hidden): ")
    # Mercurial writes the prompt, then getpass turns echo off (flushing typed-ahead input):
    # type only once the terminal says echo is off, as a person would be too slow not to.
    while termios.tcgetattr(fd)[3] & termios.ECHO and time.monotonic() < deadline:
        select.select([], [], [], 0.01)
    os.write(fd, value.encode() + b"\n")
    read_until(b"version")
    done, status = os.waitpid(pid, os.WNOHANG)
    while not done and time.monotonic() < deadline:
        read_until(b"\0")  # drain output until the child exits or the deadline passes
        done, status = os.waitpid(pid, os.WNOHANG)
    if not done:
        os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, transcript
    assert b"stored secret://set/tty" in transcript
    assert value.encode() not in transcript  # not echoed
    assert officer_vault(bed, monkeypatch).get("secret://set/tty")[0] == value.encode()
