"""Round trips to the vault per hg command, counted in the emulator's request log (no timing):
a warm command sends exactly one vault request per secret and no token request; a cold one at
most three in all; a 401 to a cached token recovers with one fresh token; and the caches hold
tokens and values in the kernel keyring only, never in a file or an output.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import kernel_keys
import pytest
from bed import REF, Bed, files_containing, start_bed
from hgserver import HG

pytestmark = pytest.mark.skipif(
    not kernel_keys.available(), reason="needs Linux keyutils (/proc/keys, keyctl)"
)

CACHE_PREFIXES = ("hg-keyvault:token:", "hg-keyvault:challenge:", "hg-keyvault:secret:")


# The group this module's hg processes run as: the cache keys they make carry it, so these
# tests remove only their own keys, never those of tests running beside them (pytest-xdist) or
# of other builds of this uid (the user keyring is shared; test_cache_isolation.py checks that
# nobody removed its keys). Without the right to change groups: the keys made since this
# module's emulator started, which is right only when nothing else writes keys meanwhile.
GROUP = kernel_keys.private_group()
_before: set[int] = set()


def cache_keys(*prefixes: str) -> list[kernel_keys.KernelKey]:
    """The cache keys this module's clients made."""
    keys = [k for p in prefixes or CACHE_PREFIXES for k in kernel_keys.ours(p)]
    if GROUP is not None:
        return [k for k in keys if k.gid == GROUP]
    return [k for k in keys if k.id not in _before]


def drop_cached(*prefixes: str) -> None:
    for key in cache_keys(*prefixes):
        kernel_keys.remove(key)


@pytest.fixture(scope="module")
def bed(tmp_path_factory) -> Bed:
    _before.update(k.id for p in CACHE_PREFIXES for k in kernel_keys.ours(p))
    bed = start_bed(tmp_path_factory.mktemp("counts"))
    bed.group = GROUP
    try:
        yield bed
    finally:
        bed.stop()
        drop_cached()


@pytest.fixture(autouse=True)
def _no_faults(bed):
    bed.emulator.clear_faults()
    yield
    bed.emulator.clear_faults()


class Counter:
    """Requests the emulator logged since the counter was made (or last reset)."""

    def __init__(self, bed: Bed):
        self.bed = bed
        self.reset()

    def reset(self) -> None:
        self.start = len(self.bed.emulator.requests())

    def since(self) -> list[dict]:
        return self.bed.emulator.requests()[self.start :]

    def count(self, target: str) -> int:
        return sum(1 for r in self.since() if r["target"] == target)

    def tokens(self) -> int:
        return self.count("token") + self.count("identity")


def clone_source(bed: Bed, client, name: str) -> Path:
    result = client.hg("clone", bed.server.repo_url(), name)
    assert result.returncode == 0, result.output
    return client.home / name


def fresh_identity(bed: Bed, tmp_path: Path, principal: str = "reader", **kwargs):
    """A client of ``principal`` reading a new secret that holds the server's password."""
    ref = f"secret://hg/tests/counts/{secrets.token_hex(4)}"
    bed.provision(ref=ref)
    return bed.client(tmp_path, principal=principal, ref=ref, **kwargs), ref


def test_cold_command_takes_three_requests_and_warm_ones_take_one(bed, tmp_path):
    client, _ = fresh_identity(bed, tmp_path)
    # Tests share the reader identity (and so its cache entry): start this one from nothing.
    drop_cached("hg-keyvault:token:", "hg-keyvault:challenge:")
    counter = Counter(bed)

    work = clone_source(bed, client, "work")
    cold = counter.since()
    # Challenge probe (401), token, authenticated GET: the physical minimum for a new machine.
    assert [r["target"] for r in cold] == ["vault", "token", "vault"], cold
    assert [r["status"] for r in cold] == [401, 200, 200]

    for _ in range(3):
        counter.reset()
        pull = client.hg("pull", cwd=work)
        assert pull.returncode == 0, pull.output
        warm = counter.since()
        assert [(r["target"], r["method"], r["status"]) for r in warm] == [("vault", "GET", 200)], (
            warm
        )
        assert warm[0]["principal"] == bed.emulator.principal("reader")["client_id"]


