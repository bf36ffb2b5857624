"""The operator's subcommands against the Key Vault emulator (and, for migrate, a real
Secret Service): set --expires/--tag, list, forget, check URL (with --reveal only on a
terminal), migrate between keyring and azure. None prints a value."""

from __future__ import annotations

import json
import os
import pty
import secrets
import select
import time

from bed import REF, files_containing, officer_vault
from hgext3rd.keyvault import _native
from hgserver import HG
from mercurial.utils import urlutil


def unique(name: str) -> str:
    return f"secret://ops/{name}/{secrets.token_hex(4)}"


def test_set_expires_and_tags_then_list_counts_versions(bed, tmp_path, monkeypatch):
    client = bed.client(tmp_path)
    ref = unique("listed")
    assert client.hg("vault", "set", ref, stdin=b"first").returncode == 0
    second = client.hg(
        "vault",
        "set",
        ref,
        "--expires",
        "2099-12-31",
        "--tag",
        "team=ci",
        "-T",
        "json",
        stdin=b"second",
    )
    assert second.returncode == 0, second.output
    [stored] = json.loads(second.stdout)
    assert stored["expires"] == "2099-12-31T00:00:00Z"
    assert stored["tags"] == {"team": "ci"}
    value, props = officer_vault(bed, monkeypatch).get(ref)
    assert value == b"second"  # readers get the current version
    assert props["version"] == stored["version"]

    listed = client.hg("vault", "list", "-T", "json")
    assert listed.returncode == 0, listed.output
    items = {i["ref"]: i for i in json.loads(listed.stdout)}
    item = items[ref]
    assert item["versions"] == 2
    assert item["version"] == stored["version"]
    assert item["state"] == "ok"
    assert item["enabled"] is True
    assert item["tags"] == {"team": "ci"}
    assert item["name"] == _native.secret_name(ref)
    assert "second" not in listed.output and "first" not in listed.output


def test_set_rejects_bad_expiry_and_tags_and_options_of_other_subcommands(bed, tmp_path):
    client = bed.client(tmp_path)
    bad_date = client.hg("vault", "set", unique("x"), "--expires", "tomorrow", stdin=b"v")
    assert bad_date.returncode != 0
    assert "neither a number of days nor a date" in bad_date.stderr
    bad_tag = client.hg("vault", "set", unique("x"), "--tag", "novalue", stdin=b"v")
    assert "is not KEY=VALUE" in bad_tag.stderr
    wrong = client.hg("vault", "list", "--yes")
    assert wrong.returncode != 0
    assert "--yes does not apply to hg vault list" in wrong.stderr


def test_forget_soft_deletes_after_confirmation(bed, tmp_path):
    client = bed.client(tmp_path)
    ref = unique("forget")
    assert client.hg("vault", "set", ref, stdin=b"v").returncode == 0
    deleted_before = bed.emulator.state()["store"]["deleted_secrets"]

    refused = client.hg("vault", "forget", ref)
    assert refused.returncode == 255
    assert "not deleting" in refused.stderr
    assert bed.emulator.state()["store"]["deleted_secrets"] == deleted_before

    forgotten = client.hg("vault", "forget", ref, "--yes", "-T", "json")
    assert forgotten.returncode == 0, forgotten.output
    [data] = json.loads(forgotten.stdout)
    assert data["recoverable"] is True
    assert data["scheduled_purge"].endswith("Z")
    assert bed.emulator.state()["store"]["deleted_secrets"] == deleted_before + 1


def test_check_names_the_matching_group_and_why_the_others_do_not_match(bed, tmp_path):
    bed.provision()
    client = bed.client(
        tmp_path,
        extra="[auth]\nother.prefix = https://hg.other.example/\nother.username = u\n"
        "other.vault = secret://ops/other\n",
    )
    url = bed.server.repo_url()
    result = client.hg("vault", "check", url, "-T", "json")
    assert result.returncode == 0, result.output
    [data] = json.loads(result.stdout)
    assert data["group"] == "corp"
    assert data["state"] == "ok"
    assert data["ref"] == REF
    groups = {g["group"]: g for g in data["groups"]}
    assert groups["corp"]["selected"] is True
    assert "covers it" in groups["corp"]["reason"]
    assert groups["other"]["covers"] is False
    host = urlutil.url(url.encode()).host.decode()
    assert f"host {host} is not hg.other.example" in groups["other"]["reason"]
    assert bed.server.password not in result.output

    nowhere = client.hg("vault", "check", "https://elsewhere.example/repo")
    assert nowhere.returncode == 1
    assert "no vault group covers this URL" in nowhere.stdout
    assert f"[auth] corp: no (host elsewhere.example is not {host})" in nowhere.stdout


