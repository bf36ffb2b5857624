"""hg clone / pull / push authenticate with a password that lives only in the vault.

Real parts only: the venv's hg, nginx + gunicorn + hgweb with Basic auth and TLS,
the Key Vault emulator, the extension and its native core.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest
from bed import files_containing

pytestmark = pytest.mark.usefixtures("clean_faults")


def unique_ref(name: str) -> str:
    return f"secret://hg/tests/{name}/{secrets.token_hex(4)}"


def test_clone_pull_push_use_the_vault_password_and_leave_it_nowhere(bed, tmp_path):
    bed.provision()
    client = bed.client(tmp_path, extra="[extensions]\nblackbox =\n[blackbox]\ntrack = *\n")

    clone = client.hg("clone", "--debug", "--traceback", bed.server.repo_url(), "work")
    assert clone.returncode == 0, clone.output
    assert "keyvault: using [auth] corp" in clone.output
    work = client.home / "work"
    (work / "from-ci.txt").write_text("pushed through the vault\n")
    assert client.hg("add", "from-ci.txt", cwd=work).returncode == 0
    assert client.hg("commit", "-m", "ci commit", cwd=work).returncode == 0
    push = client.hg("push", "--debug", cwd=work)
    assert push.returncode == 0, push.output
    pull = client.hg("pull", cwd=work)
    assert pull.returncode == 0, pull.output
    status = client.hg("vault", "-T", "json", "--debug", cwd=work)
    assert status.returncode == 0, status.output

    # Vault requests name the tool and Mercurial in their User-Agent (Key Vault logs record it).
    agents = {r["user_agent"] for r in bed.emulator.requests() if r["target"] == "vault"}
    assert any("hg-keyvault/" in a and "mercurial/" in a for a in agents if a), agents
    # The server has the commit: the push really authenticated.
    log = bed.server.requests()
    assert any(r["cmd"] == "unbundle" and r["status"] == 200 for r in log)

    password = bed.server.password.encode()
    hits, searched = files_containing([tmp_path, bed.root], password)
    assert searched > 20
    assert hits == []
    assert not any(bed.server.password in out for out in client.outputs)
    # The password shows only as stars in --debug output.
    assert "http auth: user ci-bot, password ****" in clone.output


def test_server_rejecting_the_vault_password_aborts_once_naming_group_ref_and_version(
    bed, tmp_path
):
    ref = unique_ref("rejected")
    stored = bed.provision("not-the-password", ref=ref).stdout
    version = re.search(r"version (\w+)", stored)[1]
    client = bed.client(tmp_path, ref=ref)
    before = len(bed.server.requests())

    result = client.hg("clone", bed.server.repo_url(), "work")

    assert result.returncode == 255
    assert "rejected the password from the vault for [auth] corp" in result.stderr
    assert ref in result.stderr
    assert "hg vault set" in result.stderr
    assert f"version {version}" in result.stderr
    # One unauthenticated probe and one try with the vault's password: no retry loop.
    assert len(bed.server.requests()) - before == 2
    assert not (client.home / "work").exists()


def test_missing_secret_aborts_with_a_hint_to_set_it(bed, tmp_path):
    ref = unique_ref("missing")
    client = bed.client(tmp_path, ref=ref)
    result = client.hg("clone", bed.server.repo_url(), "work")
    assert result.returncode == 255
    assert "[auth] corp" in result.stderr
    assert "does not exist in vault" in result.stderr
    assert f"hg vault set {ref}" in result.stderr


def test_identity_without_a_role_aborts_naming_the_missing_role(bed, tmp_path):
    bed.provision()
    client = bed.client(tmp_path, principal="nobody")
    result = client.hg("clone", bed.server.repo_url(), "work")
    assert result.returncode == 255
    assert "Key Vault Secrets User" in result.stderr
    assert bed.emulator.principal("nobody")["object_id"] in result.stderr


def test_vault_down_aborts_at_once_naming_the_url(bed, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on the port now: connections are refused.
    client = bed.client(tmp_path, vault_url=f"https://127.0.0.1:{port}/", timeout=5)
    result = client.hg("clone", bed.server.repo_url(), "work")
    assert result.returncode == 255
    assert f"127.0.0.1:{port}" in result.stderr
    assert result.seconds < 5


def test_slow_vault_aborts_within_the_timeout(bed, tmp_path):
    bed.provision()
    bed.emulator.set_faults([{"target": "vault", "kind": "hang"}])
    client = bed.client(tmp_path, timeout=2)
    result = client.hg("clone", bed.server.repo_url(), "work")
    assert result.returncode == 255
    assert "2" in result.stderr and "keyvault.timeout" in result.stderr
    # Bounded: the timeout plus the time hg itself needs to start and clone-probe.
    assert result.seconds < 2 + 3


def test_url_that_no_vault_group_matches_behaves_as_without_the_extension(bed, tmp_path):
    bed.provision()
    # "/rep" must not match "/repo": prefixes end on path segment boundaries.
    client = bed.client(tmp_path, prefix=bed.server.url + "rep")
    result = client.hg("clone", bed.server.repo_url(), "work")
    assert result.returncode == 255
    assert "http authorization required" in result.stderr
    assert "keyvault" not in result.stderr


def test_host_prefix_does_not_match_a_longer_host(bed, tmp_path):
    bed.provision()
    # https://localhost:PORT/ must not cover https://localhost.evil.org:PORT/ ; the closest real
    # check on loopback: a group for 127.0.0.1 does not cover localhost.
    client = bed.client(tmp_path, prefix=bed.server.url.replace("localhost", "127.0.0.1"))
    result = client.hg("clone", bed.server.repo_url(), "work")
    assert result.returncode == 255
    assert "http authorization required" in result.stderr


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("credential", "bogus", "keyvault.credential"),
        ("url", "http://vault.example/", "keyvault.url"),
        ("timeout", "-1", "keyvault.timeout"),
        ("id-token-env", "$AZURE_ID_TOKEN", "keyvault.id-token-env"),
    ],
)
def test_bad_config_is_a_config_error_naming_the_key(bed, tmp_path, setting, value, expected):
    bed.provision()
    client = bed.client(
        tmp_path, extra=f"[keyvault]\n{setting} = {value}\n[ui]\ndetailed-exit-code = yes\n"
    )
    result = client.hg("clone", bed.server.repo_url(), "work")
    assert result.returncode == 30  # Mercurial's exit code for config errors
    assert expected in result.stderr


def test_pinned_ci_oidc_outside_ci_lists_only_the_ci_links(bed, tmp_path):
    bed.provision()
    client = bed.client(tmp_path, extra="[keyvault]\ncredential = ci-oidc\n")
    result = client.hg("clone", bed.server.repo_url(), "work")
    assert result.returncode == 255
    assert "the ci-oidc credential could not get a token; tried:\n" in result.stderr
    tried = [
        line.split(":")[0].strip() for line in result.stderr.splitlines() if line.startswith("  ")
    ]
    assert tried == ["github-actions", "azure-pipelines", "gitlab-ci"], result.stderr


def test_bad_ref_is_a_config_error(bed, tmp_path):
    client = bed.client(
        tmp_path, ref="secret://hg//password", extra="[ui]\ndetailed-exit-code = yes\n"
    )
    result = client.hg("clone", bed.server.repo_url(), "work")
    assert result.returncode == 30
    assert "secret://hg//password" in result.stderr


def test_commands_that_need_no_credential_never_load_the_native_core(bed, tmp_path):
    client = bed.client(tmp_path)
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import atexit, sys\n"
        "def uisetup(ui):\n"
        "    def report():\n"
        "        mod = sys.modules.get('mercurial.url')\n"
        "        executed = mod is not None and type(mod).__name__ != '_LazyModule'\n"
        "        print('native=%s url=%s' % ('hgext3rd.keyvault._native' in sys.modules,"
        " executed))\n"
        "    atexit.register(report)\n"
    )
    client.append_config(f"[extensions]\nprobe = {probe}\n")
    assert client.hg("init", "repo").returncode == 0
    repo = client.home / "repo"
    # `hg version` reads the extension's __version__ (even without -v): from the metadata.
    for args in (["status"], ["log"], ["help", "keyvault"], ["version"], ["version", "-v"]):
        result = client.hg(*args, cwd=repo)
        assert result.returncode == 0, result.output
        assert "native=False" in result.stdout, (args, result.stdout)


def test_help_text_is_stable(bed, tmp_path):
    client = bed.client(tmp_path)
    result = client.hg("help", "keyvault")
    assert result.returncode == 0
    snapshot = Path(__file__).parent / "snapshots" / "help-keyvault.txt"
    assert result.stdout == snapshot.read_text()


def test_interactive_run_gets_mercurials_own_prompt_where_no_vault_group_matches(bed, tmp_path):
    client = bed.client(
        tmp_path,
        prefix="https://elsewhere.example/",
        extra="[ui]\ninteractive = true\nnontty = true\n",
    )
    answers = f"{bed.server.username}\n{bed.server.password}\n".encode()
    result = client.hg("clone", bed.server.repo_url(), "work", stdin=answers)
    assert result.returncode == 0, result.output
    assert "http authorization required" in result.stdout
    assert "user:" in result.stdout
