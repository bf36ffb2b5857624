"""The authenticated hg test server (tests/hgserver.py) behaves like a real protected hg host."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
from pathlib import Path

import hgserver
import pytest
import trustme
from hgserver import HG, REALM, WHOAMI_PATH, HgServer, port_is_free, start_hg_server
from servers.fixtures import HgClient, hg_client, hg_server, make_hg_client, write_ca_files

__all__ = ["hg_client", "hg_server"]  # fixtures, imported for pytest


def _server_log(server: HgServer, name: str = "repo") -> list[str]:
    """Descriptions of the changesets in the server-side repository, newest first."""
    proc = subprocess.run(
        [HG, "-R", str(server.repo_path(name)), "log", "-T", "{desc}\n"],
        env={**os.environ, "HGRCPATH": os.devnull, "HGPLAIN": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.splitlines()


def _get(server: HgServer, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    conn = http.client.HTTPSConnection("localhost", server.port, context=server.ssl_context())
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def test_clone_without_credentials_aborts_non_interactively(
    hg_server: HgServer, hg_client: HgClient
) -> None:
    proc = hg_client.run("clone", hg_server.repo_url(), "work")

    assert proc.returncode == 255
    assert f"abort: http authorization required for {hg_server.repo_url()}" in proc.stderr
    hg_requests = [r for r in hg_server.requests() if r["cmd"]]
    assert [(r["cmd"], r["status"], r["has_auth"]) for r in hg_requests] == [
        ("capabilities", 401, 0)
    ]


def test_clone_push_pull_with_auth_section(
    tmp_path: Path, hg_server: HgServer, hg_client: HgClient
) -> None:
    hg_client.add_auth(hg_server)
    clone = hg_client.run("clone", hg_server.repo_url(), "work")
    assert clone.returncode == 0, clone.stderr

    work = hg_client.home / "work"
    (work / "new-file").write_text("pushed by the test\n")
    assert hg_client.run("commit", "-A", "-m", "pushed commit", cwd=work).returncode == 0
    push = hg_client.run("push", cwd=work)
    assert push.returncode == 0, push.stderr
    assert _server_log(hg_server) == ["pushed commit", "seed"]

    other = make_hg_client(tmp_path / "other", ca_file=hg_server.ca_file)
    other.add_auth(hg_server)
    assert other.run("init", "mirror").returncode == 0
    pull = other.run("pull", "-u", hg_server.repo_url(), cwd=other.home / "mirror")
    assert pull.returncode == 0, pull.stderr
    assert (other.home / "mirror" / "new-file").read_text() == "pushed by the test\n"


def test_hg_sends_credentials_only_after_a_401_then_preemptively(
    hg_server: HgServer, hg_client: HgClient
) -> None:
    hg_client.add_auth(hg_server)
    assert hg_client.run("clone", hg_server.repo_url(), "work").returncode == 0

    seen = [(r["cmd"], r["status"], r["has_auth"]) for r in hg_server.requests() if r["cmd"]]
    assert seen[:2] == [("capabilities", 401, 0), ("capabilities", 200, 1)]
    assert all(status == 200 and has_auth for _, status, has_auth in seen[1:])


def test_wrong_password_aborts_after_one_401_retry(
    hg_server: HgServer, hg_client: HgClient
) -> None:
    hg_client.add_auth(hg_server, password="not-the-password")
    proc = hg_client.run("clone", hg_server.repo_url(), "work")

    assert proc.returncode == 255
    assert "abort: authorization failed" in proc.stderr
    statuses = [(r["status"], r["has_auth"]) for r in hg_server.requests() if r["cmd"]]
    assert statuses == [(401, 0), (401, 1)]


def test_push_is_authorized_by_the_authenticated_user(tmp_path: Path) -> None:
    # Only "someone-else" may push: a push as ci-bot must be refused by hgweb, which proves
    # that hgweb decides on the REMOTE_USER that nginx authenticated.
    with start_hg_server(tmp_path / "srv", allow_push="someone-else") as server:
        client = make_hg_client(tmp_path / "client", ca_file=server.ca_file)
        client.add_auth(server)
        assert client.run("clone", server.repo_url(), "work").returncode == 0
        work = client.home / "work"
        (work / "f").write_text("x\n")
        client.run("commit", "-A", "-m", "refused", cwd=work)

        push = client.run("push", cwd=work)

        assert push.returncode != 0
        assert _server_log(server) == ["seed"]
        assert [r["status"] for r in server.requests() if r["cmd"] == "unbundle"] == [401]


def test_remote_user_comes_from_nginx_not_from_the_client(hg_server: HgServer) -> None:
    conn = http.client.HTTPSConnection("localhost", hg_server.port, context=hg_server.ssl_context())
    conn.request(
        "GET",
        WHOAMI_PATH,
        headers={
            "Authorization": hg_server.basic_auth_header(),
            "X-Remote-User": "mallory",
            "Remote-User": "mallory",
        },
    )
    resp = conn.getresponse()
    seen = json.loads(resp.read())
    conn.close()

    assert seen == {
        "remote_user": hg_server.username,
        "url_scheme": "https",
        "host": f"localhost:{hg_server.port}",
    }


def test_unauthenticated_request_gets_named_basic_realm(hg_server: HgServer) -> None:
    resp = _get(hg_server, "/repo?cmd=capabilities", {"X-Remote-User": hg_server.username})

    assert resp.status == 401
    assert resp.getheader("WWW-Authenticate") == f'Basic realm="{REALM}"'


def test_password_is_in_no_log_and_no_argv(hg_server: HgServer, hg_client: HgClient) -> None:
    hg_client.add_auth(hg_server)
    assert hg_client.run("clone", hg_server.repo_url(), "work").returncode == 0

    for pid in (hg_server.nginx_pid, hg_server.gunicorn_pid):
        assert pid is not None
        for proc_pid in [pid, *_children(pid)]:
            argv = Path(f"/proc/{proc_pid}/cmdline").read_bytes()
            assert hg_server.password.encode() not in argv
    for log in (hg_server.workdir / "logs").iterdir():
        assert hg_server.password not in log.read_text(errors="replace")
    assert hg_server.password not in repr(hg_server)


def test_redirect_locations_point_to_the_other_origin(tmp_path: Path) -> None:
    target = "https://127.0.0.1:9/elsewhere/"
    with start_hg_server(tmp_path / "srv", redirect_to=target) as server:
        auth = {"Authorization": server.basic_auth_header()}
        path = "/" + server.redirect_url("repo").removeprefix(server.url)
        resp = _get(server, path + "?cmd=capabilities", auth)
        assert (resp.status, resp.getheader("Location")) == (
            302,
            target + "repo?cmd=capabilities",
        )
        assert _get(server, path, {}).status == 401

        open_path = "/" + server.redirect_url("repo", auth=False).removeprefix(server.url)
        resp = _get(server, open_path, {})
        assert (resp.status, resp.getheader("Location")) == (302, target + "repo")


def test_plain_hg_resends_basic_credentials_across_a_redirect(tmp_path: Path) -> None:
    # Characterizes stock Mercurial, the behaviour hg-keyvault must not inherit: once Basic auth
    # succeeded, the cached Authorization header follows a 302 to another origin.
    ca = trustme.CA()
    with (
        start_hg_server(tmp_path / "other", ca=ca, username="other-user") as other,
        start_hg_server(tmp_path / "srv", ca=ca, redirect_to=other.url) as server,
    ):
        client = make_hg_client(tmp_path / "client", ca_file=server.ca_file)
        client.add_auth(server)

        proc = client.run("clone", server.redirect_url("repo"), "work")

        assert proc.returncode == 255
        assert f"abort: http authorization required for {other.repo_url()}" in proc.stderr
        at_other = [r for r in other.requests() if r["cmd"]]
        assert [(r["status"], r["has_auth"], r["remote_user"]) for r in at_other] == [
            (401, 1, server.username)
        ]


def test_shares_an_existing_ca(tmp_path: Path) -> None:
    # The CA as another server (the Key Vault emulator) would get it: PEM files.
    cert_file, key_file = write_ca_files(trustme.CA(), tmp_path / "ca")
    ca = trustme.CA.from_pem(cert_file.read_bytes(), key_file.read_bytes())
    with start_hg_server(tmp_path / "srv", ca=ca, repos=("a", "b"), seed=False) as server:
        assert Path(server.ca_file).read_bytes() == ca.cert_pem.bytes()
        client = make_hg_client(tmp_path / "client", ca_file=server.ca_file)
        client.add_auth(server)
        assert client.run("clone", server.repo_url("b"), "b").returncode == 0
        server.add_repo("c")
        assert client.run("clone", server.repo_url("c"), "c").returncode == 0
        assert (client.home / "c" / "README").exists()


def test_stop_ends_both_servers_by_pid_and_frees_the_port(tmp_path: Path) -> None:
    server = start_hg_server(tmp_path / "srv")
    pids = [server.nginx_pid, server.gunicorn_pid]
    children = [c for pid in pids if pid for c in _children(pid)]
    assert server.is_running() and not port_is_free(server.port)

    server.stop()

    assert not server.is_running()
    for pid in [*pids, *children]:
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert port_is_free(server.port)
    server.stop()  # idempotent


def test_a_long_work_dir_moves_only_the_unix_socket_elsewhere(tmp_path: Path) -> None:
    workdir = tmp_path / ("d" * 60) / ("e" * 60)  # too long for an AF_UNIX socket path
    with start_hg_server(workdir) as server:
        private_dir = server._private_dir
        assert private_dir is not None and private_dir.is_dir()
        auth = {"Authorization": server.basic_auth_header()}
        assert _get(server, WHOAMI_PATH, auth).status == 200
    assert not private_dir.exists()


def test_two_servers_run_side_by_side(tmp_path: Path) -> None:
    with start_hg_server(tmp_path / "one") as one, start_hg_server(tmp_path / "two") as two:
        assert one.port != two.port
        for server in (one, two):
            auth = {"Authorization": server.basic_auth_header()}
            assert _get(server, WHOAMI_PATH, auth).status == 200


def test_a_port_taken_meanwhile_is_retried_with_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = hgserver._free_port
        monkeypatch.setattr(hgserver, "_free_port", lambda: next(ports, None) or real_free_port())

        with start_hg_server(tmp_path / "srv") as server:
            assert server.port != taken
            assert "Address already in use" in server.nginx_error_log.read_text()


def test_a_start_failure_raises_with_logs_and_leaves_nothing_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hgserver, "NGINX", "/bin/false")
    workdir = tmp_path / "srv"

    with pytest.raises(hgserver.HgServerError, match="nginx exited with 1") as excinfo:
        start_hg_server(workdir)

    assert "gunicorn-error.log" in str(excinfo.value)  # the log tails come with the error
    assert not [p for p in Path("/proc").glob("[0-9]*") if _cwd(p) == workdir.resolve()]


def _cwd(proc: Path) -> Path | None:
    try:
        return Path(os.readlink(proc / "cwd"))
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.extend(int(c) for c in text)
    return out
