"""Contract tests: the official azure-identity credentials against the emulator's Azure host
endpoints (IMDS, Arc, Cloud Shell, Azure ML, App Service over http) and its CI OIDC issuers with
Entra's federated credential check: what Microsoft's own client accepts, the emulator must
answer as the real services do. IMDS and Arc run in a network + mount namespace of their own
(tests/netns.py), so the SDK's fixed IMDS address and /var/opt/azcmagent/tokens are the
namespace's."""

from __future__ import annotations

import json
import os
import ssl
import urllib.request
from base64 import urlsafe_b64decode

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import (
    AzurePipelinesCredential,
    ClientAssertionCredential,
    ManagedIdentityCredential,
)
from emulator import Emulator, start_emulator
from netns import ARC_TOKEN_DIR, IMDS_ADDRESS, run_isolated, unavailable_reason

SCOPE = "https://vault.azure.net/.default"
IDENTITY_VARIABLES = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IDENTITY_SERVER_THUMBPRINT",
    "AZURE_CLIENT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
)
namespaces = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture
def listeners(tmp_path):
    emu = start_emulator(
        tmp_path,
        http_listen=["cloudshell=127.0.0.1:0", "ml=127.0.0.1:0", "appservice=127.0.0.1:0"],
    )
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def host_env(monkeypatch):
    """Only the variables a test sets decide which managed identity source the SDK picks."""
    for name in IDENTITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("role", ["cloudshell", "ml", "appservice"])
def test_managed_identity_credential_uses_each_local_endpoint(listeners, host_env, role):
    for name, value in listeners.identity_env(role).items():
        host_env.setenv(name, value)
    token = ManagedIdentityCredential().get_token(SCOPE)
    c = claims(token.token)
    assert c["aud"] == "https://vault.azure.net"
    assert c["appid"] == listeners.principal("managed")["client_id"]
    assert token.expires_on > c["iat"]
    served = [r for r in listeners.requests() if r.get("listener") == role]
    assert served and served[-1]["status"] == 200, served


def _sdk_on_azure_host(tmp_path, role: str) -> dict:
    """In the namespace: the emulator serving ``role``, the SDK's ManagedIdentityCredential."""
    listen = f"imds={IMDS_ADDRESS}:80" if role == "imds" else "arc=127.0.0.1:0"
    emu = start_emulator(tmp_path, http_listen=[listen], arc_token_dir=ARC_TOKEN_DIR)
    try:
        for name in IDENTITY_VARIABLES:
            os.environ.pop(name, None)
        os.environ.update(emu.identity_env(role))
        token = ManagedIdentityCredential().get_token(SCOPE)
        served = [(r["status"], "metadata" in r["path"]) for r in emu.requests()]
        return {"claims": claims(token.token), "served": served}
    finally:
        emu.stop()


@namespaces
@pytest.mark.parametrize("role", ["imds", "arc"])
def test_managed_identity_credential_on_a_vm_and_an_arc_server(tmp_path, role):
    result = run_isolated(_sdk_on_azure_host, tmp_path, role)
    assert result["claims"]["aud"] == "https://vault.azure.net"
    statuses = [status for status, _ in result["served"]]
    if role == "arc":
        # The challenge, then the key file's content.
        assert statuses == [401, 200], result
    else:
        # The SDK's probe without the Metadata header must get IMDS's 400, then the token.
        assert statuses[-1] == 200 and set(statuses) <= {400, 200}, result


def _github_token(emu: Emulator) -> str:
    o = emu.oidc["github"]
    req = urllib.request.Request(
        o["request_url"] + "&audience=api://AzureADTokenExchange",
        headers={"Authorization": f"Bearer {o['request_token']}"},
    )
    ctx = ssl.create_default_context(cafile=emu.ca_file)
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        return json.loads(resp.read())["value"]


def test_client_assertion_credential_exchanges_a_github_token(emulator):
    emulator.federate("reader", "github")
    reader = emulator.principal("reader")
    cred = ClientAssertionCredential(
        emulator.tenant_id,
        reader["client_id"],
        lambda: _github_token(emulator),
        authority=emulator.authority_host,
        disable_instance_discovery=True,
        connection_verify=emulator.ca_file,
    )
    assert claims(cred.get_token(SCOPE).token)["appid"] == reader["client_id"]

    emulator.set_oidc_claims("github", {"sub": "repo:hg-keyvault/ci:pull_request"})
    other = ClientAssertionCredential(
        emulator.tenant_id,
        reader["client_id"],
        lambda: _github_token(emulator),
        authority=emulator.authority_host,
        disable_instance_discovery=True,
        connection_verify=emulator.ca_file,
    )
    with pytest.raises(ClientAuthenticationError) as refused:
        other.get_token(SCOPE)
    assert "AADSTS70021" in str(refused.value)


def test_azure_pipelines_credential_exchanges_the_service_connection_token(emulator, monkeypatch):
    emulator.federate("reader", "pipelines")
    p = emulator.oidc["pipelines"]
    monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", p["request_uri"])
    reader = emulator.principal("reader")
    cred = AzurePipelinesCredential(
        tenant_id=emulator.tenant_id,
        client_id=reader["client_id"],
        service_connection_id=p["service_connection_id"],
        system_access_token=p["access_token"],
        authority=emulator.authority_host,
        disable_instance_discovery=True,
        connection_verify=emulator.ca_file,
    )
    assert claims(cred.get_token(SCOPE).token)["appid"] == reader["client_id"]
    oidc = [r for r in emulator.requests() if r["target"] == "oidc"]
    assert [(r["method"], r["status"]) for r in oidc] == [("POST", 200)]
