"""A private, headless Secret Service for tests: a D-Bus session bus plus
gnome-keyring-daemon with an unlocked login keyring, both children of the test
process, stopped by pid.

    daemon = start_secret_service(tmp_path)
    env["DBUS_SESSION_BUS_ADDRESS"] = daemon.bus_address
    ...
    daemon.stop()

The login keyring's password goes to gnome-keyring-daemon on stdin (``--unlock``),
never on a command line. Its files live under ``daemon.home``.
"""

from __future__ import annotations

import os
import secrets
import select
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from processes import stop_process

READY_TIMEOUT = 20.0


@dataclass
class SecretService:
    bus_address: str
    home: Path
    bus: subprocess.Popen = field(repr=False)
    keyring: subprocess.Popen = field(repr=False)

    @property
    def pids(self) -> tuple[int, int]:
        return self.bus.pid, self.keyring.pid

    def env(self) -> dict[str, str]:
        return {"DBUS_SESSION_BUS_ADDRESS": self.bus_address}

    def stop(self) -> None:
        for proc in (self.keyring, self.bus):
            stop_process(proc, timeout=5)


def _name_has_owner(address: str, name: str) -> bool:
    out = subprocess.run(
        [
            "dbus-send",
            f"--bus={address}",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            f"string:{name}",
        ],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    return "boolean true" in out.stdout


def start_secret_service(root: Path) -> SecretService:
    root.mkdir(parents=True, exist_ok=True)
    home = root / "keyring-home"
    runtime = root / "keyring-run"
    for d in (home, runtime):
        d.mkdir(mode=0o700, exist_ok=True)
    socket = root / "bus.sock"
    bus = subprocess.Popen(
        [
            "dbus-daemon",
            "--session",
            "--nofork",
            "--nopidfile",
            "--print-address=1",
            f"--address=unix:path={socket}",
        ],
        stdout=subprocess.PIPE,
        stderr=open(root / "dbus.log", "ab"),  # noqa: SIM115 - the child keeps it
        stdin=subprocess.DEVNULL,
    )
    ready, _, _ = select.select([bus.stdout], [], [], READY_TIMEOUT)
    address = bus.stdout.readline().decode().strip() if ready else ""
    if not address:
        bus.kill()
        bus.wait()
        raise RuntimeError("dbus-daemon did not print its address")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime),
        "DBUS_SESSION_BUS_ADDRESS": address,
    }
    keyring = subprocess.Popen(
        ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=open(root / "gnome-keyring.log", "ab"),  # noqa: SIM115 - the child keeps it
        env=env,
    )
    # --unlock reads the login keyring's password from stdin until EOF.
    keyring.stdin.write(secrets.token_hex(16).encode())
    keyring.stdin.close()
    keyring.stdin = None
    service = SecretService(bus_address=address, home=home, bus=bus, keyring=keyring)
    deadline = time.monotonic() + READY_TIMEOUT
    while not _name_has_owner(address, "org.freedesktop.secrets"):
        if keyring.poll() is not None or time.monotonic() > deadline:
            service.stop()
            raise RuntimeError(
                "gnome-keyring-daemon did not take org.freedesktop.secrets: "
                + (root / "gnome-keyring.log").read_text(errors="replace")
            )
        select.select([], [], [], 0.05)
    return service
