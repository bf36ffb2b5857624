"""Contract tests: the official Python SDK (azure-identity, azure-keyvault-secrets) against the
emulator, with only the options a private-cloud user would set (authority, CA bundle,
verify_challenge_resource=False, disable_instance_discovery=True)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.identity import ClientSecretCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
from emulator import Emulator, start_emulator

SECRET_VALUE = "hunter2-contract-value"


def credential(emu: Emulator, name: str = "officer", secret: str | None = None):
    p = emu.principal(name)
    return ClientSecretCredential(
        emu.tenant_id,
        p["client_id"],
        secret if secret is not None else p["client_secret"],
        authority=emu.authority_host,
        disable_instance_discovery=True,
        connection_verify=emu.ca_file,
    )


def client(emu: Emulator, name: str = "officer", **kwargs) -> SecretClient:
    return SecretClient(
        emu.vault_url,
        kwargs.pop("credential", None) or credential(emu, name),
        verify_challenge_resource=False,
        connection_verify=emu.ca_file,
        **kwargs,
    )


def test_set_get_and_get_version(emulator):
    c = client(emulator)
    first = c.set_secret("db-password", "one")
    second = c.set_secret("db-password", "two")
    assert len(first.properties.version) == 32
    assert first.properties.version != second.properties.version
    assert second.id == f"{emulator.vault_url}secrets/db-password/{second.properties.version}"
    assert c.get_secret("db-password").value == "two"
    old = c.get_secret("db-password", first.properties.version)
    assert old.value == "one"
    assert old.properties.enabled is True
    assert old.properties.recovery_level == "Recoverable+Purgeable"
    with pytest.raises(ResourceNotFoundError) as e:
        c.get_secret("never-set")
    assert e.value.error.code == "SecretNotFound"


def test_tags_and_content_type_round_trip(emulator):
    c = client(emulator)
    c.set_secret("tagged", "v", content_type="application/octet-stream;base64", tags={"ref": "r"})
    got = c.get_secret("tagged")
    assert got.properties.content_type == "application/octet-stream;base64"
    assert got.properties.tags == {"ref": "r"}
    updated = c.update_secret_properties("tagged", tags={"ref": "r2"}, content_type="text/plain")
    assert updated.tags == {"ref": "r2"}
    assert updated.content_type == "text/plain"
    assert c.get_secret("tagged").properties.tags == {"ref": "r2"}


def test_list_with_paging(emulator):
    c = client(emulator)
    names = {f"s-{i:02d}" for i in range(12)}
    for name in names:
        c.set_secret(name, "x")
    pages = [list(page) for page in c.list_properties_of_secrets(max_page_size=5).by_page()]
    assert [len(p) for p in pages] == [5, 5, 2]
    assert {p.name for page in pages for p in page} == names
    lists = [r for r in emulator.requests() if r["path"] == "/secrets" and r["status"] == 200]
    assert len(lists) == 3
    assert "$skiptoken" in lists[-1]["query"]


def test_list_default_page_size_is_25(emulator):
    c = client(emulator)
    for i in range(27):
        c.set_secret(f"p-{i:02d}", "x")
    pages = [list(page) for page in c.list_properties_of_secrets().by_page()]
    assert [len(p) for p in pages] == [25, 2]


def test_list_versions(emulator):
    c = client(emulator)
    versions = {c.set_secret("rotated", str(i)).properties.version for i in range(3)}
    listed = list(c.list_properties_of_secret_versions("rotated"))
    assert {p.version for p in listed} == versions
    assert all(p.name == "rotated" for p in listed)


def test_delete_recover_and_purge(emulator):
    c = client(emulator)
    c.set_secret("doomed", "v")
    deleted = c.begin_delete_secret("doomed").result()
    assert deleted.recovery_id == f"{emulator.vault_url}deletedsecrets/doomed"
    assert deleted.scheduled_purge_date > deleted.deleted_date
    with pytest.raises(ResourceNotFoundError):
        c.get_secret("doomed")
    with pytest.raises(HttpResponseError) as e:
        c.set_secret("doomed", "again")
    assert e.value.status_code == 409
    assert [d.name for d in c.list_deleted_secrets()] == ["doomed"]

    recovered = c.begin_recover_deleted_secret("doomed").result()
    assert recovered.name == "doomed"
    assert c.get_secret("doomed").value == "v"

    c.begin_delete_secret("doomed").wait()
    assert c.get_deleted_secret("doomed").name == "doomed"
    c.purge_deleted_secret("doomed")
    with pytest.raises(ResourceNotFoundError):
        c.get_deleted_secret("doomed")
    c.set_secret("doomed", "reborn")


def test_reader_gets_403_on_set_but_can_get(emulator):
    client(emulator).set_secret("shared", "v")
    reader = client(emulator, "reader")
    assert reader.get_secret("shared").value == "v"
    with pytest.raises(HttpResponseError) as e:
        reader.set_secret("shared", "w")
    assert e.value.status_code == 403
    assert "setSecret/action" in e.value.message
    assert "ForbiddenByRbac" in str(e.value.response.json())


def test_nobody_gets_403_on_get(emulator):
    with pytest.raises(HttpResponseError) as e:
        client(emulator, "nobody").get_secret("anything")
    assert e.value.status_code == 403


def test_disabled_secret_is_forbidden(emulator):
    c = client(emulator)
    c.set_secret("off", "v", enabled=False)
    with pytest.raises(HttpResponseError) as e:
        c.get_secret("off")
    assert e.value.status_code == 403
    assert e.value.response.json()["error"]["innererror"]["code"] == "SecretDisabled"


def test_wrong_client_secret_is_an_aadsts_error(emulator):
    with pytest.raises(ClientAuthenticationError) as e:
        client(emulator, credential=credential(emulator, secret="wrong")).get_secret("x")
    assert "AADSTS7000215" in str(e.value)


def test_managed_identity_gets_a_secret(emulator, monkeypatch):
    client(emulator).set_secret("mi-secret", "from-mi")
    monkeypatch.setenv("IDENTITY_ENDPOINT", emulator.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", emulator.identity_header)
    cred = ManagedIdentityCredential(connection_verify=emulator.ca_file)
    assert client(emulator, credential=cred).get_secret("mi-secret").value == "from-mi"
    msi = [r for r in emulator.requests() if r["target"] == "identity"]
    assert [r["status"] for r in msi] == [200]
    assert msi[0]["principal"] == emulator.principal("managed")["client_id"]


FRESH_GET = """
import os, sys
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient
e = os.environ
cred = ClientSecretCredential(
    e["AZURE_TENANT_ID"], e["AZURE_CLIENT_ID"], e["AZURE_CLIENT_SECRET"],
    authority=e["AZURE_AUTHORITY_HOST"], disable_instance_discovery=True,
    connection_verify=e["CA_FILE"],
)
client = SecretClient(
    e["VAULT_URL"], cred, verify_challenge_resource=False, connection_verify=e["CA_FILE"]
)
sys.stdout.write(client.get_secret(sys.argv[1]).value)
"""


def test_fresh_client_get_round_trips_and_log_has_no_secrets(emulator):
    # The SDK caches challenges per process, so a fresh client means a fresh process.
    client(emulator).set_secret("counted", SECRET_VALUE)
    before = len(emulator.requests())
    reader = emulator.principal("reader")
    env = dict(
        os.environ,
        AZURE_TENANT_ID=emulator.tenant_id,
        AZURE_CLIENT_ID=reader["client_id"],
        AZURE_CLIENT_SECRET=reader["client_secret"],
        AZURE_AUTHORITY_HOST=emulator.authority_host,
        CA_FILE=emulator.ca_file,
        VAULT_URL=emulator.vault_url,
    )
    out = subprocess.run(
        [sys.executable, "-c", FRESH_GET, "counted"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout == SECRET_VALUE
    reqs = emulator.requests()[before:]
    assert [(r["method"], r["target"], r["status"]) for r in reqs] == [
        ("GET", "vault", 401),  # unauthenticated probe to learn the challenge
        ("GET", "discovery", 200),  # MSAL's OpenID configuration
        ("POST", "token", 200),
        ("GET", "vault", 200),
    ]
    assert reqs[-1]["principal"] == emulator.principal("reader")["client_id"]
    assert all(r["client_request_id"] for r in reqs if r["target"] == "vault")
    log = Path(emulator.request_log).read_text()
    for p in emulator.principals:
        assert p["client_secret"] not in log
    assert SECRET_VALUE not in log
    assert "eyJ" not in log  # no JWT


def test_throttling_is_retried_after_retry_after(emulator):
    c = client(emulator)
    c.set_secret("busy", "v")
    emulator.set_faults(
        [{"target": "vault", "kind": "status", "status": 429, "retry_after": 1, "count": 1}]
    )
    start = time.monotonic()
    assert c.get_secret("busy").value == "v"
    assert time.monotonic() - start >= 0.9
    statuses = [r["status"] for r in emulator.requests() if r["path"] == "/secrets/busy/"]
    assert statuses == [429, 200]
    assert emulator.state()["faults"][0]["remaining"] == 0


def test_status_fault_for_one_principal(emulator):
    client(emulator).set_secret("s", "v")
    reader_id = emulator.principal("reader")["client_id"]
    emulator.set_faults(
        [{"target": "vault", "kind": "status", "status": 403, "principal": reader_id}]
    )
    assert client(emulator).get_secret("s").value == "v"
    with pytest.raises(HttpResponseError) as e:
        client(emulator, "reader").get_secret("s")
    assert e.value.status_code == 403
    emulator.clear_faults()
    assert client(emulator, "reader").get_secret("s").value == "v"


def test_fault_given_at_start(tmp_path):
    emu = start_emulator(tmp_path, {"target": "token", "kind": "status", "status": 503})
    try:
        with pytest.raises(ClientAuthenticationError):
            client(emu, retry_total=0).get_secret("x")
    finally:
        emu.stop()
