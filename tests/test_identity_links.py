"""Every identity link of issue 12 end to end: real hg clones through the authenticated server,
the password coming from the emulator's vault, the identity from an emulated Azure host (IMDS
recognised by the SMBIOS asset tag, Arc, Cloud Shell, Azure ML, App Service over plain http) or
from a CI's own OIDC token (GitHub / Forgejo Actions, Azure Pipelines, GitLab / Heptapod), and
each refusal with its message. Every test runs in a network + mount namespace of its own
(tests/netns.py): the product's fixed IMDS address, SMBIOS file and Arc token directory are the
namespace's, and no packet to the metadata address ever leaves the machine's own namespace.

Each scenario also measures what the link costs, cold (the clone: no cached token) and warm (a
pull right after), in emulator requests and milliseconds; ``-s`` prints the table and it is
written to ``.work/reports/identity-links.txt``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
from bed import Result, start_bed
from netns import (
    ARC_TOKEN_DIR,
    AZURE_ASSET_TAG,
    IMDS_ADDRESS,
    ConnectionRecorder,
    run_isolated,
    unavailable_reason,
)
from servers.recordingproxy import RecordingProxy

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))

TAP = Path(__file__).with_name("proctap.py")
REPORT = Path(__file__).resolve().parent.parent / ".work" / "reports" / "identity-links.txt"
LISTENERS = [
    f"imds={IMDS_ADDRESS}:80",
    "arc=127.0.0.1:0",
    "cloudshell=127.0.0.1:0",
    "ml=127.0.0.1:0",
    "appservice=127.0.0.1:0",
]
# JWT headers start with {"typ" or {"alg": what any access or ID token looks like in a file.
JWT_PREFIXES = (b"eyJ0eXAi", b"eyJhbGci")
ID_TOKEN_ENV = "KEYVAULT_ID_TOKEN"
COSTS: dict[str, dict[str, Any]] = {}
# Pulls per measurement: cold ones with the token cache off, warm ones with it on. The requests
# per pull are exact with any count; the times are a median, indicative on a shared machine.
SAMPLES = 3


@dataclass
class Run:
    """What a scenario observed (plain data: it crosses the namespace boundary pickled)."""

    clone: Result
    # The same clone again, now with the token cached: the difference is the link's cost.
    warm_clone: Result | None = None
    pull: Result | None = None
    vault: Result | None = None
    cold: list[dict] = field(default_factory=list)
    warm: list[dict] = field(default_factory=list)
    # The requests of the pull and `hg vault` after the warm clone.
    later: list[dict] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    audit: list[dict] = field(default_factory=list)
    token_files: list[str] = field(default_factory=list)
    # Processes (argv, environment) seen by hooks while hg held its token, and where one leaked.
    tapped: int = 0
    token_in_processes: list[str] = field(default_factory=list)
    secret_hits: list[str] = field(default_factory=list)
    imds_connections: list = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    # {"cold"|"warm": (median ms, requests per pull)} over SAMPLES pulls.
    pulls: dict[str, tuple[float, float]] = field(default_factory=dict)

    def vault_json(self) -> dict:
        assert self.vault is not None and self.vault.returncode == 0, self.vault
        data = json.loads(self.vault.stdout)
        return data[0] if isinstance(data, list) else data


def _files_with(roots: list[Path], needles: tuple[bytes, ...]) -> list[str]:
    hits = []
    for root in roots:
        for path in root.rglob("*") if root.exists() else []:
            if path.is_file() and not path.is_symlink():
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                if any(n in data for n in needles):
                    hits.append(str(path))
    return hits


def _scenario(
    root: Path,
    identity: Callable[[Any], dict[str, str]],
    *,
    setup: Callable[[Any], None] | None = None,
    extra: str = "",
    expect_clone: bool = True,
    record_imds: bool = False,
    secrets: Callable[[Any], list[bytes]] | None = None,
    measure: bool = False,
) -> Run:
    """Inside the namespace: bed, provision, clone (cold), pull (warm), hg vault -T json; with
    ``measure``, also the pulls of the cost table (``_cost``)."""
    recorder = ConnectionRecorder() if record_imds else None
    listeners = [x for x in LISTENERS if not (record_imds and x.startswith("imds="))]
    bed = start_bed(
        root, emulator_options={"http_listen": listeners, "arc_token_dir": ARC_TOKEN_DIR}
    )
    try:
        bed.provision()
        emu = bed.emulator
        if setup:
            setup(emu)
        audit = root / "audit.jsonl"
        client_root = root / "client"
        tap_out = root / "tap.jsonl"
        tap = f"{sys.executable} {TAP} {tap_out}"
        given = identity(emu)
        client = bed.client(
            client_root,
            identity=given,
            extra=f"[hooks]\nchangegroup.tap = {tap}\npost-pull.tap = {tap}\n"
            f"[keyvault]\naudit-log = {audit}\n" + extra,
        )
        tmp = client_root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        client.env.update(
            TMPDIR=str(tmp), KEYVAULT_TAP_ROOT=str(os.getpid()), KEYVAULT_TAP_MARK=root.name
        )
        before = len(emu.requests())
        clone = client.hg("clone", bed.server.repo_url(), "work")
        run = Run(clone=clone, cold=emu.requests()[before:])
        if record_imds:
            # The measure: `hg pull` of a vault group in an existing repository.
            assert client.hg("init", "fresh").returncode == 0
            run.extra["pull"] = client.hg("pull", bed.server.repo_url(), cwd=client.home / "fresh")
        if clone.returncode == 0 and expect_clone:
            before = len(emu.requests())
            run.warm_clone = client.hg("clone", bed.server.repo_url(), "work2")
            run.warm = emu.requests()[before:]
            before = len(emu.requests())
            run.pull = client.hg("pull", cwd=client.home / "work")
            run.vault = client.hg("vault", "-T", "json")
            run.later = emu.requests()[before:]
            run.counts = emu.state()["counts"]
            if measure:
                run.pulls = _measure_pulls(client, emu)
        else:
            run.counts = emu.state()["counts"]
        if audit.exists():
            run.audit = [json.loads(line) for line in audit.read_text().splitlines() if line]
        run.token_files = _files_with([client_root, Path("/var/opt")], JWT_PREFIXES)
        outputs = "".join(client.outputs).encode()
        needles = tuple(secrets(emu)) if secrets else ()
        run.secret_hits = [n.decode() for n in needles if n in outputs]
        run.secret_hits += _files_with([client_root], needles) if needles else []
        if any(p in outputs for p in JWT_PREFIXES):
            run.token_files.append("<hg output>")
        if tap_out.exists():
            for line in tap_out.read_text().splitlines():
                for proc in json.loads(line)["processes"]:
                    run.tapped += 1
                    # What the host or CI itself put into hg's environment is not a leak.
                    env = {k: v for k, v in proc["environ"].items() if k not in given}
                    text = " ".join(proc["cmdline"] + list(env.values())).encode()
                    if any(n in text for n in JWT_PREFIXES + needles):
                        run.token_in_processes.append(f"{proc['pid']} {proc['comm']}")
        return run
    finally:
        bed.stop()
        if recorder is not None:
            run_connections = recorder.stop()
            if "run" in locals():
                run.imds_connections = run_connections


def _measure_pulls(client, emu) -> dict[str, tuple[float, float]]:
    """Median time and requests of a pull that must get a token (cache off) and of one that
    finds it cached, SAMPLES each: what the link costs a command, cold and warm."""
    result = {}
    for kind, cache in (("cold", "false"), ("warm", "true")):
        if kind == "warm":  # the cold pulls cached nothing: one pull to fill the cache
            client.hg("pull", cwd=client.home / "work")
        times, before = [], len(emu.requests())
        for _ in range(SAMPLES):
            pull = client.hg(
                "pull", "--config", f"keyvault.token-cache={cache}", cwd=client.home / "work"
            )
            assert pull.returncode == 0, pull.output
            times.append(pull.seconds * 1000)
        requests = (len(emu.requests()) - before) / SAMPLES
        result[kind] = (sorted(times)[SAMPLES // 2], requests)
    return result


def _cost(name: str, run: Run) -> None:
    def summary(requests: list[dict], result: Result | None) -> str:
        targets: dict[str, int] = {}
        for r in requests:
            key = r.get("listener") or r["target"]
            targets[key] = targets.get(key, 0) + 1
        detail = ", ".join(f"{k} {v}" for k, v in sorted(targets.items()))
        ms = f"{result.seconds * 1000:.0f} ms" if result else "-"
        return f"{len(requests)} ({detail}); {ms}"

    assert run.pulls, "a scenario in the cost table runs with measure=True"
    (cold_ms, cold_n), (warm_ms, warm_n) = run.pulls["cold"], run.pulls["warm"]
    COSTS[name] = {
        "cold": summary(run.cold, run.clone),
        "warm": summary(run.warm, run.warm_clone),
        "pulls": f"{cold_n:g} req, {cold_ms:.0f} ms | {warm_n:g} req, {warm_ms:.0f} ms | "
        f"{cold_ms - warm_ms:+.0f} ms",
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"| link | cold clone: requests; time | warm clone: requests; time | pull, median of "
        f"{SAMPLES}, token cache off | pull, token cache on | difference |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {k} | {v['cold']} | {v['warm']} | {v['pulls']} |" for k, v in sorted(COSTS.items())
    ]
    REPORT.write_text("\n".join(lines) + "\n")
    c = COSTS[name]
    print(f"\n{name}: cold {c['cold']}; warm {c['warm']}; pulls cold | warm | diff: {c['pulls']}")


def _assert_linked(run: Run, link_id: str) -> dict:
    assert run.clone.returncode == 0, run.clone.output
    assert run.warm_clone is not None and run.warm_clone.returncode == 0, run.warm_clone
    assert run.pull is not None and run.pull.returncode == 0, run.pull
    status = run.vault_json()
    assert status.get("link") == link_id, status
    assert not run.token_files, f"a token was written: {run.token_files}"
    assert run.tapped > 0 and not run.token_in_processes, run.token_in_processes
    assert not run.secret_hits, run.secret_hits
    assert any(r["target"] == "vault" and r["status"] == 200 for r in run.cold)
    return status


def _identity_requests(run: Run, listener: str) -> list[dict]:
    return [r for r in run.cold if r.get("listener") == listener]


# --- Azure hosts ------------------------------------------------------------------------------


def test_azure_vm_is_recognised_by_its_asset_tag_and_uses_imds(tmp_path):
    run = run_isolated(_scenario, tmp_path, lambda emu: {}, asset_tag=AZURE_ASSET_TAG, measure=True)
    status = _assert_linked(run, "azure-vm")
    assert "SMBIOS asset tag" in run.vault.stdout, status
    imds = _identity_requests(run, "imds")
    assert [r["status"] for r in imds] == [200], imds
    assert "client_id" not in imds[0]["query"]
    assert not any(r.get("listener") == "imds" for r in run.warm)
    _cost("azure-vm (IMDS)", run)


def test_azure_vm_user_assigned_identity_is_selected_by_azure_client_id(tmp_path):
    def identity(emu):
        return {"AZURE_CLIENT_ID": emu.principal("user-assigned")["client_id"]}

    run = run_isolated(_scenario, tmp_path, identity, asset_tag=AZURE_ASSET_TAG)
    _assert_linked(run, "azure-vm")
    imds = _identity_requests(run, "imds")
    assert imds and "client_id=0f1ce000-0000-4000-8000-000000000005" in imds[0]["query"], imds


def test_azure_arc_answers_the_challenge_with_the_agents_key_file(tmp_path):
    def keys(emu):
        return [p.read_bytes() for p in Path(ARC_TOKEN_DIR).glob("*.key")]

    run = run_isolated(
        _scenario, tmp_path, lambda emu: emu.identity_env("arc"), secrets=keys, measure=True
    )
    _assert_linked(run, "azure-arc")
    arc = _identity_requests(run, "arc")
    assert [r["status"] for r in arc] == [401, 200], arc
    # Each key was presented once, right after its challenge.
    every = run.cold + run.warm + run.later
    answered = [r for r in every if r.get("listener") == "arc" and r["status"] == 200]
    assert run.counts.get("arc_authorized") == len(answered), (run.counts, every)
    _cost("azure-arc", run)


ARC_REFUSALS = {
    "outside": "is not in the agent's token directory",
    "not-key": "does not end in .key",
    "too-big": "is too large",
}


@pytest.mark.parametrize("realm", sorted(ARC_REFUSALS))
def test_azure_arc_refuses_a_key_file_it_must_not_read(tmp_path, realm):
    run = run_isolated(
        _scenario,
        tmp_path,
        lambda emu: emu.identity_env("arc"),
        setup=lambda emu: emu.set_arc_realm(realm),
        expect_clone=False,
    )
    assert run.clone.returncode != 0
    out = run.clone.output
    # The documented line (docs/troubleshooting.md), naming the file and why.
    assert "  azure-arc: failed: Azure Arc's challenge named the key file " in out, out
    assert f", which {ARC_REFUSALS[realm]}; refused" in out
    assert "Traceback" not in out
    # The key (whatever the file held) was never presented to the endpoint.
    assert "arc_authorized" not in run.counts, run.counts
    arc = _identity_requests(run, "arc")
    assert [r["status"] for r in arc] == [401], arc


def test_cloud_shell_posts_to_msi_endpoint(tmp_path):
    run = run_isolated(
        _scenario, tmp_path, lambda emu: emu.identity_env("cloudshell"), measure=True
    )
    _assert_linked(run, "msi-endpoint")
    requests = _identity_requests(run, "cloudshell")
    assert [(r["method"], r["status"]) for r in requests] == [("POST", 200)], requests
    _cost("msi-endpoint (Cloud Shell)", run)


def test_azure_ml_sends_its_secret_to_msi_endpoint(tmp_path):
    run = run_isolated(
        _scenario,
        tmp_path,
        lambda emu: emu.identity_env("ml"),
        secrets=lambda emu: [emu.msi_secret.encode()],
        measure=True,
    )
    _assert_linked(run, "msi-endpoint")
    requests = _identity_requests(run, "ml")
    assert [(r["method"], r["status"]) for r in requests] == [("GET", 200)], requests
    assert "api-version=2017-09-01" in requests[0]["query"]
    _cost("msi-endpoint (Azure ML)", run)


def test_app_service_plain_http_localhost_endpoint(tmp_path):
    run = run_isolated(
        _scenario,
        tmp_path,
        lambda emu: emu.identity_env("appservice"),
        secrets=lambda emu: [emu.identity_header.encode()],
        measure=True,
    )
    _assert_linked(run, "app-service")
    requests = _identity_requests(run, "appservice")
    assert [r["status"] for r in requests] == [200], requests
    _cost("app-service (http://127.0.0.1)", run)


def test_app_service_endpoint_is_asked_directly_not_through_http_proxy(tmp_path):
    """HTTP_PROXY set: the plain-http identity endpoint of this host gets the request (and its
    secret header) directly, as the SDK's own managed identity client does; the proxy nothing."""

    def scenario(root):
        proxy = RecordingProxy()
        try:
            run = _scenario(root, lambda emu: {**emu.identity_env("appservice"), **proxy.env()})
        finally:
            proxy.stop()
        run.extra["proxied"] = proxy.connections
        return run

    run = run_isolated(scenario, tmp_path)
    assert run.extra["proxied"] == [], run.extra["proxied"]
    _assert_linked(run, "app-service")
    assert [r["status"] for r in _identity_requests(run, "appservice")] == [200]


