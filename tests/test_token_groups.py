"""``[auth]`` groups with ``entra-scope``: the job's own Entra token as the credential, end to
end with real hg against the emulator's token endpoint and the request recorder (which logs
every header it gets and answers 401, as a proxy does to a token it does not accept).

The Apache bed of issue 13 proves acceptance by a real validating proxy; here: what is sent,
where, how often, and the abort after one renewed token.
"""

from __future__ import annotations

import base64
import json

import pytest
import trustme
from bed import Bed, files_containing, start_bed
from hgserver import _free_port
from recorder import Recorder, start_recorder

SCOPE = "api://hg-proxy"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def recorder(tmp_path_factory, ca) -> Recorder:
    rec = start_recorder(tmp_path_factory.mktemp("recorder"), ca, port=_free_port())
    try:
        yield rec
    finally:
        rec.stop()


@pytest.fixture(scope="module")
def bed(tmp_path_factory, ca) -> Bed:
    bed = start_bed(tmp_path_factory.mktemp("tokenbed"), ca=ca)
    try:
        # Entra issues tokens only for registered APIs (AADSTS500011 otherwise).
        bed.emulator.register_app(SCOPE)
        yield bed
    finally:
        bed.stop()


def token_client(bed: Bed, recorder: Recorder, tmp_path, *, send_as="bearer", extra=""):
    """A client with no vault at all: only a token group for the recorder's origin."""
    client = bed.client(tmp_path, principal="reader", prefix="https://unused.invalid/")
    text = client.hgrc.read_text()
    # No keyvault.url and no vault group: token groups need neither.
    text = "\n".join(line for line in text.splitlines() if not line.startswith(("url = ", "corp.")))
    client.hgrc.write_text(
        text
        + "\n[auth]\n"
        + f"proxy.prefix = {recorder.url}repos\n"
        + f"proxy.entra-scope = {SCOPE}\n"
        + f"proxy.token-as = {send_as}\n"
        + ("proxy.username = ci-bot\n" if send_as == "basic" else "")
        + extra
        + recorder.hgrc()
    )
    return client


def authorizations(recorder: Recorder, since: int) -> list[tuple[str, str]]:
    return [
        (r["path"], v)
        for r in recorder.requests()[since:]
        for k, v in r["headers"].items()
        if k.lower() == "authorization"
    ]


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def entra_requests(bed: Bed, since: int) -> int:
    return sum(1 for r in bed.emulator.requests()[since:] if r["target"] in ("token", "identity"))


def test_bearer_token_is_sent_renewed_once_on_401_then_the_abort_names_identity_and_audience(
    bed, recorder, tmp_path
):
    client = token_client(bed, recorder, tmp_path)
    since, entra_since = len(recorder.requests()), len(bed.emulator.requests())

    result = client.hg("clone", f"{recorder.url}repos/app", "work")

    sent = authorizations(recorder, since)
    # Pre-emptive on the first request, once more with a new token after the 401, never a loop.
    assert len(sent) == 2, sent
    assert all(v.startswith("Bearer ") for _, v in sent)
    token = sent[0][1].removeprefix("Bearer ")
    assert claims(token)["aud"] == SCOPE
    assert entra_requests(bed, entra_since) == 2
    assert result.returncode == 255
    reader = bed.emulator.principal("reader")
    assert (
        f"abort: {recorder.url}repos/app?cmd=capabilities refused the Entra token of [auth] proxy "
        f"(scope {SCOPE}/.default, tenant {bed.emulator.tenant_id}, client id {reader['client_id']}"
    ) in result.stderr
    assert f"the token's audience was {SCOPE})" in result.stderr
    assert "HTTP Error 401" not in result.output
    assert token not in result.output


def test_basic_sends_the_token_as_the_password_of_the_username(bed, recorder, tmp_path):
    client = token_client(bed, recorder, tmp_path, send_as="basic")
    since = len(recorder.requests())

    client.hg("identify", f"{recorder.url}repos/app")

    (_, value), *_ = authorizations(recorder, since)
    user, _, token = base64.b64decode(value.removeprefix("Basic ")).decode().partition(":")
    assert user == "ci-bot"
    assert claims(token)["aud"] == SCOPE


def test_a_url_only_sharing_the_prefix_text_gets_no_token(bed, recorder, tmp_path):
    client = token_client(bed, recorder, tmp_path)
    since = len(recorder.requests())

    result = client.hg("identify", f"{recorder.url}repos2/app")

    assert len(recorder.requests()) > since
    assert authorizations(recorder, since) == []
    # Left to Mercurial exactly as before: its own 401 handling.
    assert "refused the Entra token" not in result.output


