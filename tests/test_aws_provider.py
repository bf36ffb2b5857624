"""The AWS Secrets Manager provider end to end against moto, with real hg through the
authenticated nginx + hgweb server: rotation with `hg vault set` (AWSCURRENT moves, the old
version becomes AWSPREVIOUS), listing across pages, ARN refs and their region, the errors a
user meets (no region, a missing secret, a wrong secret key under moto's IAM enforcement, an
endpoint that accepts and never answers), chg, the SSH key and the SMTP password from AWS, and
`hg vault migrate` keyring -> aws and aws -> azure. One moto and one hg server per module; each
test its own secret names."""

from __future__ import annotations

import http.client
import json
import secrets
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from awsbed import BlackHole, aws_name, start_aws_bed, unique_ref
from bed import files_containing
from hgserver import HG
from keyringd import start_secret_service
from smtpserver import start_smtp_server
from sshserver import new_key_pair, start_sshd

GET = "secretsmanager.GetSecretValue"
CHG = str(Path(HG).with_name("chg"))


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    world = start_aws_bed(tmp_path_factory.mktemp("awsprov"))
    try:
        yield world
    finally:
        world.stop()


@pytest.fixture(scope="module")
def operator(aws) -> dict[str, str]:
    """Environment keys of an IAM user that may read and write every secret."""
    user = aws.moto.create_user("hg-operator")
    return {
        "AWS_ACCESS_KEY_ID": user["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": user["aws_secret_access_key"],
    }


def test_set_twice_moves_awscurrent_and_keeps_the_old_value_as_awsprevious(aws, operator, tmp_path):
    ref = unique_ref("rotate")
    client = aws.client(tmp_path, operator, ref=ref)
    first = "first-" + secrets.token_urlsafe(12)
    assert client.hg("vault", "set", ref, stdin=first.encode()).returncode == 0
    # The server's real password is the second version: a clone proves readers get the new one.
    second = client.hg("vault", "set", ref, stdin=aws.server.password.encode())
    assert second.returncode == 0, second.output
    name = aws_name(ref)
    assert aws.moto.secret_value(name)["SecretString"] == aws.server.password
    assert aws.moto.secret_value(name, "AWSPREVIOUS")["SecretString"] == first
    described = aws.moto.sm.describe_secret(SecretId=name)
    assert {"Key": "hg-keyvault-ref", "Value": ref} in described["Tags"]
    stages = sorted(s for v in described["VersionIdsToStages"].values() for s in v)
    assert stages == ["AWSCURRENT", "AWSPREVIOUS"], described["VersionIdsToStages"]
    clone = client.hg("clone", aws.server.repo_url(), "work")
    assert clone.returncode == 0, clone.output
    listed = json.loads(client.hg("vault", "list", "-T", "json").stdout)
    [entry] = [e for e in listed if e["ref"] == ref]
    assert entry["versions"] == 2, entry
    assert not any(first in out or aws.server.password in out for out in client.outputs)


def test_set_tags_the_ref_at_creation_only_and_drops_a_stale_expiry(aws, operator, tmp_path):
    ref = unique_ref("retag")
    client = aws.client(tmp_path, operator, ref=ref)
    created = client.hg("vault", "set", ref, "--expires", "30", stdin=b"first-value")
    assert created.returncode == 0, created.output
    name = aws_name(ref)
    tags = {t["Key"]: t["Value"] for t in aws.moto.sm.describe_secret(SecretId=name)["Tags"]}
    assert tags.get("hg-keyvault-ref") == ref and "hg-keyvault-expires" in tags, tags
    mark = aws.moto.mark()
    again = client.hg("vault", "set", ref, stdin=b"second-value")
    assert again.returncode == 0, again.output
    # No TagResource for the ref (set at creation); the old version's expiry is removed.
    assert aws.moto.calls(mark) == [
        "secretsmanager.PutSecretValue",
        "secretsmanager.UntagResource",
    ], aws.moto.calls(mark)
    tags = {t["Key"]: t["Value"] for t in aws.moto.sm.describe_secret(SecretId=name)["Tags"]}
    assert tags == {"hg-keyvault-ref": ref}, tags


def test_a_set_that_fails_after_storing_the_value_forgets_the_cached_one(aws, tmp_path):
    """TagResource refused after PutSecretValue stored the new value: the abort leaves no stale
    value in the secret cache."""
    aws.put(ref := unique_ref("tagdenied"))
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["secretsmanager:*", "sts:GetCallerIdentity"],
             "Resource": "*"},
            {"Effect": "Deny", "Action": "secretsmanager:TagResource", "Resource": "*"},
        ],
    }  # fmt: skip
    user = aws.moto.create_user("hg-no-tagging", policy)
    # The profile's static keys: the secret cache seals under the profile files (environment
    # keys have no sealing material of their own, so values read with them are not cached).
    client = aws.client(tmp_path, {}, ref=ref, extra="[keyvault]\nsecret-cache = 120\n")
    (tmp_path / "aws" / "credentials").write_text(
        "[default]\n"
        f"aws_access_key_id = {user['aws_access_key_id']}\n"
        f"aws_secret_access_key = {user['aws_secret_access_key']}\n"
    )

    def cached_for():
        status = client.hg("vault", "-T", "json")
        assert status.returncode == 0, status.output
        data = json.loads(status.stdout)
        data = data[0] if isinstance(data, list) else data
        [group] = [g for g in data["secrets"] if g["ref"] == ref]
        return group.get("cached_for", status.stdout)

    aws.moto.enforce_iam(True)
    try:
        assert client.hg("clone", aws.server.repo_url(), "work").returncode == 0
        assert cached_for() is not None
        refused = client.hg("vault", "set", ref, "--expires", "30", stdin=b"new-value")
        left = cached_for()
    finally:
        aws.moto.enforce_iam(False)
    assert refused.returncode != 0
    assert "TagResource" in refused.output, refused.output
    assert aws.moto.secret_value(aws_name(ref))["SecretString"] == "new-value"
    assert left is None