def test_hg_vault_says_whether_the_token_came_from_the_cache(bed, tmp_path):
    client, _ = fresh_identity(bed, tmp_path)
    client.hg("vault")  # warms the cache whatever state it was in
    result = client.hg("vault", "-T", "json")
    assert result.returncode == 0, result.output
    status = json.loads(result.stdout)[0]
    assert status["token_cache"] == "kernel-keyring"
    assert status["token_source"] == "cache"
    assert status["token_fresh_until"]
    assert status["client_id"] == bed.emulator.principal("reader")["client_id"]
    plain = client.hg("vault")
    assert "token cache: kernel keyring, token from the cache (fresh until" in plain.stdout

    off = bed.client(tmp_path / "off", principal="reader", extra="[keyvault]\ntoken-cache = no\n")
    counter = Counter(bed)
    result = off.hg("vault", "-T", "json")
    assert json.loads(result.stdout)[0]["token_cache"] is None
    assert "token cache: off" in off.hg("vault").stdout
    # Without the cache every process probes and fetches its own token.
    assert counter.tokens() == 2
    assert counter.count("vault") == 2 * 3  # probe, ping, one secret; twice


def test_vault_status_reads_every_secret_once_per_command(bed, tmp_path):
    bed.provision(ref=REF)
    refs = [f"secret://hg/tests/many/{i}/{secrets.token_hex(3)}" for i in range(12)]
    for ref in refs:
        bed.provision(ref=ref)
    groups = "".join(
        f"g{i}.prefix = https://host{i}.example/\ng{i}.username = u\ng{i}.vault = {ref}\n"
        for i, ref in enumerate(refs)
    )
    client = bed.client(tmp_path, principal="reader", extra="[auth]\n" + groups)
    client.hg("vault")
    counter = Counter(bed)
    result = client.hg("vault")
    assert result.returncode == 0, result.output
    gets = [r for r in counter.since() if r["target"] == "vault"]
    # One ping, then one GET per configured secret (13 groups: corp + 12), no token request.
    assert counter.tokens() == 0
    assert len(gets) == 1 + 13
    names = [r["path"] for r in gets[1:]]
    assert len(set(names)) == 13


def test_a_401_to_the_cached_token_fetches_a_fresh_one_and_succeeds(bed, tmp_path):
    client, _ = fresh_identity(bed, tmp_path)
    work = clone_source(bed, client, "work")
    reader = bed.emulator.principal("reader")["client_id"]
    # The vault refuses the cached token once, as it does for a revoked one.
    bed.emulator.set_faults(
        [{"target": "vault", "kind": "status", "status": 401, "count": 1, "principal": reader}]
    )
    counter = Counter(bed)
    pull = client.hg("pull", cwd=work)
    assert pull.returncode == 0, pull.output
    log = counter.since()
    assert [(r["target"], r["status"]) for r in log] == [
        ("vault", 401),
        ("token", 200),
        ("vault", 200),
    ], log

    # The refused token left the cache: the next command uses the fresh one, one request.
    counter.reset()
    pull = client.hg("pull", cwd=work)
    assert pull.returncode == 0, pull.output
    assert [(r["target"], r["status"]) for r in counter.since()] == [("vault", 200)]


def test_a_401_to_the_cached_token_on_set_fetches_a_fresh_one_and_succeeds(bed, tmp_path):
    # PUTs are authorized by the SDK's own policy (with the cached token): a 401 must drop the
    # token there too, or the retry would send the refused token again.
    client, ref = fresh_identity(bed, tmp_path, principal="officer")
    assert client.hg("vault", "set", ref, stdin=b"warm").returncode == 0
    officer = bed.emulator.principal("officer")["client_id"]
    bed.emulator.set_faults(
        [{"target": "vault", "kind": "status", "status": 401, "count": 1, "principal": officer}]
    )
    counter = Counter(bed)
    result = client.hg("vault", "set", ref, stdin=b"rotated")
    assert result.returncode == 0, result.output
    log = [(r["target"], r["method"], r["status"]) for r in counter.since()]
    # The challenge probe, the cached token refused, a fresh token, the PUT again.
    assert log == [
        ("vault", "PUT", 401),
        ("vault", "PUT", 401),
        ("token", "POST", 200),
        ("vault", "PUT", 200),
    ], log