def test_service_fabric_is_refused_by_name_and_sent_nothing(tmp_path):
    def scenario(root):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        probe.listen(4)
        probe.setblocking(False)
        port = probe.getsockname()[1]

        def identity(emu):
            return {
                "IDENTITY_ENDPOINT": f"https://127.0.0.1:{port}/metadata/identity/oauth2/token",
                "IDENTITY_HEADER": "sf-header-secret-value",
                "IDENTITY_SERVER_THUMBPRINT": "0A1B2C3D4E5F60718293A4B5C6D7E8F901234567",
                "IDENTITY_API_VERSION": "2019-07-01-preview",
            }

        run = _scenario(root, identity, expect_clone=False)
        try:
            probe.accept()
            run.extra["connections"] = 1
        except BlockingIOError:
            run.extra["connections"] = 0
        probe.close()
        return run

    run = run_isolated(scenario, tmp_path)
    assert run.clone.returncode != 0
    assert (
        "  service-fabric: unsupported: IDENTITY_SERVER_THUMBPRINT is set: this is a Service "
        "Fabric managed identity, which hg-keyvault does not support" in run.clone.output
    ), run.clone.output
    assert "sf-header-secret-value" not in run.clone.output
    assert run.extra["connections"] == 0


# --- CI OIDC ----------------------------------------------------------------------------------


