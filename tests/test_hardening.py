"""The credential path under attack: redirects to another origin, wildcard
groups, passwords in URLs, untrusted and repository-provided config, control
characters in refs, prefixes and URLs, escape sequences in what is echoed.

Real parts: nginx + hgweb redirecting to a second loopback origin that records
every header it receives, the Key Vault emulator, the venv's hg.
"""

from __future__ import annotations

import os
import pwd
import subprocess

import pytest
import trustme
from bed import REF, Bed, start_bed
from hgserver import HG, _free_port
from recorder import Recorder, start_recorder


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
def bed(tmp_path_factory, ca, recorder) -> Bed:
    bed = start_bed(tmp_path_factory.mktemp("hardbed"), ca=ca, redirect_to=recorder.url)
    try:
        bed.provision()
        yield bed
    finally:
        bed.stop()


def authorizations(recorder: Recorder, since: int) -> list[str]:
    return [
        v
        for r in recorder.requests()[since:]
        for k, v in r["headers"].items()
        if k.lower() == "authorization"
    ]


def test_redirect_to_another_origin_never_carries_the_vault_password(bed, recorder, tmp_path):
    client = bed.client(tmp_path, extra=recorder.hgrc())
    since = len(recorder.requests())

    result = client.hg("clone", "--debug", bed.server.redirect_url("repo"), "work")

    assert len(recorder.requests()) > since, "the redirect reached the second origin"
    assert authorizations(recorder, since) == []
    assert "keyvault: not sending the password of [auth] corp to https://127.0.0.1" in (
        result.output
    )
    # The first origin did get the vault's password (its 302 needs auth).
    assert any(r["uri"].startswith("/redirect/") and r["has_auth"] for r in bed.server.requests())
    assert result.returncode == 255
    assert not (client.home / "work").exists()


def test_plain_mercurial_does_resend_its_cached_header_there(bed, recorder, tmp_path):
    # The control: with a password in [auth] and no vault, Mercurial sends the cached header
    # to the other origin. The test above would see it if the extension did not stop it.
    client = bed.client(
        tmp_path,
        prefix="https://elsewhere.invalid/",
        extra=f"[auth]\nplain.prefix = {bed.server.url}\nplain.username = {bed.server.username}\n"
        f"plain.password = {bed.server.password}\n" + recorder.hgrc(),
    )
    since = len(recorder.requests())
    client.hg("clone", bed.server.redirect_url("repo"), "work")
    assert authorizations(recorder, since) != []


def test_wildcard_group_never_releases_a_secret(bed, tmp_path):
    client = bed.client(tmp_path, prefix="*")
    before = len(bed.emulator.requests())
    result = client.hg("clone", bed.server.repo_url(), "work")
    assert result.returncode == 255
    assert "http authorization required" in result.stderr
    assert len(bed.emulator.requests()) == before


def test_password_in_the_url_is_warned_about_and_never_combined_with_the_vault(bed, tmp_path):
    client = bed.client(tmp_path)
    before = len(bed.emulator.requests())
    url = bed.server.repo_url().replace("https://", "https://ci-bot:url-pass-123@")
    result = client.hg("clone", url, "work")
    assert "has a password in the URL" in result.stderr
    assert "the vault secret of [auth] corp is not sent with it" in result.stderr
    assert "url-pass-123" not in result.output
    assert len(bed.emulator.requests()) == before
    assert result.returncode == 255  # the URL's (wrong) password was used, and refused


def _own_by_nobody(path):
    nobody = pwd.getpwnam("nobody")
    os.chown(path, nobody.pw_uid, nobody.pw_gid)


def _repo_with_hgrc(bed, client, tmp_path, recorder, *, untrusted: bool):
    assert client.hg("clone", bed.server.repo_url(), "work").returncode == 0
    hgrc = client.home / "work" / ".hg" / "hgrc"
    hgrc.write_text(
        f"[paths]\ndefault = {bed.server.url}\n"
        f"[auth]\nevil.prefix = {recorder.url}\nevil.username = ci-bot\nevil.vault = {REF}\n"
        f"[keyvault]\nurl = {recorder.url}\n"
    )
    if untrusted:
        _own_by_nobody(hgrc)
    return client.home / "work"


