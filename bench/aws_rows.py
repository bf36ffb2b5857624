"""`make bench`'s AWS group (BENCH_ROWS=aws): hg-keyvault with `[keyvault] provider = aws`
against moto (tests/servers/motoserver.py, the same HTTPS bed as the tests), beside its peers:

- a warm authenticated `hg pull` with the password in Secrets Manager vs the plaintext password
  (ratio), and the requests moto saw per warm pull;
- one secret from a fresh process: `hg vault check URL` (a whole hg command that reads the
  group's secret through the core) vs a boto3 script vs `aws secretsmanager get-secret-value`
  (awscli from PyPI, its own venv .work/bench/awscli since it pins its own botocore).

The identity is an IAM user's keys in the environment for all three (no credential source
request, so the rows compare the fetch itself). boto3 sits in the "Python SDK" column and the
AWS CLI in the "az" column of the common table.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REGION = "eu-west-1"
BOTO3_FETCH = """
import sys, boto3
client = boto3.client("secretsmanager", endpoint_url=sys.argv[1], verify=sys.argv[2],
    region_name="eu-west-1")
print(len(client.get_secret_value(SecretId=sys.argv[3])["SecretString"]))
"""


def aws_rows(
    s, work: Path, *, run, interleaved, row, time_ratio_row, log, repo: Path
) -> list[dict]:
    from servers.motoserver import start_moto

    moto = start_moto(s.root / "moto", s.ca, recording=s.root / "moto-requests.jsonl")
    try:
        ref = "secret://hg/bench/password"
        name = "hg-" + ref[len("secret://") :]
        moto.create_secret(name, s.server.password, ref=ref)
        user = moto.create_user("hg-bench")
        aws_env = dict(
            s.base_env,
            AWS_ACCESS_KEY_ID=user["aws_access_key_id"],
            AWS_SECRET_ACCESS_KEY=user["aws_secret_access_key"],
            AWS_ENDPOINT_URL=moto.url,
            AWS_CA_BUNDLE=str(moto.ca_file),
            AWS_REGION=REGION,
            # awscli 1.x (botocore 1.43) reads only AWS_DEFAULT_REGION.
            AWS_DEFAULT_REGION=REGION,
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE=str(s.root / "no-aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(s.root / "no-aws-credentials"),
        )
        common = f"[ui]\nusername = Bench <bench@example.com>\n[web]\ncacerts = {s.bed.ca_file}\n"
        s.hgrc["aws"] = s.write(
            "aws.hgrc",
            common
            + "[extensions]\nkeyvault =\n[keyvault]\nprovider = aws\n"
            + f"aws-region = {REGION}\ncacerts = {s.bed.ca_file}\ntimeout = 30\n"
            + f"[auth]\ncorp.prefix = {s.server.url}\ncorp.username = {s.server.username}\n"
            + f"corp.vault = {ref}\n",
        )
        ours_env = dict(aws_env, HGRCPATH=str(s.hgrc["aws"]))
        plain_env = s.env("plain")
        from hgserver import HG

        plain = lambda: run([HG, "pull"], env=plain_env, cwd=work)  # noqa: E731
        ours = lambda: run([HG, "pull"], env=ours_env, cwd=work)  # noqa: E731
        log("aws: warm hg pull vs plaintext")
        t = interleaved({"plain": plain, "ours": ours})
        mark = moto.mark()
        ours()
        warm_calls = moto.calls(mark)

        awscli = Path(os.environ.get("BENCH_AWSCLI", repo / ".work/bench/awscli/bin/aws"))
        fresh = {
            "ours": lambda: run(
                [HG, "vault", "check", s.server.repo_url()], env=ours_env, cwd=work
            ),
            "boto3": lambda: run(
                [sys.executable, "-c", BOTO3_FETCH, moto.url, str(moto.ca_file), name],
                env=aws_env,
            ),
        }
        if awscli.exists():
            fresh["cli"] = lambda: run(
                [awscli, "secretsmanager", "get-secret-value", "--secret-id", name,
                 "--query", "SecretString", "--output", "text"],
                env=aws_env,
            )  # fmt: skip
        else:
            log(f"aws: no AWS CLI at {awscli}: its column stays empty")
        log("aws: one secret from a fresh process")
        f = interleaved(fresh)
        counts = {}
        for who, fn in fresh.items():
            mark = moto.mark()
            fn()
            counts[who] = len(moto.calls(mark))
        cli = f.get("cli")
        ratio = f"boto3 {f['boto3'] / f['ours']:.1f}x" + (
            f", aws {cli / f['ours']:.1f}x" if cli else ""
        )
        return [
            time_ratio_row(
                "authenticated `hg pull` (nothing new), `provider = aws` (moto) warm vs "
                "plaintext `[auth]`",
                t["ours"],
                t["plain"],
                1.10,
            ),
            row(
                "requests to AWS per warm `hg pull` (`provider = aws`)",
                ours_text=f"{len(warm_calls)} ({', '.join(c.split('.')[-1] for c in warm_calls)})",
                target="1 (GetSecretValue)",
                met=warm_calls == ["secretsmanager.GetSecretValue"],
            ),
            row(
                "one secret, fresh process, AWS (moto): `hg vault check URL` vs a boto3 script "
                "(Python SDK column) vs `aws secretsmanager get-secret-value` (az column); "
                f"requests {counts.get('ours')} / {counts.get('boto3')} / {counts.get('cli', '—')}",
                ours=f["ours"],
                sdk=f["boto3"],
                az=cli,
                ratio_text=ratio,
                target="faster than both",
                met=f["ours"] < f["boto3"] and (cli is None or f["ours"] < cli),
                unit="ms",
            ),
        ]
    finally:
        moto.stop()
