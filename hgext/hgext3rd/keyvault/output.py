"""Helpers shared by the ``hg vault`` subcommands: text for the formatter,
dates, secret states and error fields. Never a value."""

from __future__ import annotations

import time

from . import sanitize

# The states a secret can be in, as every subcommand reports them.
READABLE = ("ok", "expiring soon")


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


def state_of(props, warning_days: float, now: float | None = None) -> str:
    """ok, expiring soon, expired or disabled, from a secret's properties."""
    now = time.time() if now is None else now
    if props.get("enabled") is False:
        return "disabled"
    expires = props.get("expires")
    if expires is not None and expires <= now:
        return "expired"
    if expires is not None and expires - now < warning_days * 86400:
        return "expiring soon"
    return "ok"


def secret_state(client, ref: str, native, warning_days: float):
    """(state, properties, error) of a secret, read through the core (which drops the value
    on its side), never the value."""
    try:
        outcome = client.check(ref)
    except native.KeyVaultError as exc:
        outcome = exc
    return outcome_state(outcome, native, warning_days)


def outcome_state(outcome, native, warning_days: float):
    """(state, properties, error) from one result of ``Vault.check_many``: the properties of a
    readable secret, or the exception reading it raised. Never the value."""
    if not isinstance(outcome, Exception):
        return state_of(outcome, warning_days), outcome, None
    for kind, state in (
        (native.NotFoundError, "missing"),
        (native.ForbiddenError, "forbidden"),
        (native.DisabledError, "disabled"),
        (native.ExpiredError, "expired"),
        (native.KeyVaultError, "error"),
    ):
        if isinstance(outcome, kind):
            return state, {}, outcome
    raise outcome


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
