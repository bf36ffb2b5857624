"""The native module from Python, against the emulator, through the real core and Azure SDK."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from emulator import Emulator, start_emulator
from hgext3rd.keyvault import _native


@pytest.fixture(scope="module")
def emulator(tmp_path_factory) -> Emulator:
    emu = start_emulator(tmp_path_factory.mktemp("native"))
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(autouse=True)
def _no_faults(emulator):
    emulator.clear_faults()
    yield
    emulator.clear_faults()


def principal_env(emulator: Emulator, name: str) -> dict[str, str]:
    p = emulator.principal(name)
    return {
        "AZURE_TENANT_ID": emulator.tenant_id,
        "AZURE_CLIENT_ID": p["client_id"],
        "AZURE_CLIENT_SECRET": p["client_secret"],
        "AZURE_AUTHORITY_HOST": emulator.authority_host,
    }


@pytest.fixture
def as_principal(emulator, monkeypatch):
    def use(name: str) -> None:
        for key, value in principal_env(emulator, name).items():
            monkeypatch.setenv(key, value)

    return use


def vault(emulator: Emulator, **options) -> _native.Vault:
    options.setdefault("credential", "environment")
    return _native.Vault(
        emulator.vault_url,
        cacerts=emulator.ca_file,
        verify_challenge_resource=False,
        **options,
    )


def test_set_then_get_round_trips_bytes_with_the_environment_link(emulator, as_principal):
    as_principal("officer")
    v = vault(emulator)
    value = b"s3cr\xc3\xa9t \x00 bytes"
    stored = v.set("secret://native/round-trip", value)
    got, props = v.get("secret://native/round-trip")
    assert got == value
    assert props["version"] == stored["version"]
    assert props["ref"] == "secret://native/round-trip"
    assert props["name"] == _native.secret_name("secret://native/round-trip")
    identity = v.identity()
    assert identity["link"] == "environment"
    assert identity["client_id"] == emulator.principal("officer")["client_id"]
    assert identity["object_id"] == emulator.principal("officer")["object_id"]
    assert identity["tenant_id"] == emulator.tenant_id


def test_setting_again_makes_a_new_current_version(emulator, as_principal):
    as_principal("officer")
    v = vault(emulator)
    first = v.set("secret://native/rotate", b"one")
    second = v.set("secret://native/rotate", b"two")
    assert first["version"] != second["version"]
    assert v.get("secret://native/rotate")[0] == b"two"
    assert v.get("secret://native/rotate", first["version"])[0] == b"one"
    assert [p["version"] for p in v.versions("secret://native/rotate")][-2:] == [
        first["version"],
        second["version"],
    ]


def test_error_kinds_map_to_exception_classes_with_message_and_hint(emulator, as_principal):
    as_principal("reader")
    v = vault(emulator)
    with pytest.raises(_native.NotFoundError) as missing:
        v.get("secret://native/never-set")
    assert missing.value.kind == "not-found"
    assert "secret://native/never-set" in missing.value.message
    assert "hg vault set" in missing.value.hint

    with pytest.raises(_native.ForbiddenError) as forbidden:
        v.set("secret://native/reader-cannot-write", b"x")
    assert "Key Vault Secrets Officer" in forbidden.value.hint
    assert isinstance(forbidden.value, _native.KeyVaultError)

    with pytest.raises(_native.BadRefError):
        v.get("secret://native/../escape")
    with pytest.raises(_native.ConfigError):
        _native.Vault("http://not-https.example/")
    with pytest.raises(_native.ConfigError):
        _native.Vault(emulator.vault_url, credential="bogus")


def test_the_gil_is_released_while_the_vault_answers(emulator, as_principal):
    as_principal("officer")
    v = vault(emulator)
    v.set("secret://native/slow", b"x")
    emulator.set_faults([{"target": "vault", "kind": "latency", "latency_ms": 800}])
    ticks = 0
    stop = threading.Event()

    def tick():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.01)

    thread = threading.Thread(target=tick)
    thread.start()
    try:
        v.get("secret://native/slow")
    finally:
        stop.set()
        thread.join()
    # Holding the GIL for the 800 ms wait would have frozen the ticker at one tick or so.
    assert ticks > 10


def test_a_fresh_process_gets_a_secret(emulator, as_principal):
    as_principal("officer")
    vault(emulator).set("secret://native/fresh", b"fresh-value")

    def fresh_process(token_cache: bool) -> list[str]:
        code = (
            "from hgext3rd.keyvault import _native\n"
            f"v = _native.Vault({emulator.vault_url!r}, cacerts={emulator.ca_file!r},"
            f" verify_challenge_resource=False, token_cache={token_cache!r})\n"
            "value, props = v.get('secret://native/fresh')\n"
            "assert value == b'fresh-value'\n"
            "print(props['version'])\n"
        )
        env = {**os.environ, **principal_env(emulator, "officer")}
        before = len(emulator.requests())
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
        )
        assert proc.returncode == 0, proc.stderr
        assert b"fresh-value".decode() not in proc.stdout + proc.stderr
        return [r["target"] for r in emulator.requests()[before:]]

    # Challenge probe, token, authenticated GET: no discovery round trips.
    assert fresh_process(token_cache=False) == ["vault", "token", "vault"]
    assert fresh_process(token_cache=True) == ["vault", "token", "vault"]
    # The token (and the challenge's scope) the last process cached serves the next: one GET.
    assert fresh_process(token_cache=True) == ["vault"]


def test_a_vault_used_before_a_fork_reads_again_in_the_child(emulator, as_principal):
    # What chg's forking server would do to a Vault it had used: the child must not touch the
    # parent's runtime or connection, and the parent's must still work after the child ran.
    as_principal("officer")
    vault(emulator).set("secret://native/fork", b"across-fork")
    code = (
        "import os\n"
        "from hgext3rd.keyvault import _native\n"
        f"v = _native.Vault({emulator.vault_url!r}, cacerts={emulator.ca_file!r},"
        " credential='environment', verify_challenge_resource=False, token_cache=False)\n"
        "assert v.get('secret://native/fork')[0] == b'across-fork'\n"
        "print('parent', flush=True)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    ok = v.get('secret://native/fork')[0] == b'across-fork'\n"
        "    print('child', flush=True)\n"
        "    os._exit(0 if ok else 1)\n"
        "assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0\n"
        "assert v.get('secret://native/fork')[0] == b'across-fork'\n"
        "print('parent again', flush=True)\n"
    )
    env = {**os.environ, **principal_env(emulator, "officer")}
    before = len(emulator.requests())
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n") == ["parent", "child", "parent again", ""]
    targets = [r["target"] for r in emulator.requests()[before:]]
    # The parent: probe, token, GET. The child, with no token cache to share: its own probe,
    # token and GET (nothing inherited). The parent again: one GET with the token it holds.
    assert targets == ["vault", "token", "vault"] * 2 + ["vault"]
