"""hg-git through a vault group, against a real git server.

hg-git (PyPI) pushes to and pulls from git servers over smart HTTP; it asks Mercurial's password
manager for the credentials, so an ``[auth]`` group with a vault ref serves it. The git server is
``git http-backend`` behind nginx with Basic auth and TLS (tests/servers/gitserver.py), the
password lives only in the Key Vault emulator, hg is real hg with hg-git loaded.

hg-git's newest release declares Mercurial 6.6 to 6.9 and does not load on 7.2: ``make test``
runs this module in its own venv (``make hggit-test``, tests/requirements-hggit.txt). Under a
Mercurial it does not support the module is skipped with the reason, and fails instead where
``HG_KEYVAULT_HGGIT=required`` says it must run.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from pathlib import Path

import pytest
import trustme
from bed import Bed, files_containing
from emulator import start_emulator
from servers.fixtures import write_ca_files
from servers.gitserver import SAME_ORIGIN, commit_to, start_git_server

REF = "secret://git/ci-bot/password"
WRONG_REF = "secret://git/ci-bot/wrong"
TAP = Path(__file__).with_name("proctap.py")


def _pins() -> str:
    pins = dict(
        line.split("==")
        for line in (Path(__file__).with_name("requirements-hggit.txt")).read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    return f"hg-git {pins['hg-git']} on Mercurial {pins['mercurial']}"


def _unsupported() -> str | None:
    """Why hg-git cannot run under this venv's Mercurial, or None."""
    from mercurial import util

    running = util.version().decode()
    try:
        import hggit
    except ImportError:
        return (
            f"hg-git is not installed with this Mercurial ({running}); `make hggit-test` runs "
            f"this module in .venv-hggit ({_pins()})"
        )
    line = ".".join(running.split(".")[:2])
    tested = hggit.testedwith.decode().split()
    if line not in tested:
        return (
            f"hg-git supports Mercurial {' '.join(tested)} (its testedwith) and this is "
            f"{running}; `make hggit-test` runs this module in .venv-hggit ({_pins()})"
        )
    return None