def test_list_shows_a_forgotten_secret_as_scheduled_for_deletion(aws, operator, tmp_path):
    ref = unique_ref("forgotten")
    client = aws.client(tmp_path, operator, ref=ref)
    assert client.hg("vault", "set", ref, stdin=b"to-be-forgotten").returncode == 0
    forgot = client.hg("vault", "forget", ref, "--yes")
    assert forgot.returncode == 0, forgot.output
    listed = client.hg("vault", "list", "-T", "json")
    assert listed.returncode == 0, listed.output
    [entry] = [e for e in json.loads(listed.stdout) if e["ref"] == ref]
    assert entry["state"] == "scheduled for deletion", entry
    assert entry["scheduled_deletion"], entry
    assert entry["note"].startswith("scheduled for deletion on "), entry
    text = client.hg("vault", "list").stdout
    assert f"{ref}\n" in text and "state:    scheduled for deletion" in text, text


class _CreateRace:
    """A plain-http front of moto that, when a CreateSecret comes by, first lets another writer
    create the same secret: the race of two first-time `hg vault set`, made certain."""

    def __init__(self, moto, name: str, ref: str) -> None:
        race = self
        self.raced = False
        tls = ssl.create_default_context(cafile=moto.ca_file)

        class Front(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                target = self.headers.get("X-Amz-Target", "")
                if target.endswith(".CreateSecret") and not race.raced:
                    race.raced = True
                    moto.create_secret(name, "the-other-writers-value", ref=ref)
                conn = http.client.HTTPSConnection("127.0.0.1", moto.port, context=tls, timeout=30)
                try:
                    conn.request("POST", self.path, body, dict(self.headers.items()))
                    answer = conn.getresponse()
                    data = answer.read()
                finally:
                    conn.close()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Front)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_first_set_that_loses_the_creation_race_stores_a_new_version(aws, operator, tmp_path):
    ref = unique_ref("race")
    name = aws_name(ref)
    race = _CreateRace(aws.moto, name, ref)
    try:
        client = aws.client(tmp_path, operator, ref=ref, endpoint=race.url)
        result = client.hg("vault", "set", ref, stdin=b"our-value")
    finally:
        race.stop()
    assert race.raced
    assert result.returncode == 0, result.output
    assert aws.moto.secret_value(name)["SecretString"] == "our-value"
    previous = aws.moto.secret_value(name, "AWSPREVIOUS")["SecretString"]
    assert previous == "the-other-writers-value"


