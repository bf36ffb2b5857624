"""Every AWS identity source end to end: a real `hg clone` (cold) and `hg pull` (warm) through
the authenticated nginx + hgweb server with `[keyvault] provider = aws`, the password in moto's
Secrets Manager, the identity from the environment, the shared files, a credential process,
web identity (EKS IRSA, GitHub Actions), the container endpoint (ECS, EKS Pod Identity) or
IMDSv2 (endpoint override here; the real metadata address only inside a network namespace of
the test's own, tests/test_aws_hosts.py). `hg vault -T json` names the source and the caller
ARN sts:GetCallerIdentity gave; moto's request log proves what each command sent: the warm
pull exactly one GetSecretValue, the cold clone the credential source plus one.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from awsbed import fake_jwt, start_aws_bed, unique_ref
from bed import Client, Result, needles_in_files
from hgserver import HG
from servers.ecscreds import ContainerCredentials
from servers.imdsv2 import InstanceMetadata
from servers.recordingproxy import RecordingProxy

GET = "secretsmanager.GetSecretValue"
WEB_IDENTITY = "sts.AssumeRoleWithWebIdentity"


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    world = start_aws_bed(tmp_path_factory.mktemp("awsid"))
    try:
        yield world
    finally:
        world.stop()


@dataclass
class Run:
    clone: Result
    pull: Result | None = None
    vault: Result | None = None
    cold: list[str] = field(default_factory=list)
    warm: list[str] = field(default_factory=list)
    cold_requests: list = field(default_factory=list)
    # Requests to the credential source (container endpoint, IMDS) of the clone and of the pull.
    source_cold: int = 0
    source_warm: int = 0

    def status(self) -> dict:
        assert self.vault is not None and self.vault.returncode == 0, self.vault
        data = json.loads(self.vault.stdout)
        return data[0] if isinstance(data, list) else data


def _run(aws, client: Client, source_log: list | None = None) -> Run:
    """Clone cold, pull warm, then `hg vault -T json`; moto's calls of the first two (and the
    number of requests the credential source whose log is ``source_log`` got in each)."""
    seen = len(source_log) if source_log is not None else 0
    mark = aws.moto.mark()
    clone = client.hg("clone", aws.server.repo_url(), "work")
    run = Run(clone=clone, cold=aws.moto.calls(mark), cold_requests=aws.moto.requests(mark))
    if source_log is not None:
        run.source_cold, seen = len(source_log) - seen, len(source_log)
    if clone.returncode == 0:
        mark = aws.moto.mark()
        run.pull = client.hg("pull", cwd=client.home / "work")
        run.warm = aws.moto.calls(mark)
        if source_log is not None:
            run.source_warm = len(source_log) - seen
        run.vault = client.hg("vault", "-T", "json")
    return run


def _assert_served(
    run: Run, *, source: str, caller_arn: str, cold: list[str], via: str | None = None
) -> dict:
    """``source`` is the chain's source (`identity_source`), ``via`` how `hg vault` words it
    (default: the same); a profile's name is reported only when the profile answered."""
    assert run.clone.returncode == 0, run.clone.output
    assert run.pull is not None and run.pull.returncode == 0, run.pull.output
    assert run.cold == cold, run.cold
    # Warm: the temporary keys come from the cross-process cache; one request in all.
    assert run.warm == [GET], run.warm
    status = run.status()
    assert status["provider"] == "aws", status
    assert status["region"] == "eu-west-1", status
    assert status["identity_source"] == source, status
    assert status["via"] == (via or source), status
    if source != "profile":
        assert "profile" not in status, status
    assert status["caller_arn"] == caller_arn, status
    return status


def _no_leak(client: Client, needles: list[bytes]) -> None:
    """None of ``needles`` in any output of the client or any file under its home and temp."""
    outputs = "".join(client.outputs).encode()
    assert not [n for n in needles if n in outputs]
    found, _ = needles_in_files(
        [client.home, client.root / "tmp"], {f"needle {i}": n for i, n in enumerate(needles)}
    )
    assert not found


def _write_private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return path