def _ci_identity(ci: str, principal: str = "reader", **more: str):
    def identity(emu):
        env = dict(emu.ci_env(ci))
        ids = {"client": emu.principal(principal)["client_id"], "tenant": emu.tenant_id}
        if ci == "pipelines":
            env["AZURESUBSCRIPTION_CLIENT_ID"] = ids["client"]
            env["AZURESUBSCRIPTION_TENANT_ID"] = ids["tenant"]
        else:
            env["AZURE_CLIENT_ID"] = ids["client"]
            env["AZURE_TENANT_ID"] = ids["tenant"]
        env.update(more)
        return env

    return identity


@pytest.mark.parametrize("forge", ["github", "forgejo"])
def test_actions_oidc_token_is_exchanged_without_a_step(tmp_path, forge):
    more = {"FORGEJO_ACTIONS": "true", "GITHUB_ACTIONS": "true"} if forge == "forgejo" else {}
    run = run_isolated(
        _scenario,
        tmp_path,
        _ci_identity("github", **more),
        setup=lambda emu: emu.federate("reader", "github"),
        secrets=lambda emu: [emu.oidc["github"]["request_token"].encode()],
        measure=True,
    )
    _assert_linked(run, "github-actions")
    oidc = [r for r in run.cold if r["target"] == "oidc"]
    assert [(r["method"], r["status"]) for r in oidc] == [("GET", 200)], oidc
    assert "audience=api%3A%2F%2FAzureADTokenExchange" in oidc[0]["query"] or (
        "audience=api://AzureADTokenExchange" in oidc[0]["query"]
    )
    token = [r for r in run.cold if r["target"] == "token"]
    assert [r["status"] for r in token] == [200], token
    # The run and job name every vault request and the audit line.
    vault = [r for r in run.cold + run.warm + run.later if r["target"] == "vault"]
    assert all("7301234567" in (r["user_agent"] or "") for r in vault), vault
    assert run.audit and all("7301234567" in (e.get("ci_job") or "") for e in run.audit)
    _cost(f"{forge}-actions", run)


