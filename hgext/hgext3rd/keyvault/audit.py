"""The audit trail: what ties each vault access to a commit and an identity.

Two places record it. Every vault request carries a User-Agent suffix naming the
tool, the repository's root name, the working directory parent's short hash and
the hg command (Key Vault's diagnostic logs record the User-Agent, the caller's
identity and the ``x-ms-client-request-id``), and the CI job when one is
detected (``ci=github-actions:<run>/<job>``...). And, when ``keyvault.audit-log``
is set, one JSON line per access is appended to that file: time, OS user,
identity ids, repository, node, command, CI job, ref, name, version, request id
and outcome, never a value.

The command and repository are captured when Mercurial dispatches a command;
the node is read only when a vault access actually happens.
"""

from __future__ import annotations

import os
import re
import sys
import time

# ``describe``'s answer, and the (command, repository) of the package's ``dispatched`` it was
# computed for (the package's dispatch wrapper sets that: one command per process, or per chg
# worker).
_described: dict | None = None
_described_for: tuple | None = None

# Patterns, not compiled regexes: compiling them at import would cost every hg command (this
# module loads with each one for its dispatch wrapper); `re` compiles them on first use.
_TOKEN_CHARS = r"[^A-Za-z0-9._+-]"  # noqa: S105 (a pattern, not a password)
# A CI job id keeps its ``system:run/job`` separators.
_CI_CHARS = r"[^A-Za-z0-9._+:/-]"


def _package():
    return sys.modules[__package__]


def capture(command, repo) -> None:
    """Set the command being run and its repository (may be None), as the package's dispatch
    wrapper does."""
    _package().dispatched = (command, repo)


def _dispatched() -> tuple[str | None, object]:
    command, repo = _package().dispatched
    if isinstance(command, bytes):
        command = command.decode("ascii", "replace")
    return command, repo


def _token(text: str | None, limit: int = 48) -> str:
    """Printable ASCII without separators, for a User-Agent comment."""
    if not text:
        return "-"
    return re.sub(_TOKEN_CHARS, "_", text)[:limit]


def _find_repo(ui, repo):
    """The command's repository, else the one the working directory is in (hg vault runs
    without one), else None."""
    if repo is not None:
        return repo
    from mercurial import cmdutil, encoding, error, hg

    root = cmdutil.findrepo(encoding.getcwd())
    if root is None:
        return None
    try:
        return hg.repository(ui, root)
    except error.RepoError:
        return None


def describe(ui) -> dict:
    """``repo`` (root path), ``repo_name``, ``node`` (working directory parent, hex) and
    ``command``; computed once per command."""
    global _described, _described_for
    current = _package().dispatched
    if _described is not None and _described_for is current:
        return _described
    from mercurial import node as nodemod

    command, repo = _dispatched()
    try:
        repo = _find_repo(ui, repo)
    except Exception:  # noqa: BLE001 - an unreadable repository must not block a credential
        repo = None
    root = name = node = None
    if repo is not None:
        root = repo.root.decode("utf-8", "surrogateescape")
        name = os.path.basename(root.rstrip("/\\"))
        try:
            node = nodemod.hex(repo.unfiltered().dirstate.p1()).decode("ascii")
        except Exception:  # noqa: BLE001 - same: report no node rather than abort
            node = None
    _described = {"repo": root, "repo_name": name, "node": node, "command": command}
    _described_for = current
    return _described


def ci_job() -> str | None:
    """``system:id`` of the CI job running this process (the core detects it), or None."""
    from . import _native

    job = _native.ci_job()
    return job["describe"] if job else None


def user_agent(ui, tool_version: str) -> str:
    """The User-Agent suffix: tool and versions, then repository, node, command and CI job."""
    from mercurial import util as hgutil

    hg_version = hgutil.version().decode("ascii", "replace")
    context = describe(ui)
    node = context["node"][:12] if context["node"] else "-"
    job = ci_job()
    ci = f"; ci={re.sub(_CI_CHARS, '_', job)[:96]}" if job else ""
    return (
        f"hg-keyvault/{_token(tool_version)} mercurial/{_token(hg_version)} "
        f"(repo={_token(context['repo_name'])}; node={node}; cmd={_token(context['command'])}{ci})"
    )


def os_user() -> tuple[str, int | None]:
    uid = os.getuid() if hasattr(os, "getuid") else None
    try:
        import pwd

        if uid is not None:
            return pwd.getpwuid(uid).pw_name, uid
    except (ImportError, KeyError):
        pass
    import getpass

    try:
        return getpass.getuser(), uid
    except Exception:  # noqa: BLE001 - no user name at all: the uid says it
        return str(uid), uid


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int(t % 1 * 1000)


def log_path(ui) -> str | None:
    from mercurial import util

    path = ui.config(b"keyvault", b"audit-log")
    if not path:
        return None
    return util.expandpath(path).decode("utf-8", "surrogateescape")


def append(path: str, entry: dict) -> None:
    """Appends one JSON line. One ``write`` of the whole line on an ``O_APPEND`` descriptor,
    under an exclusive ``flock``: concurrent hg processes never interleave lines."""
    import json

    line = (json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:  # Windows: O_APPEND alone
            pass
        written = 0
        while written < len(line):
            written += os.write(fd, line[written:])
    finally:
        os.close(fd)


def record(
    ui,
    client,
    *,
    action: str,
    ref: str,
    use: str | None = None,
    name: str | None = None,
    group: str | None = None,
    props=None,
    exc=None,
):
    """Appends the audit line of one access, if ``keyvault.audit-log`` is set. Raises
    ``error.Abort`` if it cannot: an audit trail that silently stops is worse than none."""
    path = log_path(ui)
    if path is None:
        return
    from mercurial import error

    props = props or {}
    identity: dict = {}
    if client is not None and client.selected_link() is not None:
        try:
            identity = client.identity() or {}
        except Exception:  # noqa: BLE001 - the line is still worth writing without ids
            identity = {}
    user, uid = os_user()
    context = describe(ui)
    request_id = props.get("request_id") if props else getattr(exc, "request_id", None)
    entry = {
        "time": _now(),
        "os_user": user,
        "uid": uid,
        "pid": os.getpid(),
        "provider": getattr(client, "provider", None),
        "store": _location(client),
        "credential": identity.get("link"),
        "link": identity.get("link_id"),
        "tenant_id": identity.get("tenant_id"),
        "client_id": identity.get("client_id"),
        "object_id": identity.get("object_id"),
        "repo": context["repo"],
        "node": context["node"],
        "command": context["command"],
        "ci_job": ci_job(),
        "action": action,
        "use": use,
        "group": group,
        "ref": ref,
        "name": props.get("name") or name,
        "version": props.get("version"),
        "request_id": request_id,
        "outcome": "ok" if exc is None else (getattr(exc, "kind", None) or "error"),
        "error": None if exc is None else getattr(exc, "message", str(exc)),
    }
    try:
        append(path, entry)
    except OSError as err:
        raise error.Abort(
            b"cannot append to the audit log %s: %s"
            % (path.encode("utf-8", "replace"), str(err.strerror).encode("utf-8", "replace")),
            hint=b"fix the file's directory or permissions, or unset keyvault.audit-log",
        ) from None


def _location(client) -> str | None:
    """Where the store keeps secrets (the vault URL, the keyring backend), as its info says."""
    if client is None:
        return None
    try:
        return client.info().get("location")
    except Exception:  # noqa: BLE001
        return None