def test_environment_keys_with_a_session_token(aws, tmp_path):
    aws.put(ref := unique_ref("env"))
    env, caller = aws.role_session_env("hg-env-role", "hg-env-session")
    client = aws.client(tmp_path, env, ref=ref)
    run = _run(aws, client)
    _assert_served(run, source="environment", caller_arn=caller, cold=[GET])
    # Signed with the session's key and carrying its token.
    [request] = run.cold_requests
    assert request.access_key_id == env["AWS_ACCESS_KEY_ID"]
    assert request.session_token == env["AWS_SESSION_TOKEN"]
    assert "provider:   aws" in client.hg("vault").stdout
    _no_leak(client, [env["AWS_SECRET_ACCESS_KEY"].encode(), env["AWS_SESSION_TOKEN"].encode(),
                      aws.server.password.encode()])  # fmt: skip


@pytest.mark.parametrize("how", ["AWS_PROFILE", "keyvault.aws-profile"])
def test_shared_credentials_file_profile(aws, tmp_path, how):
    aws.put(ref := unique_ref("profile"))
    user = aws.moto.create_user("hg-profile-" + ("env" if how == "AWS_PROFILE" else "hgrc"))
    creds = tmp_path / "aws" / "credentials"
    creds.parent.mkdir(parents=True)
    _write_private(
        creds,
        "[default]\naws_access_key_id = AKIAWRONGDEFAULT0000\naws_secret_access_key = nope\n"
        f"[ci]\naws_access_key_id = {user['aws_access_key_id']}\n"
        f"aws_secret_access_key = {user['aws_secret_access_key']}\n",
    )
    identity = {"AWS_PROFILE": "ci"} if how == "AWS_PROFILE" else {}
    extra = "[keyvault]\naws-profile = ci\n" if how != "AWS_PROFILE" else ""
    client = aws.client(tmp_path, identity, ref=ref, extra=extra)
    run = _run(aws, client)
    status = _assert_served(
        run, source="profile", via="profile ci", caller_arn=user["arn"], cold=[GET]
    )
    assert status["profile"] == "ci", status
    assert run.cold_requests[0].access_key_id == user["aws_access_key_id"]
    _no_leak(client, [user["aws_secret_access_key"].encode()])


def test_config_profile_with_credential_process(aws, tmp_path):
    aws.put(ref := unique_ref("process"))
    role = aws.moto.create_role("hg-process-role")
    keys = aws.moto.assume_role(role, "hg-process")
    (tmp_path / "aws").mkdir()
    # The helper prints the documented Version 1 JSON (AWS CLI "Sourcing credentials with an
    # external process"); its keys live in a 0600 file as a real helper's store would.
    store = _write_private(tmp_path / "aws" / "store.json", json.dumps({
        "Version": 1, "AccessKeyId": keys["AccessKeyId"],
        "SecretAccessKey": keys["SecretAccessKey"], "SessionToken": keys["SessionToken"],
        "Expiration": keys["Expiration"],
    }))  # fmt: skip
    helper = tmp_path / "aws" / "helper.py"
    helper.write_text(f"import sys\nsys.stdout.write(open({str(store)!r}).read())\n")
    _write_private(
        tmp_path / "aws" / "config",
        f"[profile build]\ncredential_process = {sys.executable} {helper}\n",
    )
    client = aws.client(tmp_path, {"AWS_PROFILE": "build"}, ref=ref)
    run = _run(aws, client)
    _assert_served(
        run,
        source="profile",
        via="profile build (credential-process)",
        caller_arn=aws.moto.assumed_role_arn(role, "hg-process"),
        cold=[GET],
    )
    _no_leak(client, [keys["SecretAccessKey"].encode(), keys["SessionToken"].encode()])


def test_profile_with_role_arn_and_web_identity_token_file(aws, tmp_path):
    aws.put(ref := unique_ref("irsa-profile"))
    role = aws.moto.create_role("hg-irsa-profile-role")
    token = fake_jwt("system:serviceaccount:ci:hg")
    token_file = _write_private(tmp_path / "token", token)
    (tmp_path / "aws").mkdir()
    _write_private(
        tmp_path / "aws" / "config",
        f"[profile irsa]\nrole_arn = {role}\nweb_identity_token_file = {token_file}\n"
        "role_session_name = hg-irsa-profile\n",
    )
    client = aws.client(tmp_path, {"AWS_PROFILE": "irsa"}, ref=ref)
    run = _run(aws, client)
    _assert_served(
        run,
        source="profile",
        via="profile irsa (web-identity)",
        caller_arn=aws.moto.assumed_role_arn(role, "hg-irsa-profile"),
        cold=[WEB_IDENTITY, GET],
    )
    # AssumeRoleWithWebIdentity is unsigned (the token is the credential).
    assert run.cold_requests[0].access_key_id is None
    _no_leak(client, [token.encode(), token.rsplit(".", 1)[1].encode()])


