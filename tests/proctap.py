"""Records the argv and environment of every process of a test run, then runs a command.

    proctap.py OUT [--signal-hg TERM|KILL] [-- COMMAND...]

Used as ``ui.ssh`` (it then execs the real ssh) and as an hg hook: it runs
while hg holds its secrets, as hg's own child, so it sees what hg's children
see. It appends one JSON line to OUT: its own pid, the hg process it belongs
to, and, for every process it may look at, pid, ppid, name, argv and
environment. Processes it may look at: the descendants of the test runner
(``KEYVAULT_TAP_ROOT``), every process whose environment carries the test's
marker (``KEYVAULT_TAP_MARK``, e.g. chg's daemonised server) and their
descendants. With ``--signal-hg`` it then signals that hg process.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path


def _read(pid: int, name: str) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return None


def _ppid(pid: int) -> int | None:
    stat = _read(pid, "stat")
    if stat is None:
        return None
    # The name may contain spaces and parentheses: the fields follow the last ')'.
    return int(stat.rsplit(b")", 1)[1].split()[1])


def _environ(pid: int) -> dict[str, str]:
    raw = _read(pid, "environ") or b""
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def snapshot(root: int, mark: str | None) -> list[dict]:
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    parents = {pid: _ppid(pid) for pid in pids}
    seeds = {root}
    if mark:
        for pid in pids:
            if (_read(pid, "environ") or b"").find(f"KEYVAULT_TAP_MARK={mark}".encode()) >= 0:
                seeds.add(pid)

    def wanted(pid: int) -> bool:
        seen = set()
        while pid and pid not in seen:
            if pid in seeds:
                return True
            seen.add(pid)
            pid = parents.get(pid) or 0
        return False

    found = []
    for pid in pids:
        if pid == root or not wanted(pid):
            continue
        cmdline = _read(pid, "cmdline")
        if cmdline is None:
            continue
        found.append(
            {
                "pid": pid,
                "ppid": parents.get(pid),
                "comm": (_read(pid, "comm") or b"").decode(errors="replace").strip(),
                "cmdline": [a.decode(errors="replace") for a in cmdline.split(b"\0") if a],
                "environ": _environ(pid),
            }
        )
    return found


def _hg_ancestor(processes: list[dict]) -> int | None:
    by_pid = {p["pid"]: p for p in processes}
    pid = os.getppid()
    while pid in by_pid:
        proc = by_pid[pid]
        if any(Path(arg).name in ("hg", "chg") for arg in proc["cmdline"][:2]):
            return pid
        pid = proc["ppid"]
    return None


def main(argv: list[str]) -> None:
    out = Path(argv[0])
    rest = argv[1:]
    sig = None
    if rest[:1] == ["--signal-hg"]:
        sig = getattr(signal, "SIG" + rest[1])
        rest = rest[2:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    root = int(os.environ.get("KEYVAULT_TAP_ROOT", "1"))
    processes = snapshot(root, os.environ.get("KEYVAULT_TAP_MARK"))
    hg = _hg_ancestor(processes)
    with out.open("a") as f:
        f.write(json.dumps({"self": os.getpid(), "hg": hg, "processes": processes}) + "\n")
    if sig is not None and hg is not None:
        os.kill(hg, sig)
    if rest:
        os.execvp(rest[0], rest)


if __name__ == "__main__":
    main(sys.argv[1:])
