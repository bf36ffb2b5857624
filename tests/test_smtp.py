"""hg email (patchbomb) logs in to a real SMTP server with a password that lives
only in the vault; Mercurial's own SMTP code does the login (wrapped, not copied).

Real parts: aiosmtpd requiring AUTH after STARTTLS with a certificate of the test
CA, the venv's hg with patchbomb, the Key Vault emulator.
"""

from __future__ import annotations

import json
import secrets

import kernel_keys
import pytest
import trustme
from bed import Bed, files_containing, start_bed
from smtpserver import SmtpServer, start_smtp_server

SMTP_REF = "secret://hg/smtp/mailer"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def bed(tmp_path_factory, ca) -> Bed:
    bed = start_bed(tmp_path_factory.mktemp("smtpbed"), ca=ca)
    try:
        yield bed
    finally:
        bed.stop()


@pytest.fixture(scope="module")
def smtp(bed, ca) -> SmtpServer:
    password = "smtp-" + secrets.token_urlsafe(18)
    server = start_smtp_server(bed.root / "smtp", ca, user="mailer", password=password)
    server.password = password
    try:
        yield server
    finally:
        server.stop()


def smtp_config(smtp, ref: str = SMTP_REF) -> str:
    return (
        "[extensions]\npatchbomb =\n"
        "[email]\nmethod = smtp\nfrom = CI <ci@example.com>\n"
        f"[smtp]\nhost = localhost\nport = {smtp.port}\ntls = starttls\n"
        f"username = mailer\nvault = {ref}\n"
    )


def mail_client(bed, smtp, root, ref=SMTP_REF, extra="", principal=None):
    client = bed.client(root, principal=principal, extra=smtp_config(smtp, ref) + extra)
    assert client.hg("init", "repo").returncode == 0
    repo = client.home / "repo"
    (repo / "a.txt").write_text("a patch worth mailing\n")
    assert client.hg("commit", "-A", "-m", "mail me", cwd=repo).returncode == 0
    return client, repo


def email(client, repo, *extra):
    return client.hg("email", "-r", "tip", "--to", "dev@example.com", *extra, cwd=repo)


def test_hg_email_logs_in_with_the_vault_password(bed, smtp, tmp_path):
    bed.provision(smtp.password, ref=SMTP_REF)
    client, repo = mail_client(bed, smtp, tmp_path)
    before = len(smtp.messages())

    result = email(client, repo, "--debug")

    assert result.returncode == 0, result.output
    assert "keyvault: [smtp] password for localhost" in result.output
    assert "(authenticating to mail server as mailer)" in result.output
    assert smtp.logins()[-1] == {"user": "mailer", "ok": True}
    assert len(smtp.messages()) == before + 1
    assert b"mail me" in smtp.messages()[-1]
    hits, searched = files_containing([tmp_path, bed.root], smtp.password.encode())
    assert searched > 10 and hits == []
    assert not any(smtp.password in out for out in client.outputs)


def test_wrong_password_aborts_naming_ref_version_and_server_reply(bed, smtp, tmp_path):
    ref = SMTP_REF + "-wrong"
    stored = bed.provision("not-the-smtp-password", ref=ref).stdout
    client, repo = mail_client(bed, smtp, tmp_path, ref=ref)

    result = email(client, repo)

    assert result.returncode == 255
    assert f"mail server localhost:{smtp.port} rejected the password from the vault" in (
        result.stderr
    )
    assert ref in result.stderr and stored.split()[-1] in result.stderr
    assert "535" in result.stderr
    assert f"hg vault set {ref}" in result.stderr
    assert "not-the-smtp-password" not in result.output


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("[smtp]\npassword = plain\n", "smtp.password and smtp.vault are both set"),
        ("[smtp]\nusername =\n", "smtp.vault is set but smtp.username is not"),
    ],
)
def test_conflicting_or_incomplete_smtp_config_is_a_config_error(
    bed, smtp, tmp_path, extra, expected
):
    client, repo = mail_client(bed, smtp, tmp_path, extra=extra + "[ui]\ndetailed-exit-code=1\n")
    before = len(smtp.logins())
    result = email(client, repo)
    assert result.returncode == 30
    assert expected in result.stderr
    assert len(smtp.logins()) == before


def test_missing_smtp_secret_aborts_before_any_login(bed, smtp, tmp_path):
    ref = "secret://hg/smtp/missing-" + secrets.token_hex(4)
    client, repo = mail_client(bed, smtp, tmp_path, ref=ref)
    before = len(smtp.logins())
    result = email(client, repo)
    assert result.returncode == 255
    assert "[smtp] vault" in result.stderr and "does not exist" in result.stderr
    assert len(smtp.logins()) == before


def test_the_smtp_password_read_is_one_audit_line(bed, smtp, tmp_path):
    bed.provision(smtp.password, ref=SMTP_REF)
    log = tmp_path / "audit.jsonl"
    client, repo = mail_client(bed, smtp, tmp_path, extra=f"[keyvault]\naudit-log = {log}\n")
    before = len(bed.emulator.requests())

    result = email(client, repo)

    assert result.returncode == 0, result.output
    [entry] = [json.loads(line) for line in log.read_text().splitlines()]
    assert (entry["action"], entry["use"], entry["outcome"]) == ("read", "smtp", "ok")
    assert (entry["ref"], entry["group"], entry["command"]) == (SMTP_REF, None, "email")
    assert entry["version"]
    assert any(
        r["client_request_id"] == entry["request_id"] and r["status"] == 200
        for r in bed.emulator.requests()[before:]
    )
    assert smtp.password not in log.read_text()


@pytest.mark.skipif(not kernel_keys.available(), reason="needs Linux keyutils")
def test_a_rejected_smtp_password_leaves_the_secret_cache(bed, smtp, tmp_path):
    ref = f"{SMTP_REF}-cached-{secrets.token_hex(4)}"
    bed.provision("not-the-smtp-password", ref=ref)
    # The officer reads; the operator below stores as another identity, so that storing does not
    # touch the officer's cache entry: only the rejection can have dropped it.
    client, repo = mail_client(
        bed, smtp, tmp_path, ref=ref, extra="[keyvault]\nsecret-cache = 120\n", principal="officer"
    )
    rejected = email(client, repo, "--debug")
    assert rejected.returncode == 255
    assert "[smtp] vault: read" in rejected.output and "from the vault" in rejected.output

    bed.provision(smtp.password, ref=ref)  # the operator, under another identity
    before = len(smtp.messages())
    sent = email(client, repo, "--debug")
    assert sent.returncode == 0, sent.output
    assert "from the secret cache" not in sent.output
    assert len(smtp.messages()) == before + 1