def test_list_pages_through_more_secrets_than_one_page(aws, operator, tmp_path):
    prefix = f"hg-page{secrets.token_hex(2)}-"
    refs = [f"secret://page/{i:03d}" for i in range(105)]
    for ref in refs:
        aws.moto.create_secret(aws_name(ref, prefix), "v", ref=ref)
    client = aws.client(tmp_path, operator, extra=f"[keyvault]\nname-prefix = {prefix}\n")
    mark = aws.moto.mark()
    listed = client.hg("vault", "list", "-T", "json")
    assert listed.returncode == 0, listed.output
    entries = json.loads(listed.stdout)
    # Every managed secret is listed; the other tests' (default prefix) carry a note and no
    # version count, this prefix's 105 are the ones this configuration reaches.
    reached = {e["ref"]: e for e in entries if e["note"] is None}
    assert set(reached) == set(refs), sorted(reached)
    assert all(e["versions"] == 1 for e in reached.values())
    others = [e for e in entries if e["note"] is not None]
    # (A secret another test forgot is listed as scheduled for deletion instead.)
    assert all(
        e["note"] == "stored under another keyvault.name-prefix"
        or e["state"] == "scheduled for deletion"
        for e in others
    ), others
    # moto answers at most 100 per page (as Secrets Manager's MaxResults does).
    pages = [c for c in aws.moto.calls(mark) if c == "secretsmanager.ListSecrets"]
    assert len(pages) >= 2, aws.moto.calls(mark)


def test_an_arn_ref_is_read_in_the_arns_region_without_any_other(aws, operator, tmp_path):
    arn = aws.moto.create_secret(f"ops/legacy-hg-{secrets.token_hex(3)}", aws.server.password)
    client = aws.client(tmp_path, operator, ref=arn, region="")
    mark = aws.moto.mark()
    clone = client.hg("clone", aws.server.repo_url(), "work")
    assert clone.returncode == 0, clone.output
    [request] = aws.moto.requests(mark)
    assert (request.call, request.region) == (GET, "eu-west-1")


def test_no_region_aborts_with_a_hint(aws, operator, tmp_path):
    ref = unique_ref("noregion")
    client = aws.client(tmp_path, operator, ref=ref, region="")
    clone = client.hg("clone", aws.server.repo_url(), "work")
    assert clone.returncode != 0
    assert f"keyvault: no AWS region for secret {ref} ({aws_name(ref)})" in clone.output, (
        clone.output
    )
    assert "(" in clone.output.split("no AWS region", 1)[1], "a hint follows"
    assert "Traceback" not in clone.output


def test_a_missing_secret_names_it_and_sends_one_request(aws, operator, tmp_path):
    ref = unique_ref("missing")
    client = aws.client(tmp_path, operator, ref=ref)
    mark = aws.moto.mark()
    clone = client.hg("clone", aws.server.repo_url(), "work")
    assert clone.returncode != 0
    assert aws_name(ref) in clone.output or ref in clone.output, clone.output
    assert "Traceback" not in clone.output
    assert aws.moto.calls(mark) == [GET]
    assert not (client.home / "work").exists()


