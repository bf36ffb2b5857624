"""The AWS bed itself, checked with the official Python SDK (boto3/botocore): moto answers over
HTTPS with the test CA, its request log counts what a client sent, IAM enforcement rejects a
wrong secret key, and botocore's own container and IMDSv2 providers accept tests/servers'
endpoints (so a failure of ours there is ours, not the bed's)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from awsbed import aws_name, start_aws_bed, unique_ref
from servers.ecscreds import ContainerCredentials
from servers.imdsv2 import InstanceMetadata

# A fresh Python with botocore's default chain and only the given variables: prints the caller ARN.
WHOAMI = (
    "import boto3, json, sys\n"
    "s = boto3.Session()\n"
    "c = s.client('sts', endpoint_url=sys.argv[1], verify=sys.argv[2], region_name='eu-west-1')\n"
    "print(json.dumps({'arn': c.get_caller_identity()['Arn'],"
    " 'method': s.get_credentials().method}))\n"
)


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    world = start_aws_bed(tmp_path_factory.mktemp("awsbed"))
    try:
        yield world
    finally:
        world.stop()


def _whoami(aws, env: dict[str, str], tmp_path) -> dict:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    base.update(
        AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none")
    )
    proc = subprocess.run(
        [sys.executable, "-c", WHOAMI, aws.moto.url, str(aws.moto.ca_file)],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_moto_serves_secrets_over_https_and_logs_each_call(aws):
    ref = unique_ref("bed")
    arn = aws.put(ref, "v1")
    assert arn.startswith(f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{aws_name(ref)}-")
    reader = aws.moto.create_user(f"bed-reader-{ref[13:19]}")
    sm = aws.moto.client(
        "secretsmanager",
        aws_access_key_id=reader["aws_access_key_id"],
        aws_secret_access_key=reader["aws_secret_access_key"],
    )
    mark = aws.moto.mark()
    assert sm.get_secret_value(SecretId=aws_name(ref))["SecretString"] == "v1"
    [request] = aws.moto.requests(mark)
    assert request.call == "secretsmanager.GetSecretValue"
    assert request.access_key_id == reader["aws_access_key_id"]
    assert request.region == "eu-west-1"


def test_iam_enforcement_rejects_a_wrong_secret_key_and_accepts_the_right_one(aws):
    ref = unique_ref("enforce")
    aws.put(ref, "v1")
    user = aws.moto.create_user(f"bed-enforce-{ref[13:19]}")
    good = aws.moto.client(
        "secretsmanager",
        aws_access_key_id=user["aws_access_key_id"],
        aws_secret_access_key=user["aws_secret_access_key"],
    )
    bad = aws.moto.client(
        "secretsmanager",
        aws_access_key_id=user["aws_access_key_id"],
        aws_secret_access_key=user["aws_secret_access_key"] + "x",
    )
    aws.moto.enforce_iam(True)
    try:
        assert good.get_secret_value(SecretId=aws_name(ref))["SecretString"] == "v1"
        with pytest.raises(Exception) as refused:
            bad.get_secret_value(SecretId=aws_name(ref))
    finally:
        aws.moto.enforce_iam(False)
    # moto answers a JSON-protocol service's signature failure as 403 with a query-protocol XML
    # body (<Code>SignatureDoesNotMatch</Code>); AWS sends JSON {"__type": ...}: see the report.
    assert "SignatureDoesNotMatch" in str(refused.value)


def test_container_endpoint_is_accepted_by_botocore_and_checks_the_token(aws, tmp_path):
    role = aws.moto.create_role("bed-ecs-role")
    ecs = ContainerCredentials(aws.moto, role)
    try:
        who = _whoami(aws, {**ecs.env(), "AWS_EC2_METADATA_DISABLED": "true"}, tmp_path)
        assert who == {"arn": ecs.caller_arn, "method": "container-role"}
        token_file = tmp_path / "token"
        token_file.write_text(ecs.token)
        who = _whoami(
            aws,
            {**ecs.env(token_file=str(token_file)), "AWS_EC2_METADATA_DISABLED": "true"},
            tmp_path,
        )
        assert who["arn"] == ecs.caller_arn
        statuses = [r.status for r in ecs.http.log]
        assert statuses == [200, 200], statuses
        assert all(r.headers.get("authorization") == ecs.token for r in ecs.http.log)
    finally:
        ecs.stop()


def test_imdsv2_endpoint_is_accepted_by_botocore_token_first(aws, tmp_path):
    role = aws.moto.create_role("bed-instance-role")
    imds = InstanceMetadata(aws.moto, role)
    try:
        who = _whoami(aws, {"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.endpoint}, tmp_path)
        assert who == {"arn": imds.caller_arn, "method": "iam-role"}
        calls = imds.requests()
        assert calls[0] == ("PUT", "/latest/api/token", 200), calls
        assert ("GET", "/latest/meta-data/iam/security-credentials/bed-instance-role", 200) in calls
        # Without the session token, IMDSv2 refuses.
        assert imds._answer("GET", "/latest/meta-data/iam/security-credentials/", {})[0] == 401
    finally:
        imds.stop()