def test_concurrent_cold_processes_fetch_one_token(bed, tmp_path):
    client, _ = fresh_identity(bed, tmp_path)
    work = clone_source(bed, client, "work")
    # No token, but the challenge is known: each process needs just its GET.
    drop_cached("hg-keyvault:token:")
    counter = Counter(bed)
    procs = [
        subprocess.Popen(
            [HG, "pull"],
            cwd=work,
            env=client.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            group=client.group,
        )
        for _ in range(8)
    ]
    outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    # One process fetched the token under the lock; the others found it in the cache.
    assert counter.tokens() == 1
    assert counter.count("vault") == 8


def test_secret_cache_serves_values_from_the_kernel_keyring_only(bed, tmp_path):
    client, ref = fresh_identity(
        bed, tmp_path, principal="officer", extra="[keyvault]\nsecret-cache = 120\n"
    )
    work = clone_source(bed, client, "work")
    counter = Counter(bed)
    pull = client.hg("pull", "--debug", cwd=work)
    assert pull.returncode == 0, pull.output
    assert "from the secret cache" in pull.output
    assert counter.count("vault") == 0 and counter.tokens() == 0

    status = client.hg("vault")
    assert "secret cache: kernel keyring, values kept 120 s" in status.stdout
    assert "cached:   yes," in status.stdout

    # Storing a new version drops the cached one: the next command reads the vault.
    stored = client.hg("vault", "set", ref, stdin=bed.server.password.encode())
    assert stored.returncode == 0, stored.output
    counter.reset()
    pull = client.hg("pull", "--debug", cwd=work)
    assert pull.returncode == 0, pull.output
    assert "from the vault" in pull.output
    assert counter.count("vault") == 1

    # Memory only: the cached value and the cached token are in no file and no output.
    token_keys = cache_keys("hg-keyvault:token:")
    secret_keys = cache_keys("hg-keyvault:secret:")
    assert token_keys and secret_keys
    for key in token_keys + secret_keys:
        assert key.group_or_other_perms == 0, key
        assert key.timeout != "perm", key
    # The cached token is sealed (test_cache_isolation.py); every token of this emulator starts
    # with the same header piece, so that piece finds any token in a file or an output.
    tokens = [bed.issue_token("officer").split(".")[0].encode() + b"."]
    password = bed.server.password.encode()
    runtimes = [
        Path(os.environ.get("TMPDIR", "/tmp")) / f"hg-keyvault-{os.getuid()}",
        Path(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent")) / "hg-keyvault",
    ]
    roots = [tmp_path, bed.root] + [r for r in runtimes if r.exists()]
    for needle in [password, *tokens]:
        hits, searched = files_containing(roots, needle)
        assert searched > 20
        assert hits == []
        assert not any(needle.decode() in out for out in client.outputs)


def test_a_password_the_server_rejected_leaves_the_secret_cache(bed, tmp_path):
    """The vault holds a wrong password; the server says 401; the operator stores the right one
    (from elsewhere: the cache of this identity is not touched by that); the next command gets
    the new one from the vault, not the rejected one from the secret cache."""
    ref = f"secret://hg/tests/counts/rejected/{secrets.token_hex(4)}"
    bed.provision("not-the-password", ref=ref)
    client = bed.client(
        tmp_path, principal="officer", ref=ref, extra="[keyvault]\nsecret-cache = 120\n"
    )
    rejected = client.hg("clone", "--debug", bed.server.repo_url(), "work")
    assert rejected.returncode == 255
    assert "from the vault" in rejected.output  # and into the secret cache
    assert "rejected the password from the vault for [auth] corp" in rejected.stderr
    # The rejection dropped the cached value at once.
    assert "cached:   no" in client.hg("vault").stdout

    bed.provision(ref=ref)  # the right one, by the operator's own identity
    counter = Counter(bed)
    clone = client.hg("clone", "--debug", bed.server.repo_url(), "work")
    assert clone.returncode == 0, clone.output
    assert "from the vault" in clone.output
    assert counter.count("vault") == 1


def test_bad_secret_cache_setting_is_a_config_error_naming_the_key(bed, tmp_path):
    client = bed.client(
        tmp_path, extra="[keyvault]\nsecret-cache = -5\n[ui]\ndetailed-exit-code = yes\n"
    )
    result = client.hg("vault")
    assert result.returncode == 30
    assert "keyvault.secret-cache" in result.stderr


# A vault under a public cloud's Key Vault suffix: the host names the token scope, so a cold
# process skips the unauthenticated challenge probe. The emulator's certificate covers
# *.vault.azure.net; hg reaches it under that name through its own /etc/hosts, bind-mounted in
# a private mount namespace (no DNS query, no packet off loopback).
CLOUD_HOST = "hg-keyvault-tests.vault.azure.net"


def cloud_named(bed: Bed, tmp_path: Path) -> tuple[list[str], str]:
    """The command prefix that runs a program with CLOUD_HOST mapped to 127.0.0.1, and the
    emulator's vault URL under that name."""
    hosts = tmp_path / "hosts"
    hosts.write_text(Path("/etc/hosts").read_text() + f"\n127.0.0.1 {CLOUD_HOST}\n")
    prefix = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        'mount --bind "$0" /etc/hosts && exec "$@"',
        str(hosts),
    ]
    probe = subprocess.run([*prefix, "getent", "hosts", CLOUD_HOST], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.decode().strip()}")
    port = bed.emulator.vault_url.rstrip("/").rsplit(":", 1)[1]
    return prefix, f"https://{CLOUD_HOST}:{port}/"


