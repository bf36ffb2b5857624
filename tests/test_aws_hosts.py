"""The AWS sources that live at fixed link-local addresses, each in a network + mount
namespace of the test's own (tests/netns.py): the EC2 instance metadata service at
``IMDS_ADDRESS`` (IMDSv2) and the ECS task credentials endpoint at 169.254.170.2
(``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``). Everything (moto, nginx, gunicorn, the metadata
servers, hg) runs inside that namespace; no packet to those addresses leaves the machine's own.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from awsbed import start_aws_bed, unique_ref
from bed import Result
from netns import IMDS_ADDRESS, ConnectionRecorder, run_isolated, unavailable_reason
from servers.ecscreds import PATH as ECS_PATH
from servers.ecscreds import ContainerCredentials
from servers.imdsv2 import InstanceMetadata

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))

GET = "secretsmanager.GetSecretValue"
ECS_ADDRESS = "169.254.170.2"


@dataclass
class HostRun:
    clone: Result
    pull: Result | None = None
    vault: dict = field(default_factory=dict)
    cold: list[str] = field(default_factory=list)
    warm: list[str] = field(default_factory=list)
    source: list[tuple[str, str, int]] = field(default_factory=list)
    source_warm: int = 0
    expected_arn: str = ""
    connections: list = field(default_factory=list)


def _clone_pull(aws, client, run_source=None) -> HostRun:
    mark = aws.moto.mark()
    clone = client.hg("clone", aws.server.repo_url(), "work")
    run = HostRun(clone=clone, cold=aws.moto.calls(mark))
    seen = len(run_source()) if run_source else 0
    if clone.returncode == 0:
        mark = aws.moto.mark()
        run.pull = client.hg("pull", cwd=client.home / "work")
        run.warm = aws.moto.calls(mark)
        run.source_warm = (len(run_source()) - seen) if run_source else 0
        vault = client.hg("vault", "-T", "json")
        assert vault.returncode == 0, vault.output
        data = json.loads(vault.stdout)
        run.vault = data[0] if isinstance(data, list) else data
    return run


def _instance(root: Path) -> HostRun:
    aws = start_aws_bed(root)
    imds = None
    try:
        aws.put(ref := unique_ref("ec2"))
        imds = InstanceMetadata(
            aws.moto, aws.moto.create_role("hg-ec2-runner"), host=IMDS_ADDRESS, port=80
        )
        client = aws.client(root / "client", {"AWS_EC2_METADATA_DISABLED": None}, ref=ref)
        run = _clone_pull(aws, client, imds.requests)
        run.source = imds.requests()
        run.expected_arn = imds.caller_arn
        return run
    finally:
        if imds is not None:
            imds.stop()
        aws.stop()


def _disabled(root: Path) -> HostRun:
    recorder = ConnectionRecorder()
    aws = start_aws_bed(root)
    try:
        client = aws.client(
            root / "client", {"AWS_EC2_METADATA_DISABLED": "true"}, ref=unique_ref("off")
        )
        mark = aws.moto.mark()
        run = HostRun(
            clone=client.hg("clone", aws.server.repo_url(), "work"), cold=aws.moto.calls(mark)
        )
        run.pull = client.hg("vault", "-T", "json")
        return run
    finally:
        aws.stop()
        connections = recorder.stop()
        if "run" in locals():
            run.connections = connections


def _ecs_relative(root: Path) -> HostRun:
    subprocess.run(["ip", "addr", "add", f"{ECS_ADDRESS}/32", "dev", "lo"], check=True, timeout=10)
    aws = start_aws_bed(root)
    ecs = None
    try:
        aws.put(ref := unique_ref("ecs-task"))
        ecs = ContainerCredentials(
            aws.moto, aws.moto.create_role("hg-ecs-task"), host=ECS_ADDRESS, port=80
        )
        identity = {
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": ECS_PATH,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": ecs.token,
        }
        client = aws.client(root / "client", identity, ref=ref)
        run = _clone_pull(aws, client, lambda: ecs.http.log)
        run.source = [(r.method, r.path, r.status) for r in ecs.http.log]
        run.expected_arn = ecs.caller_arn
        return run
    finally:
        if ecs is not None:
            ecs.stop()
        aws.stop()


def test_ec2_instance_profile_at_169_254_169_254_over_imdsv2(tmp_path):
    run = run_isolated(_instance, tmp_path)
    assert run.clone.returncode == 0, run.clone.output
    assert run.pull is not None and run.pull.returncode == 0, run.pull.output
    assert run.vault["identity_source"] == "instance-profile", run.vault
    assert run.vault["caller_arn"] == run.expected_arn, run.vault
    assert run.cold == [GET] and run.warm == [GET], (run.cold, run.warm)
    assert run.source[0] == ("PUT", "/latest/api/token", 200), run.source
    assert not [s for s in run.source if s[2] == 401], run.source
    assert run.source_warm == 0, run.source


def test_ec2_metadata_disabled_sends_imds_nothing(tmp_path):
    run = run_isolated(_disabled, tmp_path)
    assert run.clone.returncode != 0
    out = run.clone.output
    assert "no AWS credentials" in out, out
    assert "AWS_EC2_METADATA_DISABLED" in out, out
    assert "Traceback" not in out
    assert run.connections == [], run.connections
    assert run.cold == [], run.cold


def test_ecs_task_role_at_169_254_170_2_by_relative_uri(tmp_path):
    run = run_isolated(_ecs_relative, tmp_path)
    assert run.clone.returncode == 0, run.clone.output
    assert run.vault["identity_source"] == "container", run.vault
    assert run.vault["caller_arn"] == run.expected_arn, run.vault
    assert run.source[:1] == [("GET", ECS_PATH, 200)], run.source
    assert run.warm == [GET] and run.source_warm == 0, (run.warm, run.source)
