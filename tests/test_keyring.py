"""The OS keyring provider against real stores: gnome-keyring's Secret Service
on a private D-Bus session bus, and the kernel's keyutils. Same refs, commands
and states as Key Vault; real hg, real server."""

from __future__ import annotations

import json
import secrets
import time

import pytest
from bed import files_containing


def keyring_client(bed, root, *, keyring: str, secret_service=None, ref=None, extra=""):
    """A client whose [keyvault] names the keyring provider; unique names per client, since
    keyutils' persistent keyring is shared by every process of the user."""
    prefix = f"t{secrets.token_hex(4)}-"
    client = bed.client(
        root,
        ref=ref or f"secret://keyring/{secrets.token_hex(4)}/password",
        extra=f"[keyvault]\nprovider = keyring\nkeyring = {keyring}\nname-prefix = {prefix}\n"
        + extra,
    )
    client.env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    if secret_service is not None:
        client.env.update(secret_service.env())
    return client


def ref_of(client) -> str:
    for line in client.hgrc.read_text().splitlines():
        if line.startswith("corp.vault = "):
            return line.split(" = ", 1)[1]
    raise AssertionError("no corp.vault in the client's hgrc")


@pytest.mark.parametrize("keyring", ["secret-service", "keyutils"])
def test_clone_reads_the_password_from_the_keyring_and_leaves_it_nowhere(
    bed, secret_service, tmp_path, keyring
):
    client = keyring_client(bed, tmp_path, keyring=keyring, secret_service=secret_service)
    ref = ref_of(client)
    stored = client.hg("vault", "set", ref, stdin=bed.server.password.encode())
    assert stored.returncode == 0, stored.output

    clone = client.hg("clone", "--debug", bed.server.repo_url(), "work")
    assert clone.returncode == 0, clone.output
    assert "keyvault: using [auth] corp" in clone.output
    status = client.hg("vault", "-T", "json")
    assert status.returncode == 0, status.output
    [data] = json.loads(status.stdout)
    assert data["provider"] == "keyring"
    assert data["keyring"] == keyring
    assert data["url"] is None
    [corp] = data["secrets"]
    assert corp["state"] == "ok"
    assert corp["ref"] == ref

    password = bed.server.password.encode()
    roots = [tmp_path, bed.root, secret_service.home]
    hits, searched = files_containing(roots, password)
    assert searched > 20
    assert hits == []  # gnome-keyring's files hold it encrypted only
    assert not any(bed.server.password in out for out in client.outputs)
    assert client.hg("vault", "forget", ref, "--yes").returncode == 0


def test_status_reports_the_store_auto_chose(bed, secret_service, tmp_path):
    with_bus = keyring_client(bed, tmp_path / "bus", keyring="auto", secret_service=secret_service)
    [data] = json.loads(with_bus.hg("vault", "-T", "json").stdout)
    assert data["keyring"] == "secret-service"
    assert "Secret Service answered" in data["keyring_detail"]

    without_bus = keyring_client(bed, tmp_path / "nobus", keyring="auto")
    result = without_bus.hg("vault")
    assert "keyring:    keyutils" in result.stdout, result.output
    assert "no Secret Service" in result.stdout


