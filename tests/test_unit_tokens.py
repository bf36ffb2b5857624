"""config.token_groups and tokenauth, imported directly: which [auth] groups are token groups,
what is a config error, and where the handler sends a token (the core's matcher fed from
Mercurial's config; the token itself faked, no hg subprocess, no Entra)."""

from __future__ import annotations

import base64
import urllib.request

import pytest
from hgext3rd.keyvault import config, tokenauth
from hgui import make_ui
from mercurial import error

GROUPS = (
    "[auth]\n"
    "proxy.prefix = https://hg.example.com/repos\nproxy.entra-scope = api://hg-proxy\n"
    "basic.prefix = https://dev.example.com/\nbasic.entra-scope = "
    "0f1ce000-0000-4000-8000-000000000002/.default\nbasic.token-as = basic\n"
    "basic.username = ci-bot\n"
    "corp.prefix = https://hg.example.com/\ncorp.username = u\ncorp.vault = secret://corp\n"
)


@pytest.mark.parametrize(
    ("raw", "scope"),
    [
        ("api://hg-proxy", "api://hg-proxy/.default"),
        ("api://hg-proxy/", "api://hg-proxy/.default"),
        ("api://hg-proxy/.default", "api://hg-proxy/.default"),
        ("https://contoso.onmicrosoft.com/hg", "https://contoso.onmicrosoft.com/hg/.default"),
        ("0f1ce000-0000-4000-8000-000000000002", "0f1ce000-0000-4000-8000-000000000002/.default"),
        ("user.read", None),
        ("api://a b", None),
        ("", None),
    ],
)
def test_entra_scope_is_normalised_to_dot_default(raw, scope):
    found = config.normalise_scope(raw.encode())
    assert (found.decode() if found else None) == scope


def test_token_groups_are_read_with_their_defaults_and_vault_groups_stay_apart(tmp_path):
    ui = make_ui(tmp_path, GROUPS)
    groups = {g.name: g for g in config.token_groups(ui)}
    assert groups["proxy"] == config.TokenGroup(
        "proxy",
        "https://hg.example.com/repos",
        ("https",),
        "api://hg-proxy/.default",
        "bearer",
        None,
    )
    assert groups["basic"].token_as == "basic" and groups["basic"].username == "ci-bot"
    assert [g.name for g in config.vault_groups(ui)] == ["corp"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("x.password = p\n", b"[auth] x has both entra-scope and a password"),
        ("x.vault = secret://x\n", b"[auth] x has both entra-scope and a vault secret"),
        ("x.token-as = cookie\n", b"[auth] x.token-as: unknown value 'cookie'"),
        ("x.token-as = basic\n", b"[auth] x.token-as = basic needs x.username"),
        (
            "x.token-as = basic\nx.username = a:b\n",
            b"[auth] x.username: 'a:b' contains ':', which a Basic user name cannot",
        ),
    ],
)
def test_inconsistent_token_groups_are_config_errors_naming_the_key(tmp_path, extra, message):
    ui = make_ui(tmp_path, "[auth]\nx.prefix = https://x/\nx.entra-scope = api://x\n" + extra)
    with pytest.raises(error.ConfigError) as raised:
        config.token_groups(ui)
    assert raised.value.message == message


def test_a_bad_scope_is_a_config_error(tmp_path):
    ui = make_ui(tmp_path, "[auth]\nx.prefix = https://x/\nx.entra-scope = Mail.Read\n")
    with pytest.raises(error.ConfigError) as raised:
        config.token_groups(ui)
    assert b"is not an App ID URI or a client id" in raised.value.message


def test_untrusted_config_adds_no_token_group(tmp_path):
    ui = make_ui(tmp_path, "")
    # The untrusted layer, where Mercurial puts a foreign .hg/hgrc.
    ui._ucfg.set(b"auth", b"evil.entra-scope", b"api://x", b"untrusted")
    ui._ucfg.set(b"auth", b"evil.prefix", b"https://attacker.example/", b"untrusted")
    assert (b"evil.prefix", b"https://attacker.example/") in ui.configitems(b"auth", untrusted=True)
    assert config.token_groups(ui) == []


@pytest.mark.parametrize(
    ("url", "group"),
    [
        ("https://hg.example.com/repos/app", "proxy"),
        ("https://hg.example.com/repos", "proxy"),
        ("https://hg.example.com/repos2/app", None),  # shares the prefix's text only
        ("https://hg.example.com/other", None),  # the vault group's, not a token's
        ("http://hg.example.com/repos/app", None),  # another scheme
        ("https://hg.example.com:444/repos/app", None),  # another port
        ("https://hg.example.com.evil.org/repos/app", None),
        ("https://dev.example.com/x", "basic"),
    ],
)
def test_a_token_goes_only_to_its_groups_origin(tmp_path, url, group):
    found = tokenauth.matching_group(make_ui(tmp_path, GROUPS), url)
    assert (found.name if found else None) == group


