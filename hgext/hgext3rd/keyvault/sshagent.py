"""A private ``ssh-agent`` for one hg process, holding one key from the vault.

The key goes to the agent through ``ssh-add -``'s standard input: never a
file, an argument or an environment variable. The agent runs in the
foreground, with a socket in a fresh 0700 directory, and is stopped when hg's
command ends (Mercurial's exit handlers, which also run after errors and
SIGTERM/SIGHUP/SIGINT), when the Python process exits, and, should hg be
killed outright, through the kernel's parent-death signal on Linux.

That signal is cleared when a set-group-id program starts, and Debian's
ssh-agent is one (group _ssh): so hg's child is a small ``sh`` that holds the
signal and, when it gets it (or is stopped), stops the agent and waits for it.
"""

from __future__ import annotations

import atexit
import os
import select
import shutil
import signal
import subprocess
import tempfile
import typing
from dataclasses import dataclass

from mercurial import error

from . import sanitize

START_TIMEOUT = 10.0
# sun_path holds 108 bytes on Linux (104 on macOS and the BSDs), the terminating NUL included.
MAX_SOCKET_PATH = 103
ADD_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

# What the agent and ssh-add inherit: enough to run, nothing else (no Azure identity).
_KEPT_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR")


@dataclass
class Agent:
    process: subprocess.Popen
    directory: str
    socket: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        """Terminate the agent (which forgets the key) and remove its directory."""
        try:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(STOP_TIMEOUT)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


# $0 = ssh-agent, $1 = socket. Any of these signals (the parent-death one is TERM) ends the agent.
_SUPERVISOR = (
    'trap \'kill "$agent" 2>/dev/null; wait "$agent"; exit 0\' TERM HUP INT; '
    '"$0" -D -a "$1" & agent=$!; wait "$agent"'
)

_running: list[Agent] = []
_atexit_registered = False


def _program(ui, name: str) -> str:
    from mercurial.utils import procutil

    found = procutil.findexe(name.encode())
    if not found:
        raise error.Abort(
            b"keyvault: %s not found, so the SSH key from the vault cannot be used" % name.encode(),
            hint=b"install OpenSSH's client tools (Debian: openssh-client)",
        )
    return os.fsdecode(found)


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in _KEPT_ENV if k in os.environ}
    env.update(extra)
    return env


def _die_with_parent_setup():
    """A preexec function asking Linux to SIGTERM the agent when hg dies (even by SIGKILL)."""
    if not hasattr(os, "getppid") or not os.path.exists("/proc/self"):
        return None
    from mercurial import demandimport

    with demandimport.deactivated():
        import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec():
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:
            # hg died between fork and prctl: nobody would ever stop us.
            os._exit(1)

    return preexec


def stop_all() -> None:
    while _running:
        _running.pop().stop()


def _register_cleanup(ui) -> None:
    global _atexit_registered
    # After every command (also chg's forked workers, which leave with os._exit)...
    ui.atexit(stop_all)
    if not _atexit_registered:
        # ...and whatever ends the interpreter without dispatch's exit handlers.
        atexit.register(stop_all)
        _atexit_registered = True


def start(ui) -> Agent:
    """Start an empty agent for this process."""
    program = _program(ui, "ssh-agent")
    directory = tempfile.mkdtemp(prefix="hg-keyvault-agent-")
    socket_path = os.path.join(directory, "agent.sock")
    if len(os.fsencode(socket_path)) > MAX_SOCKET_PATH:
        # ssh-agent would exit at once ("path too long"): say so, not "did not start".
        shutil.rmtree(directory, ignore_errors=True)
        raise error.Abort(
            b"keyvault: cannot start ssh-agent: its socket path %s is longer than the %d bytes "
            b"a Unix socket path can hold" % (sanitize.local(socket_path), MAX_SOCKET_PATH),
            hint=b"set TMPDIR to a shorter directory (such as /tmp) for hg",
        )
    try:
        # The program is OpenSSH's ssh-agent found on PATH; the arguments are ours.
        proc = subprocess.Popen(  # noqa: S603
            ["/bin/sh", "-c", _SUPERVISOR, program, socket_path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_child_env(),
            close_fds=True,
            preexec_fn=_die_with_parent_setup(),
        )
    except OSError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise error.Abort(
            b"keyvault: cannot start ssh-agent: %s" % sanitize.local(exc.strerror or exc),
            hint=b"check that OpenSSH's ssh-agent runs on this machine",
        ) from None
    agent = Agent(process=proc, directory=directory, socket=socket_path)
    _running.append(agent)
    _register_cleanup(ui)
    # The agent prints its environment line once its socket listens.
    stdout = typing.cast("typing.IO[bytes]", proc.stdout)  # stdout=PIPE: never None
    ready, _, _ = select.select([stdout], [], [], START_TIMEOUT)
    line = stdout.readline() if ready else b""
    stdout.close()
    if not line.startswith(b"SSH_AUTH_SOCK=") or not os.path.exists(socket_path):
        exited = proc.poll()
        _running.remove(agent)
        agent.stop()
        if exited is not None:
            raise error.Abort(
                b"keyvault: ssh-agent exited with status %d before it listened" % exited,
                hint=b"check that OpenSSH's ssh-agent runs on this machine "
                b"(ssh-agent -D -a SOCKET says why)",
            )
        raise error.Abort(
            b"keyvault: ssh-agent did not start within %d s" % START_TIMEOUT,
            hint=b"check that OpenSSH's ssh-agent runs on this machine",
        )
    ui.debug(b"keyvault: started ssh-agent pid %d\n" % proc.pid)
    return agent


def add_key(ui, agent: Agent, key: bytes, describe: bytes, ref: bytes) -> None:
    """Load ``key`` into ``agent`` through ``ssh-add -``'s stdin."""
    program = _program(ui, "ssh-add")
    try:
        proc = subprocess.run(  # noqa: S603
            [program, "-q", "-"],
            input=key if key.endswith(b"\n") else key + b"\n",
            capture_output=True,
            timeout=ADD_TIMEOUT,
            # Never ask for a passphrase: there is nobody to answer in CI.
            env=_child_env(SSH_AUTH_SOCK=agent.socket, SSH_ASKPASS_REQUIRE="never"),
            close_fds=True,
        )
    except subprocess.TimeoutExpired:
        raise error.Abort(
            b"keyvault: ssh-add did not load the key of %s within %d s" % (describe, ADD_TIMEOUT),
            hint=b"check that OpenSSH's ssh-add works on this machine, and that the key has "
            b"no passphrase (hg vault set %s < KEYFILE)" % ref,
        ) from None
    if proc.returncode != 0:
        said = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = sanitize.local(said[-1] if said else "exit %d" % proc.returncode)
        raise error.Abort(
            b"keyvault: ssh-add refused the key of %s: %s" % (describe, reason),
            hint=b"store an OpenSSH private key without passphrase: hg vault set %s < KEYFILE"
            % ref,
        )
