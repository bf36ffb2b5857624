"""The audit trail: every vault request names tool, repository, node and command in its
User-Agent and carries an x-ms-client-request-id (read back from the emulator's request
log); keyvault.audit-log gets one JSON line per access, tied to those request ids, never a
value, and appends safely from concurrent processes."""

from __future__ import annotations

import json
import multiprocessing
import re
import subprocess
from pathlib import Path

import pytest
from bed import REF
from hgext3rd.keyvault import _native, audit
from hgserver import HG

pytestmark = pytest.mark.usefixtures("clean_faults")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pull_names_repo_node_and_command_in_user_agent_and_audit_log(bed, tmp_path):
    bed.provision()
    log = tmp_path / "audit.jsonl"
    client = bed.client(tmp_path, extra=f"[keyvault]\naudit-log = {log}\n")
    assert client.hg("clone", bed.server.repo_url(), "work").returncode == 0
    work = client.home / "work"
    node = client.hg("log", "-r", ".", "-T", "{node}", cwd=work).stdout
    assert re.fullmatch(r"[0-9a-f]{40}", node)
    before = len(bed.emulator.requests())

    pull = client.hg("pull", cwd=work)
    assert pull.returncode == 0, pull.output

    vault_requests = [r for r in bed.emulator.requests()[before:] if r["target"] == "vault"]
    assert vault_requests
    for r in vault_requests:
        assert f"(repo=work; node={node[:12]}; cmd=pull)" in r["user_agent"], r
        assert re.search(r"hg-keyvault/[\w.]+ mercurial/[\w.+]+", r["user_agent"])
        assert r["client_request_id"]
    # One id per call (the unauthenticated challenge probe and its authenticated retry are
    # one call); different calls, different ids.
    calls = {}
    for r in vault_requests:
        calls.setdefault(r["client_request_id"], set()).add((r["method"], r["path"]))
    assert all(len(paths) == 1 for paths in calls.values()), calls

    entry = [e for e in lines(log) if e["command"] == "pull"][-1]
    managed = bed.emulator.principal("managed")
    name = _native.secret_name(REF)
    assert entry["action"] == "read"
    assert entry["outcome"] == "ok"
    assert entry["group"] == "corp"
    assert entry["ref"] == REF
    assert entry["name"] == name
    assert entry["version"]
    assert entry["repo"] == str(work)
    assert entry["node"] == node
    assert entry["provider"] == "azure"
    assert entry["store"] == bed.emulator.vault_url
    assert entry["credential"] == "managed-identity"
    assert entry["object_id"] == managed["object_id"]
    assert entry["client_id"] == managed["client_id"]
    assert entry["tenant_id"] == bed.emulator.tenant_id
    assert entry["os_user"] and isinstance(entry["uid"], int)
    assert entry["time"].endswith("Z")
    # The line names the very request Key Vault logged for the read.
    [read] = [
        r
        for r in vault_requests
        if r["client_request_id"] == entry["request_id"]
        and r["method"] == "GET"
        and r["status"] == 200
    ]
    assert read["path"].startswith(f"/secrets/{name}")
    assert bed.server.password not in log.read_text()


def test_a_ci_job_is_named_in_user_agent_audit_log_and_hg_vault(bed, tmp_path):
    bed.provision()
    log = tmp_path / "audit.jsonl"
    client = bed.client(tmp_path, extra=f"[keyvault]\naudit-log = {log}\n")
    client.env.update(GITHUB_ACTIONS="true", GITHUB_RUN_ID="4242", GITHUB_JOB="build")
    before = len(bed.emulator.requests())
    result = client.hg("clone", bed.server.repo_url(), "work")
    assert result.returncode == 0, result.output

    requests = bed.emulator.requests()[before:]
    assert requests
    # Every request of the command, the identity endpoint's included, names the job.
    for r in requests:
        assert "; ci=github-actions:4242/build)" in r["user_agent"], r
    [entry] = [e for e in lines(log) if e["command"] == "clone"]
    assert entry["ci_job"] == "github-actions:4242/build"
    assert entry["link"] == "app-service"

    status = client.hg("vault", "-T", "json")
    [data] = json.loads(status.stdout)
    assert data["ci_job"] == "github-actions:4242/build"
    assert data["link"] == "app-service"
    assert data["via"] == "managed identity (App Service / Container Apps: IDENTITY_ENDPOINT)"
    plain = client.hg("vault").stdout
    assert (
        "via:        managed identity (App Service / Container Apps: IDENTITY_ENDPOINT)\n" in plain
    )
    assert "ci job:     github-actions:4242/build\n" in plain