def test_signatures_are_checked_under_iam_enforcement(aws, tmp_path):
    aws.put(ref := unique_ref("signed"))
    user = aws.moto.create_user("hg-signed-reader")
    right = {
        "AWS_ACCESS_KEY_ID": user["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": user["aws_secret_access_key"],
    }
    wrong_secret = user["aws_secret_access_key"][:-4] + "WXYZ"
    wrong = dict(right, AWS_SECRET_ACCESS_KEY=wrong_secret)
    good = aws.client(tmp_path / "good", right, ref=ref)
    bad = aws.client(tmp_path / "bad", wrong, ref=ref)
    aws.moto.enforce_iam(True)
    try:
        # moto recomputes SigV4 with the user's real key: a clone that works was signed right.
        accepted = good.hg("clone", aws.server.repo_url(), "work")
        refused = bad.hg("clone", aws.server.repo_url(), "work")
    finally:
        aws.moto.enforce_iam(False)
    assert accepted.returncode == 0, accepted.output
    assert refused.returncode != 0
    out = refused.output
    assert "signature" in out.lower(), out
    assert user["aws_access_key_id"] not in out or "secret access key" in out.lower(), out
    assert wrong_secret not in out and "Traceback" not in out
    assert not (bad.home / "work").exists()


def test_an_endpoint_that_never_answers_aborts_within_keyvault_timeout(aws, operator, tmp_path):
    hole = BlackHole()
    try:
        client = aws.client(
            tmp_path, operator, ref=unique_ref("hole"), timeout=2, endpoint=hole.url
        )
        clone = client.hg("clone", aws.server.repo_url(), "work")
    finally:
        hole.stop()
    assert clone.returncode != 0
    out = clone.output
    assert f"127.0.0.1:{hole.port}" in out, out
    assert "within 2 s (keyvault.timeout)" in out, out
    assert "Traceback" not in out
    assert hole.accepted, "the product did connect"


def test_chg_serves_aws_from_its_forked_workers(aws, tmp_path):
    aws.put(ref := unique_ref("chg"))
    env, caller = aws.role_session_env("hg-chg-role", "hg-chg")
    client = aws.client(tmp_path, env, ref=ref)
    (tmp_path / "chg").mkdir()
    client.env.update(CHGHG=HG, CHGSOCKNAME=str(tmp_path / "chg" / "server"), CHGTIMEOUT="30")
    try:
        clone = client.hg("clone", aws.server.repo_url(), "work", program=CHG)
        assert clone.returncode == 0, clone.output
        mark = aws.moto.mark()
        for _ in range(2):
            pull = client.hg("pull", cwd=client.home / "work", program=CHG)
            assert pull.returncode == 0, pull.output
        assert aws.moto.calls(mark) == [GET, GET]
        status = json.loads(client.hg("vault", "-T", "json", program=CHG).stdout)
        status = status[0] if isinstance(status, list) else status
        assert status["caller_arn"] == caller, status
    finally:
        subprocess.run([CHG, "--kill-chg-daemon"], env=client.env, capture_output=True, timeout=30)


def test_ssh_key_from_secrets_manager(aws, operator, tmp_path):
    sshd = start_sshd(tmp_path / "sshd")
    try:
        private, public = new_key_pair()
        sshd.authorize(public)
        key_ref = unique_ref("ssh-key")
        aws.put(key_ref, private)
        client = aws.client(
            tmp_path / "c",
            operator,
            extra=(
                f"[ui]\nssh = {sshd.ssh_command()}\nremotecmd = {HG}\n"
                f"[auth]\nbox.prefix = {sshd.origin()}\nbox.vault = {key_ref}\n"
            ),
        )
        sshd.add_repo("repo", client.env)
        mark = aws.moto.mark()
        clone = client.hg("clone", sshd.repo_url(), "work")
        assert clone.returncode == 0, clone.output
        assert aws.moto.calls(mark) == [GET]
        assert "Accepted publickey for" in sshd.auth_log()
        hits, searched = files_containing([tmp_path], private.strip().splitlines()[-2])
        assert searched > 10 and hits == []
        assert not any("PRIVATE KEY" in out for out in client.outputs)
    finally:
        sshd.stop()


def test_smtp_password_from_secrets_manager(aws, operator, tmp_path):
    password = "smtp-aws-" + secrets.token_urlsafe(16)
    smtp = start_smtp_server(tmp_path / "smtp", aws.ca, user="mailer", password=password)
    try:
        smtp_ref = unique_ref("smtp")
        aws.put(smtp_ref, password)
        client = aws.client(
            tmp_path / "c",
            operator,
            extra=(
                "[extensions]\npatchbomb =\n"
                "[email]\nmethod = smtp\nfrom = CI <ci@example.com>\n"
                f"[smtp]\nhost = localhost\nport = {smtp.port}\ntls = starttls\n"
                f"username = mailer\nvault = {smtp_ref}\n"
            ),
        )
        assert client.hg("init", "repo").returncode == 0
        repo = client.home / "repo"
        (repo / "a.txt").write_text("a patch worth mailing\n")
        assert client.hg("commit", "-A", "-m", "mail me", cwd=repo).returncode == 0
        sent = client.hg("email", "-r", "tip", "--to", "dev@example.com", cwd=repo)
        assert sent.returncode == 0, sent.output
        assert smtp.logins()[-1] == {"user": "mailer", "ok": True}
        assert b"mail me" in smtp.messages()[-1]
        assert not any(password in out for out in client.outputs)
        hits, searched = files_containing([tmp_path / "c"], password.encode())
        assert searched > 5 and hits == []
    finally:
        smtp.stop()


def test_migrate_keyring_to_aws_then_aws_to_azure(aws, operator, tmp_path):
    service = start_secret_service(tmp_path / "secretservice")
    try:
        prefix = f"m{secrets.token_hex(3)}-"
        emulator = aws.bed.emulator
        client = aws.client(
            tmp_path / "c",
            {**operator, **aws.bed.identity_env("officer")},
            extra=(
                f"[keyvault]\nkeyring = secret-service\nname-prefix = {prefix}\n"
                f"url = {emulator.vault_url}\nverify-challenge-resource = false\n"
            ),
        )
        client.env.update(service.env())
        refs = [f"secret://migrate/{i}" for i in range(3)]
        values = [f"migrated-{i}-" + secrets.token_urlsafe(8) for i in range(3)]
        for ref, value in zip(refs, values):
            stored = client.hg(
                "vault", "set", ref, "--config", "keyvault.provider=keyring", stdin=value.encode()
            )
            assert stored.returncode == 0, stored.output

        to_aws = client.hg("vault", "migrate", "--from", "keyring", "--to", "aws", "-T", "json")
        assert to_aws.returncode == 0, to_aws.output
        [report] = json.loads(to_aws.stdout)
        assert (report["copied"], report["failed"]) == (3, 0), report
        for ref, value in zip(refs, values):
            assert aws.moto.secret_value(aws_name(ref, prefix))["SecretString"] == value
        again = client.hg("vault", "migrate", "--from", "keyring", "--to", "aws", "-T", "json")
        [report] = json.loads(again.stdout)
        assert (report["copied"], report["unchanged"]) == (0, 3), report

        to_azure = client.hg("vault", "migrate", "--from", "aws", "--to", "azure", "-T", "json")
        assert to_azure.returncode == 0, to_azure.output
        [report] = json.loads(to_azure.stdout)
        assert (report["copied"], report["failed"]) == (3, 0), report
        listed = client.hg("vault", "list", "--config", "keyvault.provider=azure", "-T", "json")
        assert {e["ref"] for e in json.loads(listed.stdout)} >= set(refs)
        for out in client.outputs:
            assert not any(v in out for v in values)
        # Every file of the test: the client's (only its hgrc and a lock: nothing was cloned),
        # the secret service's logs and its keyring, which keeps values encrypted.
        for value in values:
            hits, searched = files_containing([tmp_path], value.encode())
            assert searched > 5 and hits == []
    finally:
        service.stop()
