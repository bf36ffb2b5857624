"""Cached credentials stay with the job that owns them.

The kernel keyring is per uid, not per container: a process of the same uid in another mount
and pid namespace (a pod running as root on the same node, no user namespace) lists and reads
our keys. Played here as an attacker would: ``unshare -m -p -f --mount-proc`` as our uid, list
``/proc/keys``, read every ``hg-keyvault:`` payload with ``keyctl(KEYCTL_READ)``, then try what
it found: every JWT-shaped string (raw or inside Base64) goes to our vault as a bearer token,
and the secret value, its Base64, the client secret and the ref are searched for. It must learn
nothing usable, while the owning job keeps its warm hit (one vault request, no token request).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import kernel_keys
import pytest
from bed import Bed, start_bed
from hgserver import HG

TESTS = Path(__file__).resolve().parent

# Reads every hg-keyvault key the kernel shows this uid; prints what it saw. Run in fresh
# mount and pid namespaces with none of the job's environment.
ATTACKER = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
import kernel_keys
seen = []
for key in kernel_keys.ours("hg-keyvault:"):
    try:
        payload = kernel_keys.read(key).hex()
    except OSError as e:
        payload = None
    seen.append({"id": key.id, "description": key.description, "payload": payload})
print(json.dumps({
    "pid": os.getpid(),
    "mnt": os.readlink("/proc/self/ns/mnt"),
    "pidns": os.readlink("/proc/self/ns/pid"),
    "keys": seen,
}))
"""

UNSHARE = ["unshare", "--mount", "--pid", "--fork", "--mount-proc"]


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


pytestmark = [
    pytest.mark.skipif(
        not kernel_keys.available(), reason="needs Linux keyutils (/proc/keys, keyctl)"
    ),
    pytest.mark.skipif(
        not _unshare_works(), reason="needs unshare(1) with new mount and pid namespaces"
    ),
]

CACHE_PREFIXES = ("hg-keyvault:token:", "hg-keyvault:challenge:", "hg-keyvault:secret:")


@pytest.fixture(scope="module")
def bed(tmp_path_factory) -> Bed:
    bed = start_bed(tmp_path_factory.mktemp("isolation"))
    try:
        yield bed
    finally:
        bed.stop()


def cache_key_ids(*prefixes: str) -> set[int]:
    return {k.id for p in prefixes or CACHE_PREFIXES for k in kernel_keys.ours(p)}