def test_untrusted_repo_hgrc_never_decides_where_a_secret_goes(bed, recorder, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to give the hgrc to another user")
    client = bed.client(tmp_path, extra=recorder.hgrc())
    work = _repo_with_hgrc(bed, client, tmp_path, recorder, untrusted=True)
    since = len(recorder.requests())

    result = client.hg("pull", recorder.url + "repo", cwd=work)

    assert "not trusting file" in result.stderr
    assert result.returncode == 255
    assert len(recorder.requests()) > since
    assert authorizations(recorder, since) == []
    # hg vault (a command without repository) does not read it either.
    status = client.hg("vault", "-T", "json", cwd=work)
    assert recorder.url not in status.stdout and "evil" not in status.stdout


def test_trusted_repo_hgrc_is_the_users_own_config(bed, recorder, tmp_path):
    # Documented decision: a .hg/hgrc that Mercurial trusts is the user's configuration (it can
    # run hooks as the user already); its [auth] vault groups apply like any other.
    client = bed.client(tmp_path, extra=recorder.hgrc())
    work = _repo_with_hgrc(bed, client, tmp_path, recorder, untrusted=False)
    since = len(recorder.requests())
    client.hg("pull", recorder.url + "repo", cwd=work)
    assert authorizations(recorder, since) != []


def test_hgsub_cannot_send_the_vault_password_to_its_subrepo_origin(bed, recorder, tmp_path):
    env = dict(bed.client(tmp_path / "admin").env, HGRCPATH=str(bed.server.workdir / "server.hgrc"))
    repo = bed.server.repos_dir / "withsub"
    bed.server.add_repo("withsub")
    subprocess.run([HG, "init", str(repo / "sub")], env=env, check=True)
    (repo / "sub" / "f").write_text("sub\n")
    subprocess.run([HG, "-R", str(repo / "sub"), "commit", "-Aqm", "s"], env=env, check=True)
    (repo / ".hgsub").write_text(f"sub = {recorder.url}sub\n")
    subprocess.run([HG, "-R", str(repo), "commit", "-Aqm", "sub"], env=env, check=True)
    client = bed.client(tmp_path / "c", extra=recorder.hgrc())
    since = len(recorder.requests())

    result = client.hg("clone", bed.server.repo_url("withsub"), "work")

    assert len(recorder.requests()) > since, result.output
    assert authorizations(recorder, since) == []
    assert result.returncode == 255


@pytest.mark.parametrize(
    "field",
    ["ref", "prefix"],
)
def test_newlines_in_refs_and_prefixes_are_config_errors(bed, tmp_path, field):
    # An indented line continues an hgrc value: the value then holds a newline.
    kwargs = {"ref": REF + "\n  x"} if field == "ref" else {"prefix": bed.server.url + "\n  x"}
    client = bed.client(tmp_path, extra="[ui]\ndetailed-exit-code = yes\n", **kwargs)
    before = len(bed.server.requests())
    result = client.hg("clone", bed.server.repo_url(), "work")
    assert result.returncode == 30, result.output
    assert "control character" in result.stderr or "\\n" in result.stderr
    assert not any(r["has_auth"] for r in bed.server.requests()[before:])


def test_escape_sequences_from_config_and_urls_never_reach_the_terminal(bed, tmp_path):
    client = bed.client(
        tmp_path,
        extra=f"[auth]\nev\x1b[2Jil.prefix = {bed.server.url}x\nev\x1b[2Jil.vault = {REF}x\n",
    )
    status = client.hg("vault")
    assert "ev?[2Jil" in status.stdout
    assert "\x1b" not in status.output
    url = bed.server.repo_url() + "\x1b]0;owned\x07"
    clone = client.hg("clone", "--debug", url, "work")
    ours = [line for line in clone.output.splitlines() if "keyvault" in line]
    assert ours and not any("\x1b" in line or "\x07" in line for line in ours)


def test_a_group_with_both_a_password_and_a_vault_ref_is_a_config_error(bed, tmp_path):
    # Half a migration: the plaintext password is still in the hgrc next to the ref.
    leftover = "leftover-plaintext-4f1c"
    client = bed.client(
        tmp_path, extra=f"corp.password = {leftover}\n[ui]\ndetailed-exit-code = yes\n"
    )
    before_vault, before_server = len(bed.emulator.requests()), len(bed.server.requests())
    result = client.hg("clone", bed.server.repo_url(), "work")
    assert result.returncode == 30, result.output
    assert "[auth] corp has both a password and a vault secret" in result.stderr
    assert "remove corp.password" in result.stderr
    assert leftover not in result.output
    # Neither password went anywhere, and nothing was cloned.
    assert len(bed.emulator.requests()) == before_vault
    assert not any(r["has_auth"] for r in bed.server.requests()[before_server:])
    assert not (client.home / "work").exists()