def run_hg(prefix: list[str], client, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [*prefix, HG, *args],
        cwd=cwd,
        env=client.env,
        capture_output=True,
        check=False,
        group=client.group,
    )
    client.outputs += [result.stdout.decode(errors="replace"), result.stderr.decode("replace")]
    return result


def test_a_vault_under_a_cloud_suffix_is_not_probed_and_a_401_still_recovers(bed, tmp_path):
    prefix, url = cloud_named(bed, tmp_path)
    # Verification on, as for any real vault: the scope must fit the host.
    client, _ = fresh_identity(
        bed, tmp_path, vault_url=url, extra="[keyvault]\nverify-challenge-resource = true\n"
    )
    clone = run_hg(prefix, client, "clone", bed.server.repo_url(), "work", cwd=client.home)
    assert clone.returncode == 0, clone.stderr
    work = client.home / "work"
    drop_cached("hg-keyvault:token:", "hg-keyvault:challenge:")
    counter = Counter(bed)
    pull = run_hg(prefix, client, "pull", cwd=work)
    assert pull.returncode == 0, pull.stderr
    # Token, authenticated GET: no unauthenticated probe (a private host's cold command takes
    # three, see test_cold_command_takes_three_requests_and_warm_ones_take_one).
    assert [(r["target"], r["status"]) for r in counter.since()] == [
        ("token", 200),
        ("vault", 200),
    ]

    # The vault refuses the token once: back to the SDK's challenge round, a fresh token.
    reader = bed.emulator.principal("reader")["client_id"]
    bed.emulator.set_faults(
        [{"target": "vault", "kind": "status", "status": 401, "count": 1, "principal": reader}]
    )
    counter.reset()
    pull = run_hg(prefix, client, "pull", cwd=work)
    assert pull.returncode == 0, pull.stderr
    assert [(r["target"], r["status"]) for r in counter.since()] == [
        ("vault", 401),
        ("token", 200),
        ("vault", 200),
    ]


def test_concurrent_cold_processes_on_a_cloud_vault_send_one_request_each(bed, tmp_path):
    prefix, url = cloud_named(bed, tmp_path)
    client, _ = fresh_identity(
        bed, tmp_path, vault_url=url, extra="[keyvault]\nverify-challenge-resource = true\n"
    )
    clone = run_hg(prefix, client, "clone", bed.server.repo_url(), "work", cwd=client.home)
    assert clone.returncode == 0, clone.stderr
    work = client.home / "work"
    # Nothing cached at all: no token, no challenge.
    drop_cached("hg-keyvault:token:", "hg-keyvault:challenge:")
    counter = Counter(bed)
    procs = [
        subprocess.Popen(
            [*prefix, HG, "pull"],
            cwd=work,
            env=client.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            group=client.group,
        )
        for _ in range(16)
    ]
    outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    # One token under the lock, one GET per process, and no probe.
    assert counter.tokens() == 1
    assert counter.count("vault") == 16
    assert all(r["status"] == 200 for r in counter.since())
