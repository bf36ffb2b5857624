"""The identity-aware proxy of the test bed (tests/servers/tokenproxy.py: Apache httpd +
mod_auth_openidc in front of hgweb) validates the emulator's Entra tokens as a real deployment
would: each refused case is refused by Apache, for the reason its error log gives, and never
reaches hgweb."""

from __future__ import annotations

import json
import ssl
import urllib.parse
import urllib.request
from base64 import b64encode, urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Iterator

import pytest
from emulator import Emulator, start_emulator
from servers.tokenproxy import TokenProxy, start_token_proxy

API = "api://hg-proxy"
ROLE = "hg.access"
WHOAMI = "/.hgserver/whoami"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory) -> Iterator[Emulator]:
    emu = start_emulator(tmp_path_factory.mktemp("emu"))
    try:
        emu.register_app(API, roles={ROLE: ["officer"]})
        emu.register_app("api://another-api", roles={ROLE: ["officer"]})
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="module")
def proxy(emulator, tmp_path_factory) -> Iterator[TokenProxy]:
    with start_token_proxy(
        tmp_path_factory.mktemp("proxy"), emulator=emulator, audience=API, required_role=ROLE
    ) as p:
        yield p


@pytest.fixture(autouse=True)
def default_tokens(emulator):
    """Every test starts and ends with tokens as Entra issues them by default."""
    emulator.set_token_settings()
    yield
    emulator.set_token_settings()
    emulator.rotate_signing_key()


def token(emu: Emulator, principal: str = "officer", scope: str = API + "/.default") -> str:
    p = emu.principal(principal)
    form = {
        "grant_type": "client_credentials",
        "client_id": p["client_id"],
        "client_secret": p["client_secret"],
        "scope": scope,
    }
    req = urllib.request.Request(
        f"{emu.authority_host}/{emu.tenant_id}/oauth2/v2.0/token",
        data=urllib.parse.urlencode(form).encode(),
    )
    ctx = ssl.create_default_context(cafile=emu.ca_file)
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        return json.loads(resp.read())["access_token"]


def basic(password: str, user: str = "ci-bot") -> str:
    return "Basic " + b64encode(f"{user}:{password}".encode()).decode()


def refused(proxy: TokenProxy, authorization: str) -> str:
    """Asserts Apache answers 401 as an OAuth 2.0 resource server does and that nothing reached
    hgweb; returns what Apache's error log said about it."""
    log_start = len(proxy.error_log_text())
    status, headers, _ = proxy.get(WHOAMI, authorization)
    assert status == 401
    assert headers.get("server", "").startswith("Apache"), headers  # not hgweb's answer
    assert proxy.last_request()["status"] == 401
    return proxy.error_log_text()[log_start:]


def test_a_valid_bearer_token_reaches_hgweb_as_the_identitys_object_id(emulator, proxy):
    status, _, body = proxy.get(WHOAMI, "Bearer " + token(emulator))
    assert status == 200
    assert json.loads(body)["remote_user"] == emulator.principal("officer")["object_id"]
    assert proxy.last_request()["auth_scheme"] == "bearer"


def test_the_token_as_a_basic_password_is_accepted_too(emulator, proxy):
    status, _, body = proxy.get(WHOAMI, basic(token(emulator)))
    assert status == 200
    assert json.loads(body)["remote_user"] == emulator.principal("officer")["object_id"]
    assert proxy.last_request()["auth_scheme"] == "basic"


def test_no_token_is_challenged_with_bearer(proxy):
    status, headers, _ = proxy.get(WHOAMI, None)
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")


def test_a_token_for_another_audience_is_refused(emulator, proxy):
    said = refused(proxy, "Bearer " + token(emulator, scope="api://another-api/.default"))
    # mod_auth_openidc authenticates the token, then `Require claim` denies it (AH01631).
    assert "could not match require claim expression '\"aud:api://hg-proxy\"'" in said, said
    assert "AH01631" in said, said


def test_a_token_from_another_tenant_is_refused(emulator, proxy):
    emulator.set_token_settings(issuer_tenant="00000000-0000-4000-8000-0000000000ff")
    said = refused(proxy, "Bearer " + token(emulator))
    assert "could not match require claim expression '\"iss:https://sts.windows.net/" in said, said


def test_an_expired_token_is_refused(emulator, proxy):
    emulator.set_token_settings(claims_time_offset=-7200)
    said = refused(proxy, "Bearer " + token(emulator))
    assert 'oidc_proto_validate_exp: "exp" validation failure' in said, said
    assert "JWT expired" in said, said


def test_a_token_signed_by_an_unpublished_key_is_refused(emulator, proxy):
    kid = emulator.rotate_signing_key(publish=False)["signing"]
    said = refused(proxy, "Bearer " + token(emulator))
    # It refetches the JWKS first (keys may have rolled over), then gives up.
    assert "doing a forced refresh in case keys were rolled over" in said, said
    assert f"could not find key with kid: {kid}" in said, said


def test_after_a_rotation_the_proxy_accepts_the_new_key_and_still_the_old(emulator, proxy):
    before = token(emulator)
    assert proxy.get(WHOAMI, "Bearer " + before)[0] == 200  # the proxy caches the old JWKS
    emulator.rotate_signing_key()
    assert proxy.get(WHOAMI, "Bearer " + token(emulator))[0] == 200
    assert proxy.get(WHOAMI, "Bearer " + before)[0] == 200


def test_an_identity_without_the_app_role_is_refused(emulator, proxy):
    said = refused(proxy, "Bearer " + token(emulator, principal="reader"))
    assert "could not match require claim expression '\"roles:hg.access\"'" in said, said


def test_a_token_whose_claims_were_changed_is_refused(emulator, proxy):
    head, claims, sig = token(emulator).split(".")
    forged = json.loads(urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    forged["oid"] = emulator.principal("reader")["object_id"]
    body = urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    said = refused(proxy, f"Bearer {head}.{body}.{sig}")
    assert "rsa routines::bad signature" in said, said
    assert "JWT access token signature could not be validated" in said, said


def test_apache_logs_no_token(emulator, proxy):
    t = token(emulator)
    assert (
        proxy.get(WHOAMI, "Bearer " + t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"))[0]
        == 401
    )
    assert proxy.get(WHOAMI, basic(t))[0] == 200
    proxy.last_request()  # its line is written
    logs = proxy.error_log_text() + proxy.access_log.read_text()
    assert t.rsplit(".", 1)[1][:-4] not in logs
    assert "eyJ" not in logs  # no JWT segment at all