class FakeSession:
    """The token cache's behaviour: the same token until it is forgotten."""

    def __init__(self):
        self.issued = 0
        self.current = 1
        self.forgotten: list[str] = []

    def token(self, scope):
        self.issued += 1
        info = {"aud": "api://hg-proxy", "tenant_id": "t", "client_id": "c"}
        return f"tok-{self.current}", info

    def forget(self, scope, token):
        self.forgotten.append(token)
        self.current += 1


@pytest.fixture
def handler(tmp_path, monkeypatch):
    fake = FakeSession()
    monkeypatch.setattr(tokenauth, "_session", lambda ui: fake)
    h = tokenauth.TokenHandler(make_ui(tmp_path, GROUPS))
    h.fake = fake
    return h


def test_bearer_is_set_unredirected_on_the_groups_origin(handler):
    req = handler.https_request(urllib.request.Request("https://hg.example.com/repos/app"))
    assert req.unredirected_hdrs["Authorization"] == "Bearer tok-1"
    assert "Authorization" not in req.headers  # urllib copies these to a redirect


def test_basic_carries_the_token_as_the_password(handler):
    req = handler.https_request(urllib.request.Request("https://dev.example.com/x"))
    value = req.get_header("Authorization").removeprefix("Basic ")
    assert base64.b64decode(value) == b"ci-bot:tok-1"


def test_a_header_carried_to_another_origin_is_removed(handler):
    first = handler.https_request(urllib.request.Request("https://hg.example.com/repos/app"))
    moved = urllib.request.Request(
        "https://elsewhere.example/app",
        headers={"Authorization": first.get_header("Authorization")},
    )
    assert handler.https_request(moved).get_header("Authorization") is None


def test_other_urls_are_left_alone(handler):
    req = urllib.request.Request("https://other.example/x", headers={"Authorization": "Basic x"})
    assert handler.https_request(req).get_header("Authorization") == "Basic x"
    assert handler.fake.issued == 0


class FakeParent:
    def __init__(self, handler):
        self.handler = handler
        self.opened = 0

    def open(self, req, timeout=None):
        self.opened += 1
        req = self.handler.https_request(req)
        # The proxy refuses again: the handler sees the second 401.
        return self.handler.http_error_401(req, FakeFp(), 401, "Unauthorized", {})


class FakeFp:
    def close(self):
        pass


def test_a_401_gets_one_new_token_then_an_abort_naming_identity_and_audience(handler):
    handler.parent = FakeParent(handler)
    req = handler.https_request(urllib.request.Request("https://hg.example.com/repos/app"))
    req.timeout = 5
    with pytest.raises(error.Abort) as raised:
        handler.http_error_401(req, FakeFp(), 401, "Unauthorized", {})
    assert handler.parent.opened == 1  # never a loop
    assert handler.fake.forgotten == ["tok-1"]
    assert handler.fake.issued == 2
    message = raised.value.message
    assert message.startswith(
        b"https://hg.example.com/repos/app refused the Entra token of [auth] proxy "
        b"(scope api://hg-proxy/.default, tenant t, client id c, object id unknown; "
    )
    assert b"the token's audience was api://hg-proxy" in message
    assert b"tok-" not in message and b"tok-" not in raised.value.hint


def test_a_401_to_a_request_without_our_token_is_mercurials(handler):
    req = urllib.request.Request("https://other.example/x")
    assert handler.http_error_401(req, FakeFp(), 401, "Unauthorized", {}) is None


class FakeResponse:
    code = 200


def test_a_401_after_the_same_token_was_accepted_blames_the_servers_rights_not_the_token(handler):
    # hgweb answers 401 to a push outside allow-push, after the proxy accepted the token.
    first = handler.https_request(urllib.request.Request("https://hg.example.com/repos/app"))
    handler.https_response(first, FakeResponse())
    push = handler.https_request(urllib.request.Request("https://hg.example.com/repos/app?cmd=x"))
    with pytest.raises(error.Abort) as raised:
        handler.http_error_401(push, FakeFp(), 401, "Unauthorized", {})
    assert handler.fake.forgotten == []  # the token is fine: kept, no new one
    assert raised.value.message.startswith(
        b"https://hg.example.com/repos/app?cmd=x refused [auth] proxy's identity (tenant t, "
    )
    assert b"allow-push" in raised.value.hint
