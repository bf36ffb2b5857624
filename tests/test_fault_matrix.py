"""The fault matrix: every way the vault, the identity or the server can fail
ends in the documented abort, a non-zero exit, within the configured timeout
plus a margin, and leaves no partial clone (plain Mercurial removes the
destination of a failed clone, and so must we).

The measured times are written to ``.work/reports/fault-matrix.md``.
"""

from __future__ import annotations

import datetime
import secrets
import socket
from pathlib import Path

import pytest
from bed import REF, Bed, sdk_client, start_bed

pytestmark = pytest.mark.usefixtures("clean_faults")

TIMEOUT = 3.0
# hg's start-up, the clone's first round trip and process exit, on a loaded 2-core box.
MARGIN = 3.0
REPORT = Path(__file__).resolve().parent.parent / ".work" / "reports" / "fault-matrix.md"
_rows: list[tuple[str, str, int, float, str]] = []


@pytest.fixture(scope="module")
def bed(tmp_path_factory) -> Bed:
    bed = start_bed(tmp_path_factory.mktemp("faultbed"))
    try:
        bed.provision()
        yield bed
    finally:
        bed.stop()
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            f"| fault | command | exit | seconds (timeout {TIMEOUT:g} s) | abort |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {case} | {cmd} | {code} | {secs:.2f} | {msg.replace('|', '/')} |"
            for case, cmd, code, secs, msg in _rows
        ]
        REPORT.write_text("\n".join(lines) + "\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ref_with(bed, change) -> str:
    from hgext3rd.keyvault._native import secret_name

    ref = f"secret://hg/faults/{secrets.token_hex(4)}"
    bed.provision(ref=ref)
    sdk_client(bed).update_secret_properties(secret_name(ref), **change)
    return ref


CLONE_CASES = {
    # case: (client options, emulator faults, expected text in the abort)
    "vault down (connection refused)": (
        lambda bed: {"vault_url": f"https://127.0.0.1:{_free_port()}/"},
        [],
        "connection refused",
    ),
    "unknown vault host": (
        lambda bed: {"vault_url": "https://no-such-vault.invalid/"},
        [],
        "no-such-vault.invalid",
    ),
    "untrusted vault certificate": (
        lambda bed: {"extra": "[keyvault]\ncacerts =\n"},
        [],
        "certificate",
    ),
    "401 from the identity endpoint": (
        lambda bed: {},
        [{"target": "identity", "kind": "status", "status": 401}],
        "managed identity",
    ),
    "403 (identity without a role)": (
        lambda bed: {"principal": "nobody"},
        [],
        "Key Vault Secrets User",
    ),
    "404 (no such secret)": (
        lambda bed: {"ref": "secret://hg/faults/missing"},
        [],
        "does not exist",
    ),
    "429 storm": (
        lambda bed: {},
        [{"target": "vault", "kind": "status", "status": 429, "retry_after": 1}],
        "429",
    ),
    "500 from the vault": (
        lambda bed: {},
        [{"target": "vault", "kind": "status", "status": 500}],
        "HTTP 500",
    ),
    "503 from the vault": (
        lambda bed: {},
        [{"target": "vault", "kind": "status", "status": 503}],
        "503",
    ),
    "vault accepts and never answers": (
        lambda bed: {},
        [{"target": "vault", "kind": "hang"}],
        "keyvault.timeout",
    ),
    "token endpoint accepts and never answers": (
        lambda bed: {"principal": "reader"},
        [{"target": "token", "kind": "hang"}],
        "keyvault.timeout",
    ),
    "disabled secret": (
        lambda bed: {"ref": _ref_with(bed, {"enabled": False})},
        [],
        "is disabled",
    ),
    "expired secret": (
        lambda bed: {
            "ref": _ref_with(
                bed, {"expires_on": datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)}
            )
        },
        [],
        "expired",
    ),
    "not-yet-valid secret": (
        lambda bed: {
            "ref": _ref_with(
                bed, {"not_before": datetime.datetime(2099, 1, 1, tzinfo=datetime.timezone.utc)}
            )
        },
        [],
        "is not valid yet",
    ),
    "server rejects the password": (
        lambda bed: {"ref": _rejected_ref(bed)},
        [],
        "rejected the password from the vault",
    ),
}


# Each case is the first command of a CI job: no token cached by an earlier test may hide a fault
# of the identity endpoint (the token cache itself is tested in test_request_counts.py).
COLD_START = "[keyvault]\ntoken-cache = no\n"


def _rejected_ref(bed) -> str:
    ref = f"secret://hg/faults/wrong-{secrets.token_hex(4)}"
    bed.provision("not-the-password", ref=ref)
    return ref


@pytest.mark.parametrize("case", list(CLONE_CASES))
def test_clone_fault_aborts_in_bounded_time_without_a_partial_clone(bed, tmp_path, case):
    options, faults, expected = CLONE_CASES[case]
    client = bed.client(tmp_path, timeout=TIMEOUT, **{"ref": REF, **options(bed)})
    client.append_config(COLD_START)
    if faults:
        bed.emulator.set_faults(faults)

    result = client.hg("clone", bed.server.repo_url(), "work")

    abort = next((line for line in result.stderr.splitlines() if "abort" in line), "")
    _rows.append((case, "clone", result.returncode, result.seconds, abort[:160]))
    assert result.returncode == 255, result.output
    assert expected in result.stderr, result.stderr
    assert result.stderr.count("abort:") == 1
    assert result.seconds < TIMEOUT + MARGIN
    assert not (client.home / "work").exists()