@pytest.mark.parametrize("keyring", ["secret-service", "keyutils"])
def test_rotation_expiry_tags_and_states_match_key_vault(bed, secret_service, tmp_path, keyring):
    client = keyring_client(
        bed,
        tmp_path,
        keyring=keyring,
        secret_service=secret_service,
        extra="[auth]\n"
        "soon.prefix = https://soon.example/\nsoon.username = u\nsoon.vault = secret://k/soon\n"
        "old.prefix = https://old.example/\nold.username = u\nold.vault = secret://k/old\n"
        "gone.prefix = https://gone.example/\ngone.username = u\ngone.vault = secret://k/gone\n",
    )
    ref = ref_of(client)
    first = client.hg("vault", "set", ref, "-T", "json", stdin=b"one")
    second = client.hg(
        "vault", "set", ref, "--tag", "team=ci", "--tag", "owner=ops", "-T", "json", stdin=b"two"
    )
    [v1], [v2] = json.loads(first.stdout), json.loads(second.stdout)
    assert v1["version"] != v2["version"]
    assert v2["tags"] == {"owner": "ops", "team": "ci"}
    assert (
        client.hg("vault", "set", "secret://k/soon", "--expires", "3", stdin=b"s").returncode == 0
    )
    past = client.hg("vault", "set", "secret://k/old", "--expires", "2020-01-01", stdin=b"o")
    assert past.returncode == 0, past.output

    [status] = json.loads(client.hg("vault", "-T", "json").stdout)
    states = {s["group"]: s for s in status["secrets"]}
    assert states["corp"]["state"] == "ok"
    assert states["corp"]["version"] == v2["version"]  # readers get the current version
    assert states["soon"]["state"] == "expiring soon"
    assert states["old"]["state"] == "expired"
    assert states["gone"]["state"] == "missing"
    assert "hg vault set secret://k/gone" in states["gone"]["hint"]

    listed = {
        item["ref"]: item for item in json.loads(client.hg("vault", "list", "-T", "json").stdout)
    }
    assert listed[ref]["versions"] == 2
    assert listed[ref]["tags"] == {"owner": "ops", "team": "ci"}
    assert listed["secret://k/old"]["state"] == "expired"
    assert listed["secret://k/soon"]["expires"].endswith("Z")

    # An expired secret stops the command that needs it, with a hint.
    expired = client.hg(
        "clone", bed.server.repo_url(), "work", "--config", "auth.corp.vault=secret://k/old"
    )
    assert expired.returncode == 255
    assert "has expired" in expired.stderr
    assert "hg vault set secret://k/old" in expired.stderr
    for r in (ref, "secret://k/soon", "secret://k/old"):
        assert client.hg("vault", "forget", r, "--yes").returncode == 0


def test_forget_asks_first_and_the_keyring_keeps_nothing(bed, secret_service, tmp_path):
    client = keyring_client(bed, tmp_path, keyring="secret-service", secret_service=secret_service)
    ref = ref_of(client)
    assert client.hg("vault", "set", ref, stdin=b"to-forget").returncode == 0

    refused = client.hg("vault", "forget", ref)  # non-interactive: the default answer, no
    assert refused.returncode == 255
    assert "--yes" in refused.stderr
    forgotten = client.hg("vault", "forget", ref, "--yes", "-T", "json")
    assert forgotten.returncode == 0, forgotten.output
    [data] = json.loads(forgotten.stdout)
    assert data["recoverable"] is False
    [status] = json.loads(client.hg("vault", "-T", "json").stdout)
    assert status["secrets"][0]["state"] == "missing"


def test_a_keyring_that_does_not_answer_fails_within_the_timeout(bed, tmp_path):
    # A bus that accepts connections but never answers: what a hung session bus looks like.
    import socket as socketmod

    path = tmp_path / "silent.sock"
    silent = socketmod.socket(socketmod.AF_UNIX, socketmod.SOCK_STREAM)
    silent.bind(str(path))
    silent.listen(8)
    try:
        client = keyring_client(
            bed, tmp_path, keyring="secret-service", extra="[keyvault]\ntimeout = 1.5\n"
        )
        client.env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={path}"
        start = time.monotonic()
        result = client.hg("vault", "set", ref_of(client), stdin=b"v")
        elapsed = time.monotonic() - start
    finally:
        silent.close()
    assert result.returncode == 255
    assert "did not answer within 1.5 s" in result.stderr
    assert "(a locked Secret Service" in result.stderr  # the hint
    assert elapsed < 1.5 + 3  # the timeout plus a margin for starting hg


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ("provider = gnome", "keyvault.provider"),
        ("provider = keyring\nkeyring = wallet", "keyvault.keyring"),
        ("expiry-warning = soon", "keyvault.expiry-warning"),
    ],
)
def test_unknown_provider_or_keyring_is_a_config_error_naming_the_key(bed, tmp_path, setting, key):
    client = bed.client(tmp_path, extra=f"[keyvault]\n{setting}\n")
    result = client.hg("vault")
    assert result.returncode in (30, 255), result.output
    assert key in result.stderr


def test_azure_without_url_says_which_key_to_set(bed, tmp_path):
    client = bed.client(tmp_path, extra="[keyvault]\nprovider = azure\nurl =\n")
    result = client.hg("vault")
    assert result.returncode != 0
    assert "keyvault.url is not set" in result.stderr