@pytest.mark.parametrize("ci", ["eks-irsa", "github-actions"])
def test_web_identity_from_the_environment(aws, tmp_path, ci):
    aws.put(ref := unique_ref(f"web-{ci}"))
    role = aws.moto.create_role(f"hg-{ci}-role")
    token = fake_jwt("repo:hg-keyvault/ci:ref:refs/heads/main")
    token_file = _write_private(tmp_path / "token", token)
    identity = {"AWS_ROLE_ARN": role, "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file)}
    if ci == "github-actions":
        # aws-actions/configure-aws-credentials leaves these; the session name is the runner's.
        identity["AWS_ROLE_SESSION_NAME"] = "GitHubActions"
        identity["GITHUB_ACTIONS"] = "true"
    client = aws.client(tmp_path, identity, ref=ref)
    run = _run(aws, client)
    assert run.clone.returncode == 0, run.clone.output
    status = run.status()
    assert (status["identity_source"], status["via"]) == ("web-identity", "web-identity"), status
    if ci == "github-actions":
        assert status["caller_arn"] == aws.moto.assumed_role_arn(role, "GitHubActions")
    else:
        assert status["caller_arn"].startswith(aws.moto.assumed_role_arn(role, "")), status
    assert run.cold == [WEB_IDENTITY, GET], run.cold
    assert run.warm == [GET], run.warm
    _no_leak(client, [token.encode(), token.rsplit(".", 1)[1].encode()])


def test_concurrent_cold_processes_assume_the_role_once(aws, tmp_path):
    """Eight CI steps starting together with nothing cached: one process calls STS under the
    cross-process fetch lock, the others find its credentials in the kernel keyring."""
    aws.put(ref := unique_ref("web-together"))
    role = aws.moto.create_role("hg-together-role")
    token_file = _write_private(tmp_path / "token", fake_jwt("together"))
    identity = {"AWS_ROLE_ARN": role, "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file)}
    client = aws.client(tmp_path, identity, ref=ref)
    assert client.hg("clone", aws.server.repo_url(), "work").returncode == 0
    # A new token (as the platform hands out): the cache is keyed by its digest, so cold again.
    _write_private(token_file, token := fake_jwt("together"))
    mark = aws.moto.mark()
    procs = [
        subprocess.Popen(
            [HG, "pull"],
            cwd=client.home / "work",
            env=client.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(8)
    ]
    outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    calls = aws.moto.calls(mark)
    assert calls.count(WEB_IDENTITY) == 1, calls
    assert calls.count(GET) == 8, calls
    assert not [o for o in outputs if token in o]


@pytest.mark.parametrize("token_from", ["variable", "file"], ids=["ecs", "eks-pod-identity"])
def test_container_credentials_endpoint(aws, tmp_path, token_from):
    aws.put(ref := unique_ref(f"ecs-{token_from}"))
    ecs = ContainerCredentials(aws.moto, aws.moto.create_role(f"hg-task-role-{token_from}"))
    try:
        token_file = None
        if token_from == "file":
            token_file = str(_write_private(tmp_path / "pod-identity-token", ecs.token))
        client = aws.client(tmp_path, ecs.env(token_file=token_file), ref=ref)
        run = _run(aws, client, ecs.http.log)
        _assert_served(run, source="container", caller_arn=ecs.caller_arn, cold=[GET])
        # One GET with the right token for the cold clone; the warm pull used the cached keys.
        assert (run.source_cold, run.source_warm) == (1, 0), ecs.http.log
        log = ecs.http.log
        assert [(r.method, r.status) for r in log[:1]] == [("GET", 200)], log
        assert all(r.headers.get("authorization") == ecs.token for r in log)
        _no_leak(client, ecs.needles())
    finally:
        ecs.stop()


def test_container_credentials_bypass_the_environment_proxy(aws, tmp_path):
    """HTTP_PROXY set (a CI runner behind a proxy): the container endpoint is asked directly, so
    its token and the keys it returns never reach the proxy in plain http. (Only the http
    proxy: moto is https and, as STS and Secrets Manager, would rightly go through ALL_PROXY.)"""
    aws.put(ref := unique_ref("ecs-proxy"))
    ecs = ContainerCredentials(aws.moto, aws.moto.create_role("hg-task-role-proxy"))
    proxy = RecordingProxy()
    try:
        identity = {**ecs.env(), **proxy.env()}
        client = aws.client(tmp_path, identity, ref=ref)
        run = _run(aws, client, ecs.http.log)
        assert proxy.connections == [], proxy.connections
        _assert_served(run, source="container", caller_arn=ecs.caller_arn, cold=[GET])
        assert run.source_cold == 1, ecs.http.log
    finally:
        proxy.stop()
        ecs.stop()


def test_instance_profile_over_imdsv2_at_an_endpoint_override(aws, tmp_path):
    aws.put(ref := unique_ref("imds"))
    imds = InstanceMetadata(aws.moto, aws.moto.create_role("hg-runner-instance-role"))
    try:
        identity = {
            "AWS_EC2_METADATA_DISABLED": None,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.endpoint,
        }
        client = aws.client(tmp_path, identity, ref=ref)
        run = _run(aws, client, imds.http.log)
        _assert_served(run, source="instance-profile", caller_arn=imds.caller_arn, cold=[GET])
        # The warm pull asked IMDS nothing: the instance's keys came from the cache.
        assert run.source_warm == 0, imds.requests()
        calls = imds.requests()[: run.source_cold]
        # IMDSv2: the session token first, then the role's name and its keys, each with it.
        assert calls[0] == ("PUT", "/latest/api/token", 200), calls
        creds = "/latest/meta-data/iam/security-credentials/"
        assert ("GET", creds, 200) in calls, calls
        assert ("GET", creds + imds.role_name, 200) in calls, calls
        assert not [c for c in calls if c[2] == 401], calls
        assert all(
            r.headers.get("x-aws-ec2-metadata-token") in imds.tokens
            for r in imds.http.log
            if r.method == "GET"
        )
        _no_leak(client, imds.needles())
    finally:
        imds.stop()


def test_environment_keys_set_after_a_cached_instance_role_win(aws, tmp_path):
    """Step 1 of a CI job on EC2 caches the instance role's keys; step 2 exports keys of its
    own: the chain's order (environment first) holds, the cached instance role is not used."""
    aws.put(ref := unique_ref("imds-then-env"))
    imds = InstanceMetadata(aws.moto, aws.moto.create_role("hg-step1-instance-role"))
    try:
        identity = {
            "AWS_EC2_METADATA_DISABLED": None,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.endpoint,
        }
        client = aws.client(tmp_path, identity, ref=ref)
        assert client.hg("clone", aws.server.repo_url(), "work").returncode == 0
        keys, caller = aws.role_session_env("hg-step2-env-role", "hg-step2-session")
        client.env.update(keys)
        mark = aws.moto.mark()
        pull = client.hg("pull", cwd=client.home / "work")
        assert pull.returncode == 0, pull.output
        requests = aws.moto.requests(mark)
        assert [r.access_key_id for r in requests] == [keys["AWS_ACCESS_KEY_ID"]], requests
        vault = client.hg("vault", "-T", "json")
        assert vault.returncode == 0, vault.output
        status = json.loads(vault.stdout)
        status = status[0] if isinstance(status, list) else status
        assert (status["identity_source"], status["caller_arn"]) == ("environment", caller)
    finally:
        imds.stop()


def test_no_credentials_names_each_source_and_why(aws, tmp_path):
    client = aws.client(tmp_path, {}, ref=unique_ref("nocreds"))
    mark = aws.moto.mark()
    clone = client.hg("clone", aws.server.repo_url(), "work")
    assert clone.returncode != 0
    out = clone.output
    assert "no AWS credentials" in out, out
    # Each source of the chain with its one reason; IMDS was switched off, so not asked.
    for source in ("environment", "profile", "web-identity", "container", "instance-profile"):
        assert source in out, (source, out)
    assert "AWS_EC2_METADATA_DISABLED" in out, out
    # The profile's reason names the profile and the files read (not aws-config's "not enabled").
    files = f"{tmp_path / 'aws' / 'config'} or {tmp_path / 'aws' / 'credentials'}"
    assert f"profile: no profile default in {files};" in out, out
    assert "Traceback" not in out
    assert aws.moto.calls(mark) == []