_REASON = _unsupported()
if _REASON and os.environ.get("HG_KEYVAULT_HGGIT") == "required":
    pytest.fail(f"HG_KEYVAULT_HGGIT=required, but {_REASON}", pytrace=False)
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The emulator, the git server (with a redirect to another, open origin) and the
    password in the vault; a Bed whose ``server`` is the git server."""
    root = tmp_path_factory.mktemp("hggit")
    ca = trustme.CA()
    ca_cert, ca_key = write_ca_files(ca, root / "ca")
    emulator = start_emulator(root, ca_cert=ca_cert, ca_key=ca_key)
    other = git = home = None
    try:
        # "Another origin" that serves the same kind of repository without asking anything:
        # whatever Authorization header reaches it shows in its access log.
        other = start_git_server(root / "other", ca=ca, auth=False)
        git = start_git_server(
            root / "git",
            ca=ca,
            password="git-LEAK-" + secrets.token_urlsafe(18),
            repos=("repo.git", "team/repo.git", "teamx/repo.git"),
            redirect_to=other.url,
        )
        # Its redirects stay on its own origin (to another path, outside a group's prefix).
        home = start_git_server(
            root / "home", ca=ca, password=git.password, redirect_to=SAME_ORIGIN
        )
        bed = Bed(root=root, ca_file=ca_cert, emulator=emulator, server=git)
        bed.provision(ref=REF)
        wrong = "wrong-LEAK-" + secrets.token_urlsafe(18)
        bed.provision(wrong, ref=WRONG_REF)
        user = git.username
        needles = {
            "password": git.password.encode(),
            "Basic header": base64.b64encode(f"{user}:{git.password}".encode()),
            "wrong password": wrong.encode(),
            "wrong Basic header": base64.b64encode(f"{user}:{wrong}".encode()),
        }
        yield {
            "root": root,
            "ca": ca,
            "bed": bed,
            "git": git,
            "other": other,
            "home": home,
            "needles": needles,
        }
    finally:
        for server in (git, other, home):
            if server is not None:
                server.stop()
        emulator.stop()


def _client(world, name: str, *, ref: str = REF, prefix: str | None = None, tap: bool = False):
    """hg with hg-git and the extension; dulwich (hg-git's HTTP client) does not read
    ``web.cacerts``: it trusts the test CA through SSL_CERT_FILE. ``tap``: hooks record the
    processes while hg holds the password (they cost time: only the leak scan has them)."""
    root = world["root"] / "clients" / name
    hooks = ""
    if tap:
        run = f"{sys.executable} {TAP} {root / 'tap.jsonl'}"
        hooks = "".join(f"pre-{c}.tap = {run}\npost-{c}.tap = {run}\n" for c in ("pull", "push"))
        hooks = f"[hooks]\n{hooks}pretxnclose.tap = {run}\n"
    client = world["bed"].client(
        root, ref=ref, prefix=prefix, extra=f"[extensions]\nhggit =\n{hooks}"
    )
    client.env.update(
        SSL_CERT_FILE=str(world["bed"].ca_file),
        KEYVAULT_TAP_ROOT=str(os.getpid()),
        KEYVAULT_TAP_MARK=name,
    )
    world.setdefault("clients", []).append(client)
    return client


def _since(server, mark: int) -> list[dict]:
    return server.requests()[mark:]


def test_clone_pull_and_push_with_the_password_from_the_vault(world):
    git = world["git"]
    client = _client(world, "roundtrip")
    mark = len(git.requests())

    clone = client.hg("clone", git.repo_url(), "work")
    assert clone.returncode == 0, clone.output
    work = client.home / "work"
    assert (work / "README").read_text() == "seeded\n"
    requests = _since(git, mark)
    # hg-git asks without credentials first; the vault's password answers the 401.
    assert requests[0]["status"] == 401 and requests[0]["has_auth"] == 0, requests
    assert any(r["remote_user"] == git.username and r["status"] == 200 for r in requests)

    upstream = commit_to(git.repo_path(), "upstream.txt", "from git\n", "upstream", git.workdir)
    pull = client.hg("pull", "-u", cwd=work)
    assert pull.returncode == 0, pull.output
    assert (work / "upstream.txt").read_text() == "from git\n"
    log = client.hg("log", "-r", "tip", "-T", "{gitnode}", cwd=work)
    assert log.stdout == upstream, log.output

    (work / "from-hg.txt").write_text("pushed through hg-git\n")
    assert client.hg("commit", "-A", "-m", "from hg", cwd=work).returncode == 0
    mark = len(git.requests())
    push = client.hg("push", cwd=work)
    assert push.returncode == 0, push.output
    assert git.git("repo.git", "log", "-1", "--format=%s", "main").strip() == "from hg"
    assert git.git("repo.git", "show", "main:from-hg.txt") == "pushed through hg-git\n"
    receive = [r for r in _since(git, mark) if r["uri"].endswith("/git-receive-pack")]
    assert receive and all(r["remote_user"] == git.username for r in receive), receive


def test_a_rejected_vault_password_names_its_group_and_is_sent_once(world):
    git = world["git"]
    client = _client(world, "rejected", ref=WRONG_REF)
    mark = len(git.requests())
    result = client.hg("clone", git.repo_url(), "work")
    assert result.returncode != 0
    assert "rejected the password from the vault for [auth] corp" in result.stderr, result.output
    assert WRONG_REF in result.stderr
    # Not hg-git's retries (hggit.retries, 3) ending in its bare "authorization failed".
    assert "authorization failed" not in result.stderr
    assert len([r for r in _since(git, mark) if r["has_auth"]]) == 1, _since(git, mark)


def test_no_vault_password_follows_a_redirect_to_another_origin(world):
    git, other = world["git"], world["other"]
    client = _client(world, "redirect")
    mark, other_mark = len(git.requests()), len(other.requests())

    result = client.hg("clone", git.redirect_url("repo.git"), "work")

    # The server asked, got the vault's password, and sent the client elsewhere...
    redirected = [r for r in _since(git, mark) if r["status"] == 302]
    assert redirected and redirected[0]["has_auth"] == 1, _since(git, mark)
    # ...where the discovery and the POSTs that dulwich then sends to its new base URL arrive
    # without the password (the open origin serves them, so the clone completes).
    reached = _since(other, other_mark)
    assert any(r["method"] == "POST" for r in reached), reached
    assert [r for r in reached if r["has_auth"]] == [], reached
    assert result.returncode == 0, result.output


def test_no_vault_password_follows_a_redirect_out_of_the_prefix_on_the_same_host(world):
    home = world["home"]
    client = _client(world, "redirect-home", prefix=home.url + "redirect/")
    mark = len(home.requests())

    result = client.hg("clone", home.redirect_url("repo.git"), "work")

    requests = _since(home, mark)
    redirected = [r for r in requests if r["status"] == 302]
    assert redirected and redirected[0]["has_auth"] == 1, requests
    # urllib3 keeps the header on a same-host redirect; the group covers only /redirect/.
    outside = [r for r in requests if r["uri"].startswith("/repo.git/")]
    assert outside and all(r["has_auth"] == 0 for r in outside), outside
    assert result.returncode != 0
    assert "rejected the password from the vault" not in result.stderr, result.output


def test_a_url_that_only_shares_the_prefix_text_gets_no_password(world):
    git = world["git"]
    client = _client(world, "prefix", prefix=git.url + "team")
    mark = len(git.requests())

    own = client.hg("clone", git.repo_url("team/repo.git"), "team")
    assert own.returncode == 0, own.output

    other = client.hg("clone", git.repo_url("teamx/repo.git"), "teamx")
    assert other.returncode != 0
    teamx = [r for r in _since(git, mark) if r["uri"].startswith("/teamx/")]
    assert teamx and all(r["has_auth"] == 0 for r in teamx), teamx
    assert not (client.home / "teamx" / "README").exists()


def test_no_password_in_outputs_files_server_logs_or_processes(world):
    # A server of its own whose fcgiwrap runs git http-backend through the process tap.
    server_tap = world["root"] / "server-tap.jsonl"
    git = start_git_server(
        world["root"] / "git-tapped",
        ca=world["ca"],
        password=world["git"].password,
        redirect_to=world["other"].url,
        cgi_wrapper=[sys.executable, str(TAP), str(server_tap), "--"],
    )
    try:
        for flags in ([], ["--debug", "--traceback"]):
            name = f"leak{len(flags)}"
            client = _client(world, name, prefix=git.url, tap=True)
            work = client.home / "work"
            assert client.hg("clone", *flags, git.repo_url(), "work").returncode == 0
            commit_to(git.repo_path(), f"{name}.txt", "x\n", "leak", git.workdir)
            assert client.hg("pull", *flags, "-u", cwd=work).returncode == 0
            (work / f"hg-{name}.txt").write_text("y\n")
            client.hg("commit", "-A", "-m", "leak scan", cwd=work)
            assert client.hg("push", *flags, cwd=work).returncode == 0
            wrong = _client(world, f"{name}-wrong", ref=WRONG_REF, prefix=git.url, tap=True)
            assert wrong.hg("clone", *flags, git.repo_url(), "work").returncode != 0
            redirect = _client(world, f"{name}-redirect", prefix=git.url, tap=True)
            assert redirect.hg("clone", *flags, git.redirect_url("repo.git"), "w").returncode == 0
    finally:
        git.stop()
    backend_requests = [r for r in git.requests() if r["upstream_status"]]

    needles = world["needles"]
    hits: list[str] = []
    places = 0
    # 1. Every output of every hg run of this module.
    for client in world["clients"]:
        for stream in client.outputs:
            places += 1
            hits += [f"output: {n}" for n, v in needles.items() if v in stream.encode()]
    # 2. Every file: client homes, repos (.hg/hgrc, hg-git's .hg/git), hgrc files, taps, the
    #    git servers' repositories and logs (nginx, fcgiwrap, git http-backend), the vault.
    for name, value in needles.items():
        found, searched = files_containing([world["root"]], value)
        places += searched
        hits += [f"file {path}: {name}" for path in found]
    # 3. argv and environment of every process the taps saw: hg's children (hooks) on the
    #    client side, git http-backend (run through the tap by fcgiwrap) on the server side.
    snapshots = {"client": 0, "server": 0}
    taps = [c.root / "tap.jsonl" for c in world["clients"]]
    for tap in [*taps, server_tap]:
        for line in tap.read_text().splitlines() if tap.exists() else []:
            snapshots["server" if tap == server_tap else "client"] += 1
            for proc in json.loads(line)["processes"]:
                for what in ("cmdline", "environ"):
                    places += 1
                    data = json.dumps(proc[what]).encode()
                    hits += [
                        f"{what} of {proc['comm']}: {n}" for n, v in needles.items() if v in data
                    ]
    # Every request that reached the backend ran git http-backend through the tap.
    assert snapshots["server"] == len(backend_requests), (snapshots, len(backend_requests))
    assert snapshots["client"] >= 8, snapshots
    print(f"hg-git leak scan: {snapshots} process snapshots, {places} places searched")
    assert hits == []
