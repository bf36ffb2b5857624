"""The leak scan for AWS (tests/test_leak_scan.py does Key Vault): distinctive passwords in moto,
reached through three identity sources (environment keys with a session token, web identity
from a token file, the container endpoint), each with plain and ``--debug --traceback``
flags, through hg and chg: clone, commit, push, pull, outgoing -T json, `hg vault`, `hg vault -T
json`, a wrong password and a missing secret, with blackbox logging. Then every captured
output, every file under the clients and the hg server (repos, its logs, blackbox logs, temp
dirs), the server repository's `hg log`, and the argv and environment of every process the
hooks' tap saw are searched for: the passwords and their Basic headers, the secret access keys,
session tokens and access key ids of every credential involved (the ones the host gave and the
temporary ones the product obtained), the web identity token and the container endpoint's
authorization token. What the host itself put into hg's environment is not a leak there (hg's
children inherit the user's environment); anything else is. Zero hits; the number of places
searched goes to ``.work/reports/aws-leak-scan.txt``.

moto's request log is not searched: it is what the server receives (signed requests carry the
session token, PutSecretValue carries the value), as a real service would.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from awsbed import fake_jwt, start_aws_bed
from bed import needles_in_files
from hgserver import HG
from servers.ecscreds import ContainerCredentials

TAP = Path(__file__).with_name("proctap.py")
CHG = str(Path(HG).with_name("chg"))
REPORT = Path(__file__).resolve().parent.parent / ".work" / "reports" / "aws-leak-scan.txt"
OK_REF, WRONG_REF, MISSING_REF = (
    "secret://leak/aws-http",
    "secret://leak/aws-wrong",
    "secret://leak/aws-none",
)
FLAGS = {"plain": [], "debug": ["--debug", "--traceback"]}
HOOKED = ("pull", "push", "outgoing", "vault")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    aws = start_aws_bed(tmp_path_factory.mktemp("awsleak"))
    ecs = None
    try:
        wrong = "wrong-AWS-LEAK-" + secrets.token_urlsafe(16)
        aws.put(OK_REF)
        aws.put(WRONG_REF, wrong)
        env_keys, _ = aws.role_session_env("leak-env-role", "leak-env")
        web_role = aws.moto.create_role("leak-web-role")
        token = fake_jwt("leak")
        # Where the platform mounts it (outside the scanned tree: it is the identity itself).
        token_file = tmp_path_factory.mktemp("awsleak-identity") / "web-identity-token"
        token_file.write_text(token)
        ecs = ContainerCredentials(aws.moto, aws.moto.create_role("leak-task-role"))
        identities = {
            "env": env_keys,
            "web": {"AWS_ROLE_ARN": web_role, "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
                    "AWS_ROLE_SESSION_NAME": "leak-web"},
            "ecs": ecs.env(),
        }  # fmt: skip
        user = aws.server.username
        needles = {
            "password": aws.server.password.encode(),
            "Basic header": base64.b64encode(f"{user}:{aws.server.password}".encode()),
            "wrong password": wrong.encode(),
            "env secret key": env_keys["AWS_SECRET_ACCESS_KEY"].encode(),
            "env session token": env_keys["AWS_SESSION_TOKEN"].encode(),
            "web identity token": token.encode(),
            "web identity token signature": token.rsplit(".", 1)[1].encode(),
            "ecs authorization token": ecs.token.encode(),
            "ecs secret key": ecs.keys["SecretAccessKey"].encode(),
            "ecs session token": ecs.keys["Token"].encode(),
            "ecs access key id": ecs.keys["AccessKeyId"].encode(),
        }
        yield {"aws": aws, "identities": identities, "needles": needles, "web_role": web_role}
    finally:
        if ecs is not None:
            ecs.stop()
        aws.stop()


def _client(world, name: str, identity: str, ref: str):
    aws = world["aws"]
    root = aws.root / "clients" / name
    root.mkdir(parents=True)
    (root / "chg").mkdir()
    tap = f"{sys.executable} {TAP} {root / 'tap.jsonl'}"
    hooks = "".join(f"post-{c}.tap = {tap}\nfail-{c}.tap = {tap}\n" for c in HOOKED)
    hooks += f"changegroup.tap = {tap}\nfail-clone.tap = {tap}\n"
    client = aws.client(
        root,
        world["identities"][identity],
        ref=ref,
        extra="[extensions]\nblackbox =\n[blackbox]\ntrack = *\n" + f"[hooks]\n{hooks}",
    )
    client.env.update(
        KEYVAULT_TAP_ROOT=str(os.getpid()),
        KEYVAULT_TAP_MARK=name,
        CHGHG=HG,
        CHGSOCKNAME=str(root / "chg" / "server"),
        CHGTIMEOUT="30",
    )
    return client


def _scenario(world, client, flags: list[str], program: str) -> list[int]:
    aws = world["aws"]
    codes = []
    clone = client.hg("clone", *flags, aws.server.repo_url(), "work", program=program)
    codes.append(clone.returncode)
    if clone.returncode == 0:
        work = client.home / "work"
        (work / f"{client.root.name}.txt").write_text("aws leak scan\n")
        client.hg("commit", "-A", "-m", f"aws leak scan {client.root.name}", cwd=work)
        for args in (("push",), ("pull",), ("outgoing", "-T", "json")):
            codes.append(client.hg(*args, *flags, cwd=work, program=program).returncode)
    codes.append(client.hg("vault", *flags, program=program).returncode)
    codes.append(client.hg("vault", "-T", "json", *flags, program=program).returncode)
    return codes


def _temporary_keys(world) -> dict[str, bytes]:
    """The keys moto handed out to the web identity sessions the product opened (the server
    knows them; the client must not write them anywhere)."""
    found = {}
    backend = world["aws"].moto.requests()
    for request in backend:
        if request.call == "secretsmanager.GetSecretValue" and request.session_token:
            found[f"temporary session token {len(found)}"] = request.session_token.encode()
            if request.access_key_id:
                found[f"temporary access key id {len(found)}"] = request.access_key_id.encode()
    return found


def test_no_aws_credential_or_value_anywhere(world):
    aws = world["aws"]
    clients, outcomes = [], {}
    for identity in world["identities"]:
        for case, ref in (("ok", OK_REF), ("wrong", WRONG_REF), ("missing", MISSING_REF)):
            for flag_name, flags in FLAGS.items():
                programs = (HG, CHG) if case == "ok" else (HG,)
                for program in programs:
                    tag = f"{identity}-{case}-{flag_name}-{Path(program).name}"
                    client = _client(world, tag, identity, ref)
                    clients.append((client, identity))
                    outcomes[tag] = _scenario(world, client, flags, program)
                    subprocess.run(
                        [CHG, "--kill-chg-daemon"], env=client.env, capture_output=True, timeout=30
                    )
    # The matrix ran: successes succeeded (outgoing: 1 when nothing to push), failures failed.
    for tag, codes in outcomes.items():
        if "-ok-" in tag:
            assert set(codes) <= {0, 1} and codes[0] == 0, (tag, codes)
        else:
            assert codes[0] != 0, (tag, codes)

    needles = dict(world["needles"])
    needles.update(_temporary_keys(world))
    needles = {k: v for k, v in needles.items() if len(v) >= 12}
    places, hits = 0, []
    for client, _ in clients:
        for stream in client.outputs:
            places += 1
            data = stream.encode("utf-8", "surrogateescape")
            hits += [f"output of {client.root.name}: {n}" for n, v in needles.items() if v in data]
    server_log = subprocess.run(
        [HG, "log", "-R", str(aws.server.repo_path()), "-v", "-T", "{desc}\n{files}\n{extras}\n"],
        capture_output=True, timeout=60, env={**os.environ, "HGRCPATH": ""},
    ).stdout  # fmt: skip
    assert b"aws leak scan" in server_log, "the pushes reached the server"
    places += 1
    hits += [f"server hg log: {n}" for n, v in needles.items() if v in server_log]
    # The taps' own recordings hold every process's environment, so the keys the host gave
    # hg (env keys, the ECS token) are in them by construction: they are searched below,
    # process by process, where what the host gave is told apart from what hg added.
    found, searched = needles_in_files([aws.root], needles, skip=lambda p: p.name == "tap.jsonl")
    places += searched
    hits += [f"file {path}: {n}" for path, n in found]
    snapshots = 0
    for client, identity in clients:
        given = world["identities"][identity]
        tap_file = client.root / "tap.jsonl"
        for line in tap_file.read_text().splitlines() if tap_file.exists() else []:
            snapshots += 1
            for proc in json.loads(line)["processes"]:
                env = {k: v for k, v in proc["environ"].items() if k not in given}
                for what, data in (("cmdline", proc["cmdline"]), ("environ", env)):
                    places += 1
                    blob = json.dumps(data).encode()
                    hits += [
                        f"{what} of {proc['comm']} ({client.root.name}): {n}"
                        for n, v in needles.items()
                        if v in blob
                    ]
    assert snapshots >= 20, snapshots
    assert list(aws.root.rglob("blackbox.log")), "blackbox recorded the commands"
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    summary = (
        f"aws leak scan: {len(needles)} distinctive values, {sum(map(len, outcomes.values()))} "
        f"hg runs in {len(outcomes)} scenarios, {snapshots} process snapshots; {places} places "
        f"searched, {len(hits)} hits\n"
    )
    REPORT.write_text(summary + "".join(f"  {h}\n" for h in hits))
    print(summary)
    assert hits == []
