"""Token groups end to end against a real identity-aware proxy: real ``hg`` (and chg) with the
job's Entra identity, the emulator as Entra, and Apache httpd + mod_auth_openidc validating the
tokens in front of hgweb (tests/servers/tokenproxy.py). Apache accepts or refuses each token for
its own reasons (its error log says which); hg clones, pulls and pushes as the identity the
token names (``REMOTE_USER`` is its object id, ``allow-push`` names object ids), or aborts with
the documented message, never a bare "HTTP Error 401"."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from bed import Bed, Client, start_bed
from hgserver import HG
from servers.tokenproxy import TokenProxy, start_token_proxy

API = "api://hg-proxy"
OTHER_API = "api://another-api"
ROLE = "hg.access"
CHG = str(Path(HG).with_name("chg"))
# How long the short-lived tokens of the renewal test live, in seconds.
SHORT_LIFETIME = 3


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def bed(tmp_path_factory, ca) -> Iterator[Bed]:
    bed = start_bed(tmp_path_factory.mktemp("apachebed"), ca=ca)
    try:
        # The managed identity and the officer hold the app role; the reader does not.
        bed.emulator.register_app(API, roles={ROLE: ["managed", "officer"]})
        bed.emulator.register_app(OTHER_API, roles={ROLE: ["managed", "officer"]})
        yield bed
    finally:
        bed.stop()


@pytest.fixture(scope="module")
def proxy(bed, ca, tmp_path_factory) -> Iterator[TokenProxy]:
    managed = bed.emulator.principal("managed")["object_id"]
    with start_token_proxy(
        tmp_path_factory.mktemp("apache"),
        emulator=bed.emulator,
        audience=API,
        required_role=ROLE,
        allow_push=managed,  # the officer may read, not push
        ca=ca,
        redirect_to=bed.server.url,
    ) as p:
        yield p


@pytest.fixture(autouse=True)
def default_tokens(bed):
    bed.emulator.set_token_settings()
    yield
    bed.emulator.set_token_settings()
    bed.emulator.rotate_signing_key()


def token_client(
    bed: Bed,
    proxy: TokenProxy,
    root: Path,
    *,
    principal: str | None = None,
    send_as: str = "bearer",
    scope: str = API,
) -> Client:
    """A client with only a token group for the proxy (no vault): ``principal`` None is the
    emulator's managed identity, else a service principal."""
    client = bed.client(root, principal=principal)
    lines = client.hgrc.read_text().splitlines()
    text = "\n".join(x for x in lines if not x.startswith(("url = ", "corp.")))
    client.hgrc.write_text(
        text
        + "\n[auth]\n"
        + f"proxy.prefix = {proxy.url}\n"
        + f"proxy.entra-scope = {scope}\n"
        + f"proxy.token-as = {send_as}\n"
        + ("proxy.username = ci-bot\n" if send_as == "basic" else "")
    )
    return client


