"""Run a scenario on an emulated Azure host: a private network and mount namespace.

IMDS lives at the link-local address 169.254.169.254 and the product recognises an Azure VM by
its SMBIOS chassis asset tag in /sys/class/dmi/id/chassis_asset_tag; the Arc agent's key files
live in /var/opt/azcmagent/tokens/. The product reads only those fixed places, so a test that
plays such a host needs them in a namespace of its own, never on the machine itself:

    result = run_isolated(scenario, tmp_path, asset_tag=AZURE_ASSET_TAG)

forks a child that unshares its network and mount namespaces (as root), checks it really left the
machine's network namespace, brings up its own loopback with 169.254.169.254/32 on it, mounts a
tmpfs over /sys/class (with the asset tag, or without one: off Azure) and over /var/opt (with an
empty azcmagent/tokens), then calls ``scenario(*args)``. Everything the scenario starts (emulator,
nginx, gunicorn, hg) lives in that namespace; no packet to 169.254.169.254 ever leaves the
machine's own namespace. The scenario's return value comes back pickled; an exception in it is
re-raised here with its traceback.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import select
import signal
import socket
import subprocess
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

AZURE_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"
IMDS_ADDRESS = "169.254.169.254"
ARC_TOKEN_DIR = "/var/opt/azcmagent/tokens"
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
DEFAULT_TIMEOUT = 300.0

_libc = ctypes.CDLL(None, use_errno=True)


def unavailable_reason() -> str | None:
    """Why scenarios cannot run here (None when they can)."""
    if os.geteuid() != 0:
        return "network and mount namespaces need root"
    if not Path("/proc/self/ns/net").exists():
        return "no network namespaces (/proc/self/ns/net)"
    return None


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount_tmpfs(target: str) -> None:
    _check(_libc.mount(b"none", target.encode(), b"tmpfs", 0, b"mode=0755"), f"mount {target}")


def _ip(*args: str) -> str:
    return subprocess.run(
        ["ip", *args], check=True, capture_output=True, text=True, timeout=10
    ).stdout


def _enter(asset_tag: str | None) -> None:
    machine_net = os.readlink("/proc/self/ns/net")
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWNET), "unshare(CLONE_NEWNS | CLONE_NEWNET)")
    # Refuse to go on unless this process is provably in a new network namespace with nothing
    # but a loopback device: only then may 169.254.169.254 be configured and served.
    if os.readlink("/proc/self/ns/net") == machine_net:
        raise RuntimeError("still in the machine's network namespace after unshare")
    links = [line.split(":")[1].strip() for line in _ip("-o", "link").splitlines()]
    if links != ["lo"]:
        raise RuntimeError(f"the new network namespace has other links than lo: {links}")
    # Mounts below stay in this namespace (the machine's / may be shared).
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    _ip("link", "set", "lo", "up")
    _ip("addr", "add", f"{IMDS_ADDRESS}/32", "dev", "lo")
    _mount_tmpfs("/sys/class")
    if asset_tag is not None:
        dmi = Path("/sys/class/dmi/id")
        dmi.mkdir(parents=True)
        (dmi / "chassis_asset_tag").write_text(asset_tag + "\n")
    _mount_tmpfs("/var/opt")
    Path(ARC_TOKEN_DIR).mkdir(parents=True)


def run_isolated(
    scenario: Callable[..., Any],
    *args: Any,
    asset_tag: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    **kwargs: Any,
) -> Any:
    """``scenario(*args, **kwargs)`` in a fresh network + mount namespace (see the module
    docstring)."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(f"cannot emulate an Azure host: {reason}")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read_end)
        try:
            _enter(asset_tag)
            outcome = ("ok", scenario(*args, **kwargs))
        except BaseException:
            outcome = ("error", traceback.format_exc())
        try:
            data = pickle.dumps(outcome)
        except Exception:
            data = pickle.dumps(("error", traceback.format_exc()))
        with os.fdopen(write_end, "wb") as out:
            out.write(data)
        os._exit(0)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + timeout
    with os.fdopen(read_end, "rb") as pipe:
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([pipe], [], [], max(left, 0))
            if not ready:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise TimeoutError(f"the namespaced scenario took more than {timeout} s")
            chunk = os.read(pipe.fileno(), 65536)
            if not chunk:
                break
            chunks.append(chunk)
    os.waitpid(pid, 0)
    if not chunks:
        raise RuntimeError("the namespaced scenario died without a result")
    # Our own forked child wrote these bytes through a private pipe.
    status, value = pickle.loads(b"".join(chunks))  # noqa: S301
    if status == "error":
        raise AssertionError("in the namespaced scenario:\n" + value)
    return value


class ConnectionRecorder:
    """Listens on 169.254.169.254 (ports 80 and 443) inside a scenario's namespace and counts
    every connection attempt, so that a test can prove the product sent IMDS nothing."""

    def __init__(self, ports: tuple[int, ...] = (80, 443)) -> None:
        self.connections: list[tuple[int, str]] = []
        self._sockets = []
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((IMDS_ADDRESS, port))
            sock.listen(16)
            self._sockets.append(sock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select(self._sockets, [], [], 0.1)
            for sock in ready:
                conn, peer = sock.accept()
                self.connections.append((sock.getsockname()[1], peer[0]))
                conn.close()

    def stop(self) -> list[tuple[int, str]]:
        """Stops listening and returns the connections seen (port, peer address)."""
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self._sockets:
            # Connections the kernel completed after the last poll are in the backlog: count them.
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while True:
                    conn, peer = sock.accept()
                    self.connections.append((sock.getsockname()[1], peer[0]))
                    conn.close()
            sock.close()
        return list(self.connections)
