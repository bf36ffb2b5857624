"""``hg vault set REF``: store a new version of a secret, read from standard input or a
hidden prompt (never argv), with an optional expiry and tags. Loaded only when that
subcommand runs."""

from __future__ import annotations

import time

from mercurial import error, pycompat
from mercurial.i18n import _

from .output import b, date, iso, opt, user_tags


def _read_value(ui) -> bytes:
    """The new value: from stdin, or a hidden prompt on a terminal. Never argv."""
    if ui.interactive() and ui._isatty(ui.fin):
        value = ui.getpass(_(b"value (hidden): "))
        if value is None:
            raise error.Abort(
                _(b"no value given"),
                hint=_(b"type the value at the prompt, or pipe it on standard input"),
            )
        return value
    value = ui.fin.read()
    # `echo secret | hg vault set REF` should store "secret", not "secret\n".
    if value.endswith(b"\r\n"):
        value = value[:-2]
    elif value.endswith(b"\n"):
        value = value[:-1]
    return value


def parse_expires(text: bytes, now: float | None = None) -> float | None:
    """``--expires``: a number of days from now, or a UTC date ``YYYY-MM-DD[THH:MM[:SS]]``."""
    import calendar

    now = time.time() if now is None else now
    raw = text.decode("ascii", "replace").strip()
    if not raw:
        return None
    try:
        days = float(raw)
    except ValueError:
        days = None
    if days is not None:
        if not days > 0:
            raise error.InputError(
                _(b"--expires: %s is not a positive number of days") % text,
                hint=_(b"give a number of days, e.g. --expires 90, or a date"),
            )
        return now + days * 86400
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return float(calendar.timegm(time.strptime(raw.rstrip("Z"), fmt)))
        except ValueError:
            continue
    raise error.InputError(
        _(b"--expires: '%s' is neither a number of days nor a date") % text,
        hint=_(b"use e.g. --expires 90 or --expires 2027-01-31 (UTC)"),
    )


def parse_tags(values) -> dict[str, str]:
    """``--tag KEY=VALUE`` (repeatable)."""
    tags = {}
    for item in values:
        key, sep, value = item.decode("utf-8", "replace").partition("=")
        key = key.strip()
        if not sep or not key:
            raise error.InputError(
                _(b"--tag: '%s' is not KEY=VALUE") % item,
                hint=_(b"e.g. --tag owner=ci-team"),
            )
        if key == "hg-keyvault-ref":
            raise error.InputError(
                _(b"--tag: hg-keyvault-ref is set by hg-keyvault itself"),
                hint=_(b"choose another tag name"),
            )
        tags[key] = value
    return tags


def run(ui, ref, expires=b"", tag=(), **opts):
    from . import audit, session

    native = session.native_module()
    expires_at = parse_expires(expires) if expires else None
    tags = parse_tags(tag or ())
    client = session.vault(ui)
    value = _read_value(ui)
    if not value:
        raise error.Abort(
            _(b"refusing to store an empty value for %s") % b(ref),
            hint=_(b"pipe the value on stdin: printf '%s' \"$VALUE\" | hg vault set REF"),
        )
    name = session.secret_name(client, ref)
    try:
        props = client.set(ref, value, expires=expires_at, tags=tags or None)
    except native.KeyVaultError as exc:
        audit.record(ui, client, action="set", ref=ref, name=name, exc=exc)
        raise session.abort_for(exc, ref) from None
    finally:
        del value
    audit.record(ui, client, action="set", ref=ref, name=name, props=props)
    fm = ui.formatter(b"vault", pycompat.byteskwargs(opts))
    fm.startitem()
    fm.write(
        b"ref name version",
        b"stored %s as %s, version %s\n",
        b(ref),
        b(props.get("name")),
        b(props.get("version")),
    )
    fm.data(
        provider=b(client.provider),
        expires=opt(iso(props.get("expires"))),
        tags=user_tags(props),
    )
    if props.get("expires") is not None:
        fm.plain(b"expires %s\n" % date(props.get("expires")))
    fm.end()
    return 0