def test_a_warm_command_asks_entra_nothing(bed, recorder, tmp_path):
    client = token_client(bed, recorder, tmp_path, send_as="basic")
    client.hg("identify", f"{recorder.url}repos/app")  # warms the cache (and is refused)
    entra_since = len(bed.emulator.requests())
    since = len(recorder.requests())

    client.hg("identify", f"{recorder.url}repos/app")

    # The first try uses the cached token; the 401 then costs one fresh token.
    assert entra_requests(bed, entra_since) == 1
    assert len(authorizations(recorder, since)) == 2


def test_config_errors_name_the_key(bed, recorder, tmp_path):
    client = token_client(bed, recorder, tmp_path, extra="proxy.password = hunter2\n")
    result = client.hg("identify", f"{recorder.url}repos/app")
    # Mercurial's exit code of a config error (30 with ui.detailed-exit-code).
    assert result.returncode == 255
    assert "config error: [auth] proxy has both entra-scope and a password" in result.stderr


def test_the_token_reaches_no_file(bed, recorder, tmp_path):
    client = token_client(bed, recorder, tmp_path)
    since = len(recorder.requests())
    client.hg("clone", "--debug", f"{recorder.url}repos/app", "work")
    token = authorizations(recorder, since)[0][1].removeprefix("Bearer ")
    found, _ = files_containing([tmp_path], token.encode())
    assert found == []
    assert all(token not in out for out in client.outputs)


def test_hg_vault_lists_the_token_group_with_its_claims_and_where_it_came_from(
    bed, recorder, tmp_path
):
    client = token_client(bed, recorder, tmp_path)
    client.hg("vault")  # cold or warm: the next one is warm
    entra_since = len(bed.emulator.requests())

    result = client.hg("vault", "-T", "json")

    assert result.returncode == 0, result.output
    (status,) = json.loads(result.stdout)
    (token,) = status["tokens"]
    reader = bed.emulator.principal("reader")
    assert token["group"] == "proxy"
    assert token["scope"] == f"{SCOPE}/.default"
    assert token["token_as"] == "bearer"
    assert token["state"] == "ok" and token["error"] is None
    assert token["aud"] == SCOPE
    assert token["client_id"] == reader["client_id"]
    assert token["tenant_id"] == bed.emulator.tenant_id
    assert token["link"] == "environment"
    assert token["source"] == "cache"
    assert token["version"] in ("v1", "v2") and token["iss"] and token["expires_on"]
    assert entra_requests(bed, entra_since) == 0
    text = client.hg("vault")
    assert f"token [auth] proxy: {recorder.url}repos scope {SCOPE}/.default as bearer: ok" in (
        text.stdout
    )


def test_hg_vault_exits_1_when_no_token_can_be_had(bed, recorder, tmp_path):
    client = token_client(bed, recorder, tmp_path, extra="[keyvault]\ncredential = azure-cli\n")
    client.env["PATH"] = str(tmp_path)  # no az
    result = client.hg("vault")
    assert result.returncode == 1
    assert "token [auth] proxy:" in result.stdout and ": error" in result.stdout


def test_hg_vault_check_explains_token_groups(bed, recorder, tmp_path):
    client = token_client(bed, recorder, tmp_path)

    covered = client.hg("vault", "check", f"{recorder.url}repos/app")
    elsewhere = client.hg("vault", "check", f"{recorder.url}repos2/app")

    assert covered.returncode == 0, covered.output
    assert "[auth] proxy (entra token): selected" in covered.stdout
    assert "state:    ok" in covered.stdout
    assert "[auth] proxy (entra token): no" in elsewhere.stdout
    assert elsewhere.returncode == 1


def test_an_unregistered_scope_is_entras_aadsts500011_named_with_the_group(bed, recorder, tmp_path):
    client = token_client(bed, recorder, tmp_path)
    client.hgrc.write_text(client.hgrc.read_text().replace(SCOPE, "api://no-such-api"))

    status = client.hg("vault")
    clone = client.hg("clone", f"{recorder.url}repos/app", "work")

    assert status.returncode == 1
    assert "token [auth] proxy:" in status.stdout and "AADSTS500011" in status.stdout
    assert clone.returncode == 255
    assert "abort: [auth] proxy: no Entra token for api://no-such-api/.default: " in clone.stderr
    assert "AADSTS500011" in clone.stderr