def test_actions_token_of_another_branch_is_refused_with_aadsts70021(tmp_path):
    def setup(emu):
        emu.federate("reader", "github")
        emu.set_oidc_claims("github", {"sub": "repo:hg-keyvault/ci:ref:refs/heads/feature"})

    run = run_isolated(_scenario, tmp_path, _ci_identity("github"), setup=setup, expect_clone=False)
    assert run.clone.returncode != 0
    out = run.clone.output
    # The documented line (docs/troubleshooting.md) with Entra's own words.
    assert (
        "  github-actions: failed: HTTP 400 invalid_request: AADSTS70021: No matching federated "
        "identity record found for presented assertion." in out
    ), out
    assert "Assertion Subject: 'repo:hg-keyvault/ci:ref:refs/heads/feature'" in out
    assert "Traceback" not in out
    assert not run.token_files


def test_azure_pipelines_oidc_token_is_exchanged(tmp_path):
    run = run_isolated(
        _scenario,
        tmp_path,
        _ci_identity("pipelines"),
        setup=lambda emu: emu.federate("reader", "pipelines"),
        secrets=lambda emu: [emu.oidc["pipelines"]["access_token"].encode()],
        measure=True,
    )
    _assert_linked(run, "azure-pipelines")
    oidc = [r for r in run.cold if r["target"] == "oidc"]
    assert [(r["method"], r["status"]) for r in oidc] == [("POST", 200)], oidc
    assert "serviceConnectionId=" in oidc[0]["query"]
    assert run.audit and all("4711" in (e.get("ci_job") or "") for e in run.audit)
    _cost("azure-pipelines", run)


