"""Stopping a server process the tests started: by its pid, never by name."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def stop_process(proc: subprocess.Popen | None, *, timeout: float = 10) -> None:
    """SIGTERM ``proc`` by pid and wait; SIGKILL it if it has not exited within ``timeout``
    seconds. Closes its pipes. Idempotent: a process that has exited is only reaped."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream:
            stream.close()
