"""Helpers shared by the ``hg vault`` subcommands: text for the formatter,
dates, secret states (as the core computed them) and error fields. Never a value."""

from __future__ import annotations

import time
from typing import NamedTuple

from . import sanitize


def b(text, keep_newlines: bool = False) -> bytes:
    # Names, refs, versions and messages may come from a vault or a config file: printable only.
    return b"" if text is None else sanitize.local(text, keep_newlines=keep_newlines)


def opt(text) -> bytes | None:
    """Bytes for the formatter's data, keeping None as JSON null."""
    return None if text is None else b(text, keep_newlines=True)


def date(epoch) -> bytes:
    if epoch is None:
        return b"never"
    return b(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch)))


def iso(epoch) -> str | None:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class Outcome(NamedTuple):
    """What reading one secret's state found; the state itself is the core's."""

    # ok, expiring soon, expired, not yet valid, disabled (the core's states); missing,
    # forbidden, error (the read failed); unknown (the store did not answer).
    state: str
    readable: bool
    props: dict
    error: Exception | None


UNKNOWN = Outcome("unknown", False, {}, None)


def secret_state(client, ref: str, native) -> Outcome:
    """The state of a secret, read through the core (which drops the value on its side),
    never the value."""
    try:
        outcome = client.check(ref)
    except native.KeyVaultError as exc:
        outcome = exc
    return outcome_state(outcome, native)


def outcome_state(outcome, native) -> Outcome:
    """The :class:`Outcome` of one result of ``Vault.check_many``: the properties of a
    readable secret, or the exception reading it raised. Never the value."""
    if not isinstance(outcome, Exception):
        return Outcome(outcome["state"], bool(outcome["readable"]), outcome, None)
    if not isinstance(outcome, native.KeyVaultError):
        raise outcome
    # A secret the core refused carries its state (disabled, expired, not yet valid).
    state = getattr(outcome, "state", None)
    if state is None:
        if isinstance(outcome, native.NotFoundError):
            state = "missing"
        elif isinstance(outcome, native.ForbiddenError):
            state = "forbidden"
        else:
            state = "error"
    return Outcome(state, False, {}, outcome)


def write_error(fm, exc, indent: bytes) -> None:
    """The error's kind, message and hint as data, and as lines when there is one."""
    fm.data(
        error_kind=opt(getattr(exc, "kind", None)),
        error=opt(getattr(exc, "message", None)),
        hint=opt(getattr(exc, "hint", None)),
    )
    if exc is None:
        return
    fm.plain(b"%serror:    %s\n" % (indent, b(exc.message, keep_newlines=True)))
    if exc.hint:
        fm.plain(b"%shint:     %s\n" % (indent, b(exc.hint, keep_newlines=True)))


def user_tags(props) -> dict[bytes, bytes]:
    """Tags an operator set (without the one holding the ref), as formatter data."""
    tags = props.get("tags") or {}
    return {b(k): b(v) for k, v in sorted(tags.items()) if k != "hg-keyvault-ref"}


def tags_text(props) -> bytes:
    tags = user_tags(props)
    return b", ".join(b"%s=%s" % kv for kv in tags.items()) or b"-"