def test_check_refuses_to_reveal_off_a_terminal(bed, tmp_path):
    bed.provision()
    client = bed.client(tmp_path)
    piped = client.hg("vault", "check", bed.server.repo_url(), "--reveal")
    assert piped.returncode == 255
    assert "standard output is not a terminal" in piped.stderr
    as_json = client.hg("vault", "check", bed.server.repo_url(), "--reveal", "-T", "json")
    assert as_json.returncode == 255
    assert "-T output" in as_json.stderr
    assert not any(bed.server.password in out for out in client.outputs)


def test_check_reveals_on_a_terminal(bed, tmp_path):
    bed.provision()
    client = bed.client(tmp_path)
    pid, fd = pty.fork()
    if pid == 0:  # the child: hg on a real terminal
        os.execve(HG, [HG, "vault", "check", bed.server.repo_url(), "--reveal"], client.env)
    transcript = b""
    deadline = time.monotonic() + 60
    done = False
    while not done and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            transcript += chunk
            done = not chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, transcript
    assert b"password: " + bed.server.password.encode() in transcript


def test_migrate_keyring_to_azure_and_back(bed, secret_service, tmp_path, monkeypatch):
    prefix = f"m{secrets.token_hex(3)}-"
    client = bed.client(
        tmp_path, extra=f"[keyvault]\nkeyring = secret-service\nname-prefix = {prefix}\n"
    )
    client.env.update(secret_service.env())
    keyring = ["--config", "keyvault.provider=keyring"]
    refs = [unique(f"migrate{i}") for i in range(3)]
    for i, ref in enumerate(refs):
        args = ["vault", "set", ref, *keyring]
        if i == 0:
            args += ["--expires", "2099-01-01", "--tag", "owner=ops"]
        assert client.hg(*args, stdin=f"value-{i}".encode()).returncode == 0
    secrets_before = bed.emulator.state()["store"]["secrets"]

    dry = client.hg("vault", "migrate", "--from", "keyring", "--to", "azure", "-n", "-T", "json")
    assert dry.returncode == 0, dry.output
    [plan] = json.loads(dry.stdout)
    assert plan["dry_run"] is True
    assert plan["total"] == 3, plan
    assert {s["action"] for s in plan["secrets"]} == {"would copy"}
    assert bed.emulator.state()["store"]["secrets"] == secrets_before  # nothing written

    first = client.hg("vault", "migrate", "--from", "keyring", "--to", "azure", "-T", "json")
    assert first.returncode == 0, first.output
    [report] = json.loads(first.stdout)
    assert (report["copied"], report["unchanged"], report["failed"]) == (3, 0, 0)
    vault = officer_vault(bed, monkeypatch).__class__(
        bed.emulator.vault_url,
        credential="environment",
        cacerts=str(bed.ca_file),
        verify_challenge_resource=False,
        name_prefix=prefix,
    )
    for i, ref in enumerate(refs):
        value, props = vault.get(ref)
        assert value == f"value-{i}".encode()
    assert vault.properties(refs[0])["tags"]["owner"] == "ops"
    assert vault.properties(refs[0])["expires"] is not None

    again = client.hg("vault", "migrate", "--from", "keyring", "--to", "azure", "-T", "json")
    [report] = json.loads(again.stdout)
    assert (report["copied"], report["unchanged"]) == (0, 3)  # idempotent
    assert len(vault.versions(refs[1])) == 1

    # The source is untouched unless asked; then it is emptied once each copy is verified.
    listed = json.loads(client.hg("vault", "list", *keyring, "-T", "json").stdout)
    assert {i["ref"] for i in listed} >= set(refs)
    moved = client.hg(
        "vault", "migrate", "--from", "keyring", "--to", "azure", "--remove-source", "-T", "json"
    )
    [report] = json.loads(moved.stdout)
    assert report["removed"] == 3
    listed = json.loads(client.hg("vault", "list", *keyring, "-T", "json").stdout)
    assert not {i["ref"] for i in listed} & set(refs)

    back = client.hg("vault", "migrate", "--from", "azure", "--to", "keyring", "-T", "json")
    assert back.returncode == 0, back.output
    [report] = json.loads(back.stdout)
    assert (report["copied"], report["failed"]) == (3, 0)
    # Secrets other tests stored under the default prefix are not this configuration's.
    assert report["skipped_other_prefix"] >= 1
    listed = {
        i["ref"] for i in json.loads(client.hg("vault", "list", *keyring, "-T", "json").stdout)
    }
    assert set(refs) <= listed
    for out in client.outputs:
        assert not any(f"value-{i}" in out for i in range(3))
    for i in range(3):
        hits, searched = files_containing(
            [tmp_path, bed.root, secret_service.home], f"value-{i}".encode()
        )
        assert searched > 20
        assert hits == []