def attack(tmp_path: Path) -> dict:
    """What a process of our uid in other mount and pid namespaces reads from the keyring."""
    script = tmp_path / "attacker.py"
    script.write_text(ATTACKER)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    proc = subprocess.run(
        [*UNSHARE, sys.executable, str(script), str(TESTS)],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


_JWT = re.compile(rb"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{24,}={0,2}")


def token_candidates(payload: bytes) -> set[bytes]:
    """Every JWT-shaped string in ``payload``, also inside Base64 runs (one level deep)."""
    found = set(_JWT.findall(payload))
    for run in _BASE64_RUN.findall(payload):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                inner = decode(run + b"=" * (-len(run) % 4))
            except ValueError:
                continue
            found.update(_JWT.findall(inner))
    return found


def written_before_sealing(payload: bytes) -> bool:
    """The plain JSON of older builds (other jobs of this uid may run one): not this test's."""
    try:
        return json.loads(payload).get("v") == 1
    except (ValueError, UnicodeDecodeError, AttributeError):
        return False


def vault_accepts(bed: Bed, token: bytes) -> bool:
    """Whether our vault takes ``token`` as a bearer token (what a thief would do with it)."""
    req = urllib.request.Request(
        f"{bed.emulator.vault_url.rstrip('/')}/secrets?api-version=2025-07-01",
        headers={"Authorization": "Bearer " + token.decode("ascii", "replace")},
    )
    ctx = ssl.create_default_context(cafile=str(bed.ca_file))
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status == 200
    except urllib.error.HTTPError as e:
        return e.code == 200


def vault_requests(bed: Bed, start: int) -> list[tuple[str, str, int]]:
    return [(r["target"], r["method"], r["status"]) for r in bed.emulator.requests()[start:]]


def test_another_namespace_reads_our_keys_but_learns_nothing_usable(bed, tmp_path):
    ref = f"secret://hg/tests/isolation/{secrets.token_hex(4)}"
    bed.provision(ref=ref)
    # Every token this emulator issues starts with this piece (header, then claims).
    token_header = bed.issue_token("reader").split(".")[0].encode()
    before = cache_key_ids()
    # The owning job: one identity with the token cache only, one with the secret cache too.
    tokens_only = bed.client(tmp_path / "tokens", principal="reader", ref=ref)
    with_values = bed.client(
        tmp_path / "values", principal="officer", ref=ref, extra="[keyvault]\nsecret-cache = 120\n"
    )
    for client in (tokens_only, with_values):
        result = client.hg("clone", bed.server.repo_url(), "work")
        assert result.returncode == 0, result.output
    new = cache_key_ids() - before
    assert cache_key_ids("hg-keyvault:token:") & new
    assert cache_key_ids("hg-keyvault:secret:") & new

    seen = attack(tmp_path)
    # Really elsewhere: pid 1 of its own pid namespace, its own mount namespace.
    assert seen["pid"] == 1
    assert seen["mnt"] != os.readlink("/proc/self/ns/mnt")
    assert seen["pidns"] != os.readlink("/proc/self/ns/pid")
    # And yet it lists and reads the keys made since: the keyring is not namespaced.
    read = {k["id"]: bytes.fromhex(k["payload"]) for k in seen["keys"] if k["payload"]}
    kinds = {k["id"]: k["description"].split(":")[1] for k in seen["keys"]}

    password = bed.server.password.encode()
    needles = {
        "secret value": password,
        "secret value, Base64": base64.b64encode(password),
        "secret value, URL-safe Base64": base64.urlsafe_b64encode(password).rstrip(b"="),
        "client secret": bed.emulator.principal("reader")["client_secret"].encode(),
        "officer's client secret": bed.emulator.principal("officer")["client_secret"].encode(),
        "ref": ref.encode(),
    }
    # Other jobs' keys (the keyring is shared) are read too: a leak of ours may hide anywhere.
    for key_id, payload in read.items():
        for what, needle in needles.items():
            assert needle not in payload, f"key {key_id} shows the {what}"
        for token in token_candidates(payload):
            assert not vault_accepts(bed, token), f"key {key_id} holds a token our vault takes"
    # Other builds' plain entries may sit beside ours; ours are every other key made since.
    ours = {i for i in new & set(read) if not written_before_sealing(read[i])}
    assert {kinds[i] for i in ours} >= {"token", "secret"}, "the attacker read none of our keys"
    for key_id in ours:
        if kinds[key_id] in ("token", "secret"):
            payload = read[key_id]
            # Sealed: no JWT piece (every emulator's tokens share the header piece, so only in
            # ours), no claim, no readable run at all.
            assert token_header not in payload, kinds[key_id]
            assert b"eyJ" not in payload, kinds[key_id]
            assert not re.search(rb"[A-Za-z0-9+/_-]{20,}", payload), kinds[key_id]

    # The owning job still gets its warm hit: one vault request, no token request...
    gone = {i for i in ours if kinds[i] == "token"} - cache_key_ids("hg-keyvault:token:")
    assert not gone, "another process removed our token keys (a test sharing the keyring?)"
    start = len(bed.emulator.requests())
    pull = tokens_only.hg("pull", cwd=tokens_only.home / "work")
    assert pull.returncode == 0, pull.output
    assert vault_requests(bed, start) == [("vault", "GET", 200)]
    # ...and with the secret cache, no request at all.
    start = len(bed.emulator.requests())
    pull = with_values.hg("pull", "--debug", cwd=with_values.home / "work")
    assert pull.returncode == 0, pull.output
    assert "from the secret cache" in pull.output
    assert vault_requests(bed, start) == []


def test_a_job_with_the_same_credential_gets_the_warm_hit_from_another_namespace(bed, tmp_path):
    """The seal is the credential, not the namespace: the same job in another container (the
    same client secret in its environment) still shares the cache."""
    ref = f"secret://hg/tests/isolation/{secrets.token_hex(4)}"
    bed.provision(ref=ref)
    client = bed.client(tmp_path, principal="reader", ref=ref)
    result = client.hg("clone", bed.server.repo_url(), "work")
    assert result.returncode == 0, result.output
    start = len(bed.emulator.requests())
    proc = subprocess.run(
        [*UNSHARE, HG, "pull"],
        cwd=client.home / "work",
        env=client.env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert vault_requests(bed, start) == [("vault", "GET", 200)]
