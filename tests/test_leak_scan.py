"""The leak scan: the whole scenario matrix (http, https, ssh, smtp; success and
failures; --debug/--traceback, -T json, blackbox, chg) with distinctive secret
values, then a search of every output stream, every file under the homes, repos,
servers, vault and temp dirs, and the argv and environment of every process a
tap could see while hg held its secrets (hooks and the ssh wrapper run
``proctap.py`` as hg's own children). Zero hits; the count of places searched is
printed (``-s``) and written to ``.work/reports/leak-scan.txt``.
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
import trustme
from bed import needles_in_files, start_bed
from hgserver import HG
from recorder import start_recorder
from smtpserver import start_smtp_server
from sshserver import new_key_pair, start_sshd

TAP = Path(__file__).with_name("proctap.py")
CHG = str(Path(HG).with_name("chg"))
REPORT = Path(__file__).resolve().parent.parent / ".work" / "reports" / "leak-scan.txt"
HTTP_REF, SSH_REF, SMTP_REF = "secret://leak/http", "secret://leak/ssh", "secret://leak/smtp"
WRONG_REF, WRONG_SSH_REF, WRONG_SMTP_REF = (
    "secret://leak/wrong-http",
    "secret://leak/wrong-ssh",
    "secret://leak/wrong-smtp",
)
COMMANDS = ("clone", "pull", "push", "email", "vault", "outgoing")
# A token group (the job's Entra token, no stored secret) in front of the recorder, which logs
# what it gets and refuses it (401): the tokens it logged are needles too.
TOKEN_SCOPE = "api://leak-proxy"


def _needles(values: dict[str, bytes]) -> dict[str, bytes]:
    return {name: value for name, value in values.items() if len(value) >= 12}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("leak")
    ca = trustme.CA()
    bed = start_bed(root / "bed", ca=ca, plain_http=True)
    sshd = smtp = recorder = None
    try:
        # Outside the scanned root: its log holds what it received, as a server's would.
        recorder = start_recorder(tmp_path_factory.mktemp("leak-recorder"), ca)
        bed.emulator.register_app(TOKEN_SCOPE)
        sshd = start_sshd(root / "sshd")
        smtp_password = "smtp-LEAK-" + secrets.token_urlsafe(16)
        smtp = start_smtp_server(root / "smtp", ca, user="mailer", password=smtp_password)
        key, public = new_key_pair()
        wrong_key, _ = new_key_pair("unknown")
        sshd.authorize(public)
        sshd.add_repo("repo", bed.client(root / "admin").env)
        wrong_http = "wrong-LEAK-" + secrets.token_urlsafe(16)
        wrong_smtp = "wrong-smtp-LEAK-" + secrets.token_urlsafe(16)
        for value, ref in (
            (bed.server.password, HTTP_REF),
            (key, SSH_REF),
            (smtp_password, SMTP_REF),
            (wrong_http, WRONG_REF),
            (wrong_key, WRONG_SSH_REF),
            (wrong_smtp, WRONG_SMTP_REF),
        ):
            bed.provision(value, ref=ref)
        user = bed.server.username
        values = {
            "http password": bed.server.password.encode(),
            "http Basic header": base64.b64encode(f"{user}:{bed.server.password}".encode()),
            "wrong http password": wrong_http.encode(),
            "smtp password": smtp_password.encode(),
            "smtp AUTH PLAIN": base64.b64encode(f"\0mailer\0{smtp_password}".encode()),
            "smtp AUTH LOGIN": base64.b64encode(smtp_password.encode()),
            "wrong smtp password": wrong_smtp.encode(),
        }
        for name, pem in (("ssh key", key), ("wrong ssh key", wrong_key)):
            # The lines that carry the private part (the first ones are a common header).
            for i, line in enumerate(pem.strip().splitlines()[3:-1]):
                values[f"{name} line {i}"] = line
        yield {
            "root": root,
            "bed": bed,
            "sshd": sshd,
            "smtp": smtp,
            "recorder": recorder,
            "needles": _needles(values),
            "canary": "canary-" + secrets.token_hex(12),
        }
    finally:
        for server in (smtp, sshd, recorder):
            if server is not None:
                server.stop()
        bed.stop()


def _client(world, name: str, *, ref=HTTP_REF, ssh_ref=SSH_REF, smtp_ref=SMTP_REF, extra=""):
    bed, sshd, smtp = world["bed"], world["sshd"], world["smtp"]
    recorder = world["recorder"]
    root = world["root"] / "clients" / name
    (root / "tmp").mkdir(parents=True)
    (root / "chg").mkdir()
    tap_out = root / "tap.jsonl"
    tap = f"{sys.executable} {TAP} {tap_out}"
    hooks = (
        "".join(f"post-{c}.tap = {tap}\nfail-{c}.tap = {tap}\n" for c in COMMANDS if c != "clone")
        + f"changegroup.tap = {tap}\nfail-clone.tap = {tap}\n"
    )
    client = bed.client(
        root,
        ref=ref,
        extra=(
            f"[ui]\nssh = {tap} -- {sshd.ssh_command()}\nremotecmd = {HG}\n"
            f"[auth]\nplain.prefix = {bed.server.http_url}\nplain.schemes = http\n"
            f"plain.username = {bed.server.username}\nplain.vault = {ref}\n"
            f"box.prefix = {sshd.origin()}\nbox.vault = {ssh_ref}\n"
            f"proxy.prefix = {recorder.url}repos\nproxy.entra-scope = {TOKEN_SCOPE}\n"
            f"tokenbasic.prefix = {recorder.url}basic\ntokenbasic.entra-scope = {TOKEN_SCOPE}\n"
            "tokenbasic.token-as = basic\ntokenbasic.username = ci-bot\n"
            + recorder.hgrc()
            + "[extensions]\npatchbomb =\nblackbox =\n[blackbox]\ntrack = *\n"
            "[email]\nmethod = smtp\nfrom = CI <ci@example.com>\n"
            f"[smtp]\nhost = localhost\nport = {smtp.port}\ntls = starttls\n"
            f"username = mailer\nvault = {smtp_ref}\n"
            f"[hooks]\n{hooks}" + extra
        ),
    )
    client.env.update(
        TMPDIR=str(root / "tmp"),
        KEYVAULT_TAP_ROOT=str(os.getpid()),
        KEYVAULT_TAP_MARK=name,
        CHGHG=HG,
        CHGSOCKNAME=str(root / "chg" / "server"),
        CHGTIMEOUT="30",
        # Not a secret: proves that the process search below finds what is there.
        KEYVAULT_TAP_CANARY=world["canary"],
    )
    return client


def _scenario(world, client, kind: str, flags: list[str], program: str):
    bed, sshd = world["bed"], world["sshd"]
    url = {
        "https": bed.server.repo_url(),
        "http": bed.server.http_url + "repo",
        "ssh": sshd.repo_url(),
    }.get(kind)
    name = f"w{len(list(client.home.iterdir()))}"
    runs = []
    if kind == "smtp":
        if not (client.home / "mailrepo").exists():
            client.hg("init", "mailrepo")
            (client.home / "mailrepo" / "m").write_text("m\n")
            client.hg("commit", "-Am", "mail", cwd=client.home / "mailrepo")
        runs.append(
            client.hg(
                "email", "-r", "tip", "--to", "dev@example.com", *flags,
                cwd=client.home / "mailrepo", program=program,
            )
        )  # fmt: skip
        return runs
    if kind == "token":
        recorder = world["recorder"]
        for path in ("repos/app", "basic/app"):
            runs.append(client.hg("clone", *flags, recorder.url + path, name, program=program))
        runs.append(
            client.hg("vault", "check", recorder.url + "repos/app", *flags, program=program)
        )
        return runs
    if kind == "vault":
        runs.append(client.hg("vault", *flags, program=program))
        runs.append(client.hg("vault", "-T", "json", *flags, program=program))
        return runs
    clone = client.hg("clone", *flags, url, name, program=program)
    runs.append(clone)
    if clone.returncode == 0:
        work = client.home / name
        (work / f"{kind}.txt").write_text("leak scan\n")
        client.hg("commit", "-A", "-m", "scan", cwd=work, program=program)
        runs.append(client.hg("push", *flags, cwd=work, program=program))
        runs.append(client.hg("pull", *flags, cwd=work, program=program))
        runs.append(client.hg("outgoing", "-T", "json", *flags, cwd=work, program=program))
    return runs


FLAGS = {
    "plain": [],
    "debug": ["--debug", "--traceback"],
}


def test_no_secret_anywhere_across_the_scenario_matrix(world):
    bed = world["bed"]
    outcomes: dict[str, list[int]] = {}
    clients = []
    cases = [
        # name, client options, kinds
        ("ok", {}, ("https", "http", "ssh", "smtp", "vault")),
        ("wrong", dict(ref=WRONG_REF, ssh_ref=WRONG_SSH_REF, smtp_ref=WRONG_SMTP_REF),
         ("https", "http", "ssh", "smtp")),
        ("missing", dict(ref="secret://leak/none", ssh_ref="secret://leak/none",
                         smtp_ref="secret://leak/none"), ("https", "ssh", "smtp", "vault")),
        # The recorder refuses every token: sent, renewed once, then the abort.
        ("token", {}, ("token",)),
    ]  # fmt: skip
    for case, options, kinds in cases:
        for flag_name, flags in FLAGS.items():
            for program in (HG, CHG):
                tag = f"{case}-{flag_name}-{Path(program).name}"
                client = _client(world, tag, **options)
                clients.append(client)
                for kind in kinds:
                    runs = _scenario(world, client, kind, flags, program)
                    if case == "ok":
                        failed = [r for r in runs if r.returncode not in (0, 1)]
                        assert not failed, (tag, kind, failed[0].args, failed[0].output[-2000:])
                    outcomes.setdefault(f"{case} {kind}", []).extend(r.returncode for r in runs)
                subprocess.run(
                    [CHG, "--kill-chg-daemon"], env=client.env, capture_output=True, timeout=30
                )
    forbidden = _client(world, "forbidden")
    forbidden.env.update(bed.identity_env("nobody"))
    for var in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
        forbidden.env.pop(var, None)
    clients.append(forbidden)
    outcomes["forbidden https"] = [
        r.returncode for r in _scenario(world, forbidden, "https", FLAGS["debug"], HG)
    ]
    down = _client(world, "down", extra="[keyvault]\nurl = https://127.0.0.1:1/\n")
    clients.append(down)
    outcomes["vault down https"] = [
        r.returncode for r in _scenario(world, down, "https", FLAGS["debug"], HG)
    ]

    # The matrix really ran: successes succeeded, failures failed.
    for kind in ("https", "http", "ssh", "smtp", "vault"):
        # (hg outgoing says 1 when there is nothing to push: after push and pull there is not.)
        assert set(outcomes[f"ok {kind}"]) <= {0, 1}, (kind, outcomes[f"ok {kind}"])
    for key, codes in outcomes.items():
        if not key.startswith("ok"):
            assert codes[0] != 0, (key, codes)

    # The Entra tokens the token groups sent (bearer and basic), as the recorder logged them.
    needles = dict(world["needles"])
    tokens = set()
    for request in world["recorder"].requests():
        value = next((v for k, v in request["headers"].items() if k.lower() == "authorization"), "")
        if value.startswith("Bearer "):
            tokens.add(value.removeprefix("Bearer "))
        elif value.startswith("Basic "):
            tokens.add(base64.b64decode(value.removeprefix("Basic ")).decode().partition(":")[2])
            needles[f"token Basic header {len(needles)}"] = value.removeprefix("Basic ").encode()
    assert len(tokens) >= 4, "the token groups sent tokens (and renewed them on the 401)"
    for i, token in enumerate(sorted(tokens)):
        needles[f"entra token {i}"] = token.encode()
        # The signature alone is as distinctive (the header part is shared by all tokens).
        needles[f"entra token {i} signature"] = token.rsplit(".", 1)[1].encode()
    needles = _needles(needles)
    places = 0
    hits: list[str] = []
    # 1. Every captured output stream.
    for client in clients:
        for stream in client.outputs:
            places += 1
            data = stream.encode("utf-8", "surrogateescape")
            hits += [f"output: {n}" for n, v in needles.items() if v in data]
    # 2. Every file under the clients (homes, repos, blackbox logs, temp dirs, taps) and
    #    the servers' and the vault's directories.
    found, searched = needles_in_files([world["root"]], needles)
    places += searched
    hits += [f"file {path}: {n}" for path, n in found]
    # 3. argv and environment of every process each tap saw.
    snapshots = 0
    for client in clients:
        tap_file = client.root / "tap.jsonl"
        for line in tap_file.read_text().splitlines() if tap_file.exists() else []:
            snapshots += 1
            for proc in json.loads(line)["processes"]:
                for what in ("cmdline", "environ"):
                    places += 1
                    data = json.dumps(proc[what]).encode()
                    hits += [
                        f"{what} of {proc['comm']} ({proc['pid']}): {n}"
                        for n, v in needles.items()
                        if v in data
                    ]
    canary = world["canary"].encode()
    canary_seen = sum(
        canary in line.encode()
        for client in clients
        if (client.root / "tap.jsonl").exists()
        for line in (client.root / "tap.jsonl").read_text().splitlines()
    )
    assert canary_seen >= 20, "the process search sees the environments it claims to"
    blackbox = list(world["root"].rglob("blackbox.log"))
    assert blackbox, "blackbox recorded the commands"
    assert snapshots >= 20, snapshots
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    summary = (
        f"leak scan: {len(needles)} distinctive values, {sum(map(len, outcomes.values()))} hg runs "
        f"in {len(outcomes)} scenario groups, {snapshots} process snapshots; "
        f"{places} places searched, {len(hits)} hits\n"
    )
    REPORT.write_text(summary + "".join(f"  {k}: {v}\n" for k, v in sorted(outcomes.items())))
    print(summary)
    assert hits == []