def server_log(proxy: TokenProxy, name: str = "repo") -> list[str]:
    proc = subprocess.run(
        [HG, "-R", str(proxy.repo_path(name)), "log", "-T", "{desc}\n"],
        env={**os.environ, "HGRCPATH": os.devnull, "HGPLAIN": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.splitlines()


def entra_requests(bed: Bed, since: int) -> int:
    return sum(1 for r in bed.emulator.requests()[since:] if r["target"] in ("token", "identity"))


@pytest.mark.parametrize("send_as", ["bearer", "basic"])
def test_clone_pull_and_push_as_the_managed_identity(bed, proxy, tmp_path, send_as):
    client = token_client(bed, proxy, tmp_path, send_as=send_as)
    seen, entra_since = proxy.mark(), len(bed.emulator.requests())
    clone = client.hg("clone", proxy.repo_url(), "work")
    assert clone.returncode == 0, clone.output
    cold = entra_requests(bed, entra_since)
    work = client.home / "work"
    (work / f"{send_as}.txt").write_text("pushed through the identity-aware proxy\n")
    assert client.hg("commit", "-A", "-m", f"push with {send_as}", cwd=work).returncode == 0
    push = client.hg("push", cwd=work)
    assert push.returncode == 0, push.output
    assert server_log(proxy)[0] == f"push with {send_as}"
    entra_since = len(bed.emulator.requests())
    pull = client.hg("pull", cwd=work)
    assert pull.returncode == 0, pull.output
    # At most one request to Entra for the clone (none if an earlier test left the managed
    # identity's token in the shared token cache); the pull is warm: none at all.
    assert cold <= 1
    assert entra_requests(bed, entra_since) == 0
    entries = proxy.requests_since(seen)
    managed = bed.emulator.principal("managed")["object_id"]
    # Every request carried the token the chosen way, and Apache let each through as the MI.
    assert {(e["auth_scheme"], e["remote_user"], e["status"]) for e in entries} == {
        (send_as, managed, 200)
    }
    assert any(e["method"] == "POST" and "cmd=unbundle" in e["uri"] for e in entries)
    # No token (no JWT segment) in hg's outputs or in Apache's logs.
    assert not [o for o in client.outputs if "eyJ" in o]
    assert "eyJ" not in proxy.error_log_text() + proxy.access_log.read_text()


def test_push_is_refused_by_hgweb_for_an_identity_not_in_allow_push(bed, proxy, tmp_path):
    client = token_client(bed, proxy, tmp_path, principal="officer")
    assert client.hg("clone", proxy.repo_url(), "work").returncode == 0
    work = client.home / "work"
    (work / "officer.txt").write_text("the officer may read only\n")
    client.hg("commit", "-A", "-m", "officer push", cwd=work)
    seen = proxy.mark()
    push = client.hg("push", cwd=work)
    assert push.returncode != 0
    assert "officer push" not in server_log(proxy)
    unbundles = [e for e in proxy.requests_since(seen) if "cmd=unbundle" in e["uri"]]
    # Apache let the officer's token through (REMOTE_USER is its object id); hgweb refused the
    # push to that identity (it answers "push not authorized" with a 401 of its own).
    officer = bed.emulator.principal("officer")["object_id"]
    assert unbundles and {(e["remote_user"], e["status"]) for e in unbundles} == {(officer, 401)}


def _refused_clone(bed: Bed, proxy: TokenProxy, client: Client) -> tuple[str, str]:
    """Clones, asserts the documented abort; returns (hg's stderr, what Apache logged)."""
    log_start = len(proxy.error_log_text())
    result = client.hg("clone", proxy.repo_url(), "work")
    assert result.returncode == 255, result.output
    assert "refused the Entra token of [auth] proxy" in result.stderr, result.output
    assert "HTTP Error 401" not in result.output
    return result.stderr, proxy.error_log_text()[log_start:]


def test_a_token_for_another_audience_is_refused_by_apache(bed, proxy, tmp_path):
    client = token_client(bed, proxy, tmp_path, scope=OTHER_API)
    stderr, apache = _refused_clone(bed, proxy, client)
    assert f"the token's audience was {OTHER_API})" in stderr, stderr
    assert "could not match require claim expression '\"aud:api://hg-proxy\"'" in apache


def test_a_token_from_another_tenant_is_refused_by_apache(bed, proxy, tmp_path):
    bed.emulator.set_token_settings(issuer_tenant="00000000-0000-4000-8000-0000000000ff")
    stderr, apache = _refused_clone(bed, proxy, token_client(bed, proxy, tmp_path))
    assert "tenant 00000000-0000-4000-8000-0000000000ff" in stderr, stderr
    assert "could not match require claim expression '\"iss:https://sts.windows.net/" in apache


def test_an_expired_token_is_refused_by_apache(bed, proxy, tmp_path):
    # The issuer's clock is two hours behind: the client believes the token fresh.
    bed.emulator.set_token_settings(claims_time_offset=-7200)
    _, apache = _refused_clone(bed, proxy, token_client(bed, proxy, tmp_path))
    assert 'oidc_proto_validate_exp: "exp" validation failure' in apache


def test_a_token_signed_by_an_unknown_key_is_refused_by_apache(bed, proxy, tmp_path):
    kid = bed.emulator.rotate_signing_key(publish=False)["signing"]
    _, apache = _refused_clone(bed, proxy, token_client(bed, proxy, tmp_path))
    assert f"could not find key with kid: {kid}" in apache


def test_an_identity_without_the_app_role_is_refused_by_apache(bed, proxy, tmp_path):
    client = token_client(bed, proxy, tmp_path, principal="reader")
    stderr, apache = _refused_clone(bed, proxy, client)
    reader = bed.emulator.principal("reader")
    assert f"object id {reader['object_id']}" in stderr, stderr
    assert "could not match require claim expression '\"roles:hg.access\"'" in apache


def test_a_push_that_outlives_its_token_gets_a_fresh_one_before_it_expires(bed, proxy, tmp_path):
    bed.emulator.set_token_settings(lifetime=SHORT_LIFETIME)
    client = token_client(bed, proxy, tmp_path)
    assert client.hg("clone", proxy.repo_url(), "work").returncode == 0
    work = client.home / "work"
    (work / "slow.txt").write_text("a push that outlives its token\n")
    client.hg("commit", "-A", "-m", "slow push", cwd=work)
    # Between discovery and the upload, wait until the first token has expired for Apache.
    hook = tmp_path / "outlive.py"
    hook.write_text(
        f"import time\n\ndef hook(ui, repo, **kwargs):\n    time.sleep({SHORT_LIFETIME + 1})\n"
    )
    client.append_config(f"[hooks]\npreoutgoing.outlive = python:{hook}:hook\n")
    seen, entra_since = proxy.mark(), len(bed.emulator.requests())
    # Without the cross-process cache the push starts with a token of its own (however fast the
    # clone was), so a second Entra request can only be the renewal within this one process.
    push = client.hg("push", "--config", "keyvault.token-cache=false", cwd=work)
    assert push.returncode == 0, push.output
    assert server_log(proxy)[0] == "slow push"
    # Renewed before it expired: Apache never refused a request of this push.
    statuses = [e["status"] for e in proxy.requests_since(seen)]
    assert statuses and statuses == [200] * len(statuses)
    assert entra_requests(bed, entra_since) >= 2


def test_a_redirect_to_another_origin_carries_no_token(bed, proxy, tmp_path):
    client = token_client(bed, proxy, tmp_path)
    nginx_seen, apache_seen = len(bed.server.requests()), proxy.mark()
    client.hg("clone", proxy.url + "redirect/repo", "work")
    redirect = proxy.requests_since(apache_seen)[0]
    assert (redirect["status"], redirect["auth_scheme"]) == (302, "bearer")
    followed = bed.server.requests()[nginx_seen:]
    assert followed, "hg did not follow the redirect"
    assert all(r["has_auth"] in (0, "0") for r in followed), followed


def test_chg_clones_and_pushes_with_the_token(bed, proxy, tmp_path):
    socket = tmp_path / "chg" / "server"
    socket.parent.mkdir()
    client = token_client(bed, proxy, tmp_path)
    client.env.update(CHGHG=HG, CHGSOCKNAME=str(socket), CHGTIMEOUT="60")
    try:
        seen = proxy.mark()
        assert client.hg("clone", proxy.repo_url(), "one", program=CHG).returncode == 0
        assert client.hg("clone", proxy.repo_url(), "two", program=CHG).returncode == 0
        work = client.home / "two"
        (work / "chg.txt").write_text("through chg\n")
        client.hg("commit", "-A", "-m", "via chg", cwd=work, program=CHG)
        push = client.hg("push", cwd=work, program=CHG)
        assert push.returncode == 0, push.output
        assert server_log(proxy)[0] == "via chg"
        managed = bed.emulator.principal("managed")["object_id"]
        assert {(e["remote_user"], e["status"]) for e in proxy.requests_since(seen)} == {
            (managed, 200)
        }
    finally:
        subprocess.run([CHG, "--kill-chg-daemon"], env=client.env, capture_output=True, timeout=30)


def test_a_v2_api_behind_a_proxy_that_expects_v2_tokens(bed, ca, tmp_path):
    # accessTokenAcceptedVersion 2: the audience is the API's client id, the issuer the v2 one.
    reg = bed.emulator.register_app("api://hg-proxy-v2", token_version=2, roles={ROLE: ["managed"]})
    issuer = f"{bed.emulator.authority_host}/{bed.emulator.tenant_id}/v2.0"
    with start_token_proxy(
        tmp_path / "proxy",
        emulator=bed.emulator,
        audience=reg["client_id"],
        issuer=issuer,
        required_role=ROLE,
        ca=ca,
    ) as v2:
        client = token_client(bed, v2, tmp_path / "client", scope="api://hg-proxy-v2")
        clone = client.hg("clone", v2.repo_url(), "work")
        assert clone.returncode == 0, clone.output
        status = client.hg("vault", "-T", "json")
        assert status.returncode == 0, status.output
        (listed,) = json.loads(status.stdout)[0]["tokens"]
        assert (listed["aud"], listed["iss"], listed["version"]) == (
            reg["client_id"],
            issuer,
            "v2",
        )