def test_token_that_expires_mid_command_is_renewed(bed, tmp_path):
    # Tokens live 1 s: each later vault request of the command needs a new one.
    client = bed.client(
        tmp_path,
        timeout=TIMEOUT,
        extra=f"[auth]\nsecond.prefix = https://other.invalid/\nsecond.vault = {REF}\n",
    )
    client.append_config(COLD_START)
    bed.emulator.set_faults([{"target": "identity", "kind": "token-lifetime", "expires_in": 1}])
    before = sum(r["target"] == "identity" for r in bed.emulator.requests())
    result = client.hg("vault")
    identity = sum(r["target"] == "identity" for r in bed.emulator.requests()) - before
    _rows.append(
        ("token expires mid-command, renewal works", "vault", result.returncode, result.seconds, "")
    )
    assert result.returncode == 0, result.output
    assert identity >= 2, "the expired token was renewed, not reused"


def test_token_that_expires_mid_command_and_cannot_be_renewed_aborts(bed, tmp_path):
    client = bed.client(
        tmp_path,
        timeout=TIMEOUT,
        extra=f"[auth]\nsecond.prefix = https://other.invalid/\nsecond.vault = {REF}\n",
    )
    client.append_config(COLD_START)
    bed.emulator.set_faults(
        [
            {"target": "identity", "kind": "token-lifetime", "expires_in": 1, "count": 1},
            {"target": "identity", "kind": "status", "status": 401},
        ]
    )
    result = client.hg("vault")
    error = next((line for line in result.stdout.splitlines() if "error:" in line), "")
    _rows.append(
        ("token expires mid-command, renewal refused", "vault", result.returncode,
         result.seconds, error.strip()[:160])
    )  # fmt: skip
    assert result.returncode == 1, result.output
    assert "managed identity" in result.stdout
    assert result.seconds < 2 * TIMEOUT + MARGIN


def test_expired_secret_is_refused_by_the_extension_although_the_vault_returns_it(bed, tmp_path):
    # Key Vault returns expired secrets (200): the refusal is hg-keyvault's own.
    from hgext3rd.keyvault._native import secret_name

    ref = _ref_with(
        bed, {"expires_on": datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)}
    )
    client = bed.client(tmp_path, timeout=TIMEOUT, ref=ref)
    result = client.hg("clone", bed.server.repo_url(), "work")
    assert result.returncode == 255, result.output
    assert "has expired in vault" in result.stderr
    assert f"store a new version with `hg vault set {ref}`" in result.stderr
    gets = [
        r
        for r in bed.emulator.requests()
        if r["method"] == "GET" and r["path"].startswith(f"/secrets/{secret_name(ref)}")
    ]
    assert gets and gets[-1]["status"] == 200, gets


def test_entra_refusing_the_client_secret_names_status_and_aadsts_code(bed, tmp_path):
    # Entra's error description carries \r\n lines the Azure SDK cannot parse: the abort
    # must still say the HTTP status and the AADSTS code, not a JSON parser's complaint.
    client = bed.client(tmp_path, timeout=TIMEOUT, principal="reader")
    client.append_config(COLD_START + "credential = environment\n")
    client.env["AZURE_CLIENT_SECRET"] = "not-the-secret"
    result = client.hg("clone", bed.server.repo_url(), "work")
    _rows.append(("Entra refuses the client secret", "clone", result.returncode, result.seconds,
                  result.stderr.splitlines()[0][:160] if result.stderr else ""))  # fmt: skip
    assert result.returncode == 255, result.output
    assert "environment: failed: HTTP 401 invalid_client: AADSTS7000215: Invalid client secret" in (
        result.stderr
    ), result.stderr
    assert "Trace ID" not in result.stderr
    assert "not-the-secret" not in result.output


def test_access_policy_vault_hints_set_policy_instead_of_a_role(bed, tmp_path):
    client = bed.client(tmp_path, timeout=TIMEOUT, principal="nobody")
    client.append_config(COLD_START)
    bed.emulator.set_permission_model("access-policy")
    try:
        result = client.hg("clone", bed.server.repo_url(), "work")
    finally:
        bed.emulator.set_permission_model("rbac")
    abort = next((line for line in result.stderr.splitlines() if "abort" in line), "")
    _rows.append(("403 ForbiddenByPolicy (access policies)", "clone", result.returncode,
                  result.seconds, abort[:160]))  # fmt: skip
    assert result.returncode == 255, result.output
    assert "secrets get permission (ForbiddenByPolicy)" in result.stderr
    assert "az keyvault set-policy" in result.stderr
    assert "--secret-permissions get" in result.stderr
    assert "Key Vault Secrets User" not in result.stderr
    assert not (client.home / "work").exists()
