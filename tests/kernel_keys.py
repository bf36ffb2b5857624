"""Read the kernel keys that hg-keyvault's caches write (Linux keyutils), for tests.

``/proc/keys`` lists the keys this user may view (id, timeout, permissions,
description); ``keyctl(KEYCTL_READ)`` reads a payload and ``keyctl(KEYCTL_INVALIDATE)``
removes a key. Standard library only (ctypes).
"""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
from dataclasses import dataclass

# keyctl(2)'s syscall number per architecture.
_SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}
_KEYCTL_READ = 11
_KEYCTL_INVALIDATE = 21
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class KernelKey:
    id: int
    timeout: str
    perm: int
    uid: int
    # The creating process's group (fsgid): tests run their hg under a group of their own
    # (bed.Client.group) to tell their keys from everyone else's in the shared user keyring.
    gid: int
    type: str
    description: str

    @property
    def group_or_other_perms(self) -> int:
        """The permission bits granted to the key's group and to everyone else."""
        return self.perm & 0x0000FFFF


def available() -> bool:
    return platform.machine() in _SYS_KEYCTL and os.path.exists("/proc/keys")


def private_group() -> int | None:
    """A group id no other live process runs as (derived from this pid), for the hg processes
    of one test module: the keys they make carry it (``KernelKey.gid``), so the module can find
    and remove its own keys while other test processes, or other builds of the same uid, write
    theirs into the same user keyring. None where this process may not change its group."""
    gid = 2_000_000_000 + os.getpid()
    try:
        probe = subprocess.run(["true"], group=gid, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return gid if probe.returncode == 0 else None


def ours(prefix: str = "hg-keyvault:") -> list[KernelKey]:
    """Keys whose description starts with ``prefix``."""
    found = []
    with open("/proc/keys") as f:
        for line in f:
            parts = line.split(None, 8)
            if len(parts) < 9:
                continue
            ident, _flags, _usage, timeout, perm, uid, gid, kind, rest = parts
            description = rest.split(":", 1)[0] if kind != "user" else rest.rsplit(":", 1)[0]
            if description.startswith(prefix):
                key = KernelKey(
                    int(ident, 16), timeout, int(perm, 16), int(uid), int(gid), kind, description
                )
                found.append(key)
    return found


def _keyctl(*args) -> int:
    number = _SYS_KEYCTL[platform.machine()]
    result = _libc.syscall(ctypes.c_long(number), *args)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def read(key: KernelKey) -> bytes:
    buf = ctypes.create_string_buffer(65536)
    n = _keyctl(ctypes.c_long(_KEYCTL_READ), ctypes.c_long(key.id), buf, ctypes.c_long(len(buf)))
    return buf.raw[:n]


def remove(key: KernelKey) -> None:
    try:
        _keyctl(ctypes.c_long(_KEYCTL_INVALIDATE), ctypes.c_long(key.id))
    except OSError:
        pass