def test_gitlab_id_token_from_the_named_variable_is_the_assertion(tmp_path):
    def identity(emu):
        return {
            "GITLAB_CI": "true",
            "CI_JOB_ID": "987654",
            "CI_SERVER_NAME": "Heptapod",
            "AZURE_CLIENT_ID": emu.principal("reader")["client_id"],
            "AZURE_TENANT_ID": emu.tenant_id,
            ID_TOKEN_ENV: emu.mint_oidc("gitlab"),
        }

    run = run_isolated(
        _scenario,
        tmp_path,
        identity,
        setup=lambda emu: emu.federate("reader", "gitlab"),
        extra=f"id-token-env = {ID_TOKEN_ENV}\n",
        measure=True,
    )
    _assert_linked(run, "gitlab-ci")
    assert not [r for r in run.cold if r["target"] == "oidc"]
    assert run.audit and all("987654" in (e.get("ci_job") or "") for e in run.audit)
    _cost("gitlab-ci (Heptapod)", run)


# --- Off Azure --------------------------------------------------------------------------------


@pytest.mark.parametrize("asset_tag", [None, "Default string"], ids=["no-dmi", "other-tag"])
def test_off_azure_without_identity_fails_at_once_and_sends_imds_nothing(tmp_path, asset_tag):
    run = run_isolated(
        _scenario,
        tmp_path,
        lambda emu: {},
        expect_clone=False,
        record_imds=True,
        asset_tag=asset_tag,
    )
    assert run.clone.returncode != 0
    out = run.clone.output
    pull = run.extra["pull"]
    assert pull.returncode != 0 and "no Azure credential could get a token" in pull.output
    assert run.imds_connections == [], run.imds_connections
    for link in ("environment", "github-actions", "azure-pipelines", "app-service", "azure-arc"):
        assert f"  {link}: skipped: " in out, out
    assert "  azure-vm: skipped: " in out, out
    assert "Traceback" not in out
    assert not [r for r in run.cold if r["target"] in ("token", "identity")], run.cold
    line = (
        f"off Azure ({asset_tag or 'no SMBIOS'}): clone failed in "
        f"{run.clone.seconds * 1000:.0f} ms, pull in {pull.seconds * 1000:.0f} ms; "
        f"connections to {IMDS_ADDRESS}: 0"
    )
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    with (REPORT.parent / "off-azure.txt").open("a") as f:
        f.write(line + "\n")
    print("\n" + line)