def test_no_ci_job_outside_ci(bed, tmp_path):
    bed.provision()
    client = bed.client(tmp_path)
    for name in list(client.env):
        if name in (
            "GITHUB_ACTIONS",
            "GITHUB_RUN_ID",
            "TF_BUILD",
            "GITLAB_CI",
            "JENKINS_URL",
            "BUILD_TAG",
        ):
            del client.env[name]
    [data] = json.loads(client.hg("vault", "-T", "json").stdout)
    assert data["ci_job"] is None
    assert "ci job:" not in client.hg("vault").stdout


def test_a_refused_read_is_logged_with_the_refused_request_id(bed, tmp_path):
    bed.provision()
    log = tmp_path / "audit.jsonl"
    client = bed.client(tmp_path, principal="nobody", extra=f"[keyvault]\naudit-log = {log}\n")
    result = client.hg("clone", bed.server.repo_url(), "work")
    assert result.returncode == 255
    [entry] = lines(log)
    assert entry["outcome"] == "forbidden"
    assert entry["command"] == "clone"
    assert "Key Vault Secrets User" not in (entry["error"] or "")  # the message, not the hint
    assert entry["client_id"] == bed.emulator.principal("nobody")["client_id"]
    refused = [r for r in bed.emulator.requests() if r["client_request_id"] == entry["request_id"]]
    assert refused and refused[-1]["status"] == 403


def test_an_audit_log_that_cannot_be_written_stops_the_command(bed, tmp_path):
    bed.provision()
    log = tmp_path / "missing-dir" / "audit.jsonl"
    client = bed.client(tmp_path, extra=f"[keyvault]\naudit-log = {log}\n")
    result = client.hg("clone", bed.server.repo_url(), "work")
    assert result.returncode == 255
    assert "cannot append to the audit log" in result.stderr
    assert "keyvault.audit-log" in result.stderr
    assert not (client.home / "work").exists()


def test_concurrent_hg_processes_append_whole_lines(bed, tmp_path):
    bed.provision()
    log = tmp_path / "audit.jsonl"
    client = bed.client(tmp_path, extra=f"[keyvault]\naudit-log = {log}\n")
    procs = [
        subprocess.Popen(
            [HG, "vault", "-T", "json"],
            cwd=client.home,
            env=client.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(8)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    entries = lines(log)  # every line parses: none interleaved
    assert len(entries) == 8
    assert {e["pid"] for e in entries} == {p.pid for p in procs}
    assert all(e["action"] == "check" and e["outcome"] == "ok" for e in entries)


def _append_many(path: str, worker: int) -> None:
    for i in range(200):
        # Long lines (well over a page) are where unlocked writers interleave.
        audit.append(path, {"worker": worker, "i": i, "pad": "x" * 9000})


def test_append_never_interleaves_long_lines_from_many_processes(tmp_path):
    path = str(tmp_path / "audit.jsonl")
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_append_many, args=(path, w)) for w in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    entries = [json.loads(line) for line in Path(path).read_text().splitlines()]
    assert len(entries) == 6 * 200
    assert {(e["worker"], e["i"]) for e in entries} == {
        (w, i) for w in range(6) for i in range(200)
    }
    assert oct(Path(path).stat().st_mode & 0o777) == "0o600"
