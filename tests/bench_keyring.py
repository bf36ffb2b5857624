"""What each Linux keyring store does headless, and how long one read takes.

    .venv/bin/python tests/bench_keyring.py

Prints one table of behaviours and one of read times (a fresh process: import,
open the store, one read; and one more read in the same process). Real stores
only: a private D-Bus session bus with gnome-keyring, and the kernel's keyutils.
"""

from __future__ import annotations

import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from keyringd import start_secret_service  # noqa: E402

PY = sys.executable
ONE_READ = """
import sys, time
from hgext3rd.keyvault import _native
t0 = time.perf_counter()
v = _native.Vault.keyring(keyring=sys.argv[1], name_prefix=sys.argv[2], timeout=float(sys.argv[4]))
t1 = time.perf_counter()
try:
    v.check(sys.argv[3])
    outcome = "ok"
except _native.KeyVaultError as e:
    outcome = f"{e.kind}: {e.message}"
t2 = time.perf_counter()
try:
    v.check(sys.argv[3])
except _native.KeyVaultError:
    pass
t3 = time.perf_counter()
print(f"{(t1-t0)*1000:.1f} {(t2-t1)*1000:.1f} {(t3-t2)*1000:.1f} {outcome}")
"""


def run(keyring, prefix, ref, env, timeout=5.0):
    out = subprocess.run(
        [PY, "-c", ONE_READ, keyring, prefix, ref, str(timeout)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1:]
    fields = out.stdout.split(" ", 3)
    return [float(x) for x in fields[:3]], fields[3].strip()


def store(keyring, prefix, ref, env):
    from hgext3rd.keyvault import _native

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        _native.Vault.keyring(keyring=keyring, name_prefix=prefix).set(ref, b"bench-value")
    finally:
        os.environ.clear()
        os.environ.update(saved)


def forget(keyring, prefix, ref, env):
    from hgext3rd.keyvault import _native

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        _native.Vault.keyring(keyring=keyring, name_prefix=prefix).delete(ref)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main() -> None:
    base = {k: v for k, v in os.environ.items() if k != "DBUS_SESSION_BUS_ADDRESS"}
    ref = "secret://bench/read"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        service = start_secret_service(Path(tmp) / "ss")
        try:
            cases = [("secret-service", dict(base, **service.env())), ("keyutils", base)]
            for keyring, env in cases:
                prefix = f"b{secrets.token_hex(3)}-"
                store(keyring, prefix, ref, env)
                samples = [run(keyring, prefix, ref, env)[0] for _ in range(15)]
                forget(keyring, prefix, ref, env)
                opens, firsts, warms = zip(*samples)
                rows.append((keyring, *(statistics.median(x) for x in (opens, firsts, warms))))
        finally:
            service.stop()

        print("one read (median of 15 fresh processes, ms)")
        print(f"{'store':16} {'open':>8} {'first read':>11} {'next read':>10}")
        for keyring, o, f, w in rows:
            print(f"{keyring:16} {o:8.1f} {f:11.1f} {w:10.1f}")

        print("\nheadless behaviour")
        behaviours = []
        # No session bus at all.
        _, outcome = run("secret-service", "h-", ref, base, timeout=3)
        behaviours.append(("secret-service, no session bus", outcome))
        _, outcome = run("auto", "h-", ref, base, timeout=3)
        behaviours.append(("auto, no session bus", outcome))
        # A session bus where gnome-keyring is only D-Bus-activatable (nothing unlocked it).
        bus = subprocess.Popen(
            [
                "dbus-daemon",
                "--session",
                "--nofork",
                "--print-address=1",
                f"--address=unix:path={tmp}/act.sock",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        address = bus.stdout.readline().decode().strip()
        home = Path(tmp) / "act-home"
        home.mkdir()
        env = dict(base, DBUS_SESSION_BUS_ADDRESS=address, HOME=str(home))
        start = time.monotonic()
        _, outcome = run("secret-service", "h-", ref, env, timeout=5)
        behaviours.append(
            (f"activated gnome-keyring, read ({time.monotonic() - start:.1f} s)", outcome)
        )
        from hgext3rd.keyvault import _native

        os.environ["DBUS_SESSION_BUS_ADDRESS"] = address
        os.environ["HOME"] = str(home)
        start = time.monotonic()
        try:
            _native.Vault.keyring(keyring="secret-service", timeout=5).set(ref, b"x")
            outcome = "stored"
        except _native.KeyVaultError as e:
            outcome = f"{e.kind}: {e.message}"
        behaviours.append(
            (f"activated gnome-keyring, write ({time.monotonic() - start:.1f} s)", outcome)
        )
        # The activated daemon is ours: find its pid on our bus and stop it by pid.
        reply = subprocess.run(
            [
                "dbus-send",
                f"--bus={address}",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.GetConnectionUnixProcessID",
                "string:org.freedesktop.secrets",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if reply and reply[-1].isdigit():
            os.kill(int(reply[-1]), 15)
        bus.terminate()
        bus.wait()
        for what, outcome in behaviours:
            print(f"- {what}: {outcome}")


if __name__ == "__main__":
    main()