def test_jenkins_build_tag_names_the_job_in_user_agent_and_audit_line(tmp_path):
    def identity(emu):
        officer = emu.principal("officer")
        return {
            "AZURE_TENANT_ID": emu.tenant_id,
            "AZURE_CLIENT_ID": officer["client_id"],
            "AZURE_CLIENT_SECRET": officer["client_secret"],
            "JENKINS_URL": "https://jenkins.example.com/",
            "BUILD_TAG": "jenkins-hg-keyvault-42",
        }

    run = run_isolated(_scenario, tmp_path, identity)
    _assert_linked(run, "environment")
    vault = [r for r in run.cold + run.warm + run.later if r["target"] == "vault"]
    assert all("jenkins-hg-keyvault-42" in (r["user_agent"] or "") for r in vault), vault
    assert run.audit and all("jenkins-hg-keyvault-42" in (e.get("ci_job") or "") for e in run.audit)


@pytest.mark.parametrize(("link", "target"), [("azure-vm", "identity"), ("github-actions", "oidc")])
def test_a_hanging_identity_endpoint_is_bounded_by_keyvault_timeout(tmp_path, link, target):
    def identity(emu):
        return {} if link == "azure-vm" else _ci_identity("github")(emu)

    def setup(emu):
        emu.federate("reader", "github")
        emu.set_faults([{"target": target, "kind": "hang"}])

    run = run_isolated(
        _scenario,
        tmp_path,
        identity,
        setup=setup,
        extra="timeout = 2\n",
        expect_clone=False,
        asset_tag=AZURE_ASSET_TAG,
    )
    assert run.clone.returncode != 0
    out = run.clone.output
    url = f"http://{IMDS_ADDRESS}/metadata/identity/oauth2/token"
    if link == "github-actions":
        url = "/github/idtoken"
    assert f"{url} within 2 s (keyvault.timeout)" in out, out
    assert "Traceback" not in out
    print(f"\n{link} hanging: clone gave up after {run.clone.seconds * 1000:.0f} ms")