def _vault_requests_for(bed, name: str) -> list[dict]:
    return [r for r in bed.emulator.requests() if f"/secrets/{name}" in r["path"]]


def test_set_refuses_a_value_over_key_vaults_limit_before_sending_it(bed, tmp_path):
    # Key Vault stores at most 25,600 characters; as Base64 that is 19,200 bytes.
    client = bed.client(tmp_path)
    fits = unique("fits")
    assert client.hg("vault", "set", fits, stdin=b"x" * 19_200).returncode == 0
    big = unique("big")
    result = client.hg("vault", "set", big, stdin=b"y" * 19_201)
    assert result.returncode == 255, result.output
    assert "is 19201 bytes; Key Vault stores at most 19200 bytes per secret" in result.stderr
    assert "split it over several refs" in result.stderr
    assert "yyyy" not in result.output
    assert _vault_requests_for(bed, _native.secret_name(big)) == [], "nothing was sent"


def test_list_shows_the_current_version_when_versions_share_a_created_second(bed, tmp_path):
    # The service lists versions in no particular order and `created` has one-second
    # resolution: the emulator's frozen clock makes both versions share one second (and it
    # lists newest first), so the current version must come from a get without version.
    # That get carries the value: it must not reach any output, not even with --debug.
    client = bed.client(tmp_path)
    ref = unique("rotated")
    first, second_value = secrets.token_hex(16), secrets.token_hex(16)
    bed.emulator.freeze_clock(1_700_000_000)
    try:
        assert client.hg("vault", "set", ref, stdin=first.encode()).returncode == 0
        second = client.hg("vault", "set", ref, "-T", "json", stdin=second_value.encode())
    finally:
        bed.emulator.freeze_clock(None)
    assert second.returncode == 0, second.output
    [stored] = json.loads(second.stdout)
    listed = client.hg("vault", "list", "-T", "json")
    assert listed.returncode == 0, listed.output
    item = {i["ref"]: i for i in json.loads(listed.stdout)}[ref]
    assert item["versions"] == 2
    assert item["version"] == stored["version"]
    debug = client.hg("vault", "list", "--debug", "--traceback")
    assert debug.returncode == 0, debug.output
    for value in (first, second_value):
        assert value not in listed.output + debug.output
        assert files_containing([client.root, client.home], value.encode())[0] == []


def test_set_on_an_access_policy_vault_hints_the_policy_command_not_a_role(bed, tmp_path):
    client = bed.client(tmp_path, principal="reader")
    bed.emulator.set_permission_model("access-policy")
    try:
        result = client.hg("vault", "set", unique("policy"), stdin=b"v")
    finally:
        bed.emulator.set_permission_model("rbac")
    assert result.returncode == 255, result.output
    oid = bed.emulator.principal("reader")["object_id"]
    assert "no access policy of the vault grants it the secrets set permission" in result.stderr
    assert "(ForbiddenByPolicy)" in result.stderr
    assert (
        "grant it with az keyvault set-policy --name <vault name> "
        f"--object-id {oid} --secret-permissions set" in result.stderr
    ), result.stderr
    assert "role" not in result.stderr


def test_an_identifier_with_a_trailing_slash_is_a_valid_ref(bed, tmp_path):
    ref = unique("slash")
    bed.provision(ref=ref)
    identifier = f"{bed.emulator.vault_url}secrets/{_native.secret_name(ref)}/"
    client = bed.client(tmp_path, ref=identifier)
    result = client.hg("clone", bed.server.repo_url(), "work")
    assert result.returncode == 0, result.output
