"""``hg vault``: what identity is used, whether the vault answers, the state of
every configured secret; and storing a secret. Never a value."""

from __future__ import annotations

import time

from mercurial import cmdutil, error, pycompat, registrar
from mercurial.i18n import _

from . import config

cmdtable = {}
command = registrar.command(cmdtable)

# Days before expiry from which a secret is reported as "expiring soon".
EXPIRY_WARNING_DAYS = 14


def _b(text) -> bytes:
    return b"" if text is None else str(text).encode("utf-8", "replace")


def _opt(text) -> bytes | None:
    """Bytes for the formatter's data, keeping None as JSON null."""
    return None if text is None else _b(text)


def _date(epoch) -> bytes:
    if epoch is None:
        return b"never"
    return _b(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch)))


def _iso(epoch) -> str | None:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _state(props, now) -> str:
    expires = props.get("expires")
    if expires is not None and expires <= now:
        return "expired"
    if expires is not None and expires - now < EXPIRY_WARNING_DAYS * 86400:
        return "expiring soon"
    return "ok"


def _secret_state(outcome, native):
    """(state, properties, error) of one group's secret from ``check_many``, never its value."""
    if not isinstance(outcome, Exception):
        return _state(outcome, time.time()), outcome, None
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


READABLE = ("ok", "expiring soon")


def vault_status(ui, **opts):
    from . import session

    native = session.native_module()
    settings = config.vault_settings(ui)
    groups = config.vault_groups(ui)
    client = session.vault(ui)

    fm = ui.formatter(b"vault", pycompat.byteskwargs(opts))
    fm.startitem()
    fm.write(b"provider", b"provider:   %s\n", b"azure")
    fm.write(b"url", b"vault:      %s\n", _b(settings.url))

    start = time.monotonic()
    answered, failure = True, None
    try:
        client.ping()
    except (native.UnreachableError, native.VaultTimeoutError) as exc:
        answered, failure = False, exc
    except native.KeyVaultError as exc:
        failure = exc
    elapsed_ms = int((time.monotonic() - start) * 1000)

    identity = {}
    if answered and not isinstance(failure, native.UnauthenticatedError):
        try:
            identity = client.identity()
        except native.KeyVaultError:
            identity = {}
    fm.write(b"credential", b"credential: %s\n", _b(identity.get("link") or settings.credential))
    fm.data(
        tenant_id=_opt(identity.get("tenant_id")),
        client_id=_opt(identity.get("client_id")),
        object_id=_opt(identity.get("object_id")),
    )
    if identity:
        fm.plain(
            b"identity:   tenant %s, client %s, object %s\n"
            % tuple(_b(identity.get(k) or "?") for k in ("tenant_id", "client_id", "object_id"))
        )
    fm.data(answered=answered, elapsed_ms=elapsed_ms)
    fm.plain(b"answered:   %s in %d ms\n" % (b"yes" if answered else b"no", elapsed_ms))
    _write_error(fm, failure, b"")
    caches = client.cache_status()
    _write_caches(fm, caches)

    if answered:
        # Several at a time (bounded in the core): 200 groups, not 200 round trips in a row.
        outcomes = client.check_many([g.ref for g in groups])
    else:
        # The vault did not answer: asking again per secret would only wait again.
        outcomes = [None] * len(groups)
    unreadable = 0
    with fm.nested(b"secrets") as sub:
        for group, outcome in zip(groups, outcomes):
            if outcome is None:
                state, props, exc = "unknown", {}, None
            else:
                state, props, exc = _secret_state(outcome, native)
            if state not in READABLE:
                unreadable += 1
            sub.startitem()
            sub.write(b"group state", b"[auth] %s: %s\n", _b(group.name), _b(state))
            sub.write(b"prefix", b"  prefix:   %s\n", _b(group.prefix))
            sub.write(b"username", b"  username: %s\n", _b(group.username or ""))
            sub.write(b"ref", b"  ref:      %s\n", _b(group.ref))
            sub.write(b"name", b"  name:     %s\n", _b(_secret_name(native, group, settings)))
            sub.data(version=_opt(props.get("version")), expires=_opt(_iso(props.get("expires"))))
            sub.plain(b"  version:  %s\n" % _b(props.get("version") or "-"))
            sub.plain(b"  expires:  %s\n" % _date(props.get("expires")))
            if caches.get("secret_cache_ttl"):
                left = _cached_for(client, group, native)
                sub.data(cached_for=left)
                sub.plain(
                    b"  cached:   %s\n"
                    % (b"no" if left is None else b"yes, %d s left in the secret cache" % left)
                )
            _write_error(sub, exc, b"  ")
    if not groups:
        fm.plain(_(b"no [auth] group has a vault key\n"))
    fm.end()
    return 1 if unreadable or not answered else 0


def _write_caches(fm, caches) -> None:
    """Whether the token came from the token cache, and whether the secret cache is on."""
    store = caches.get("token_cache")
    source = caches.get("token_source")
    until = caches.get("token_fresh_until")
    fm.data(
        token_cache=_opt(store),
        token_source=_opt(source),
        token_fresh_until=_opt(_iso(until)),
    )
    where = {"kernel-keyring": b"kernel keyring", "process": b"this process only"}
    if store is None:
        line = b"off"
    elif source == "cache":
        line = b"%s, token from the cache (fresh until %s)" % (where[store], _date(until))
    elif source == "fetched":
        line = b"%s, token fetched now (cached until %s)" % (where[store], _date(until))
    else:
        line = b"%s, no token used" % where[store]
    fm.plain(b"token cache: %s\n" % line)
    ttl = caches.get("secret_cache_ttl")
    unavailable = caches.get("secret_cache_unavailable")
    fm.data(secret_cache_ttl=ttl, secret_cache_unavailable=unavailable)
    if ttl:
        fm.plain(b"secret cache: kernel keyring, values kept %d s\n" % ttl)
    elif unavailable:
        fm.plain(b"secret cache: unavailable (no kernel keyring here), values are not cached\n")


def _cached_for(client, group, native):
    try:
        left = client.cached_for(group.ref)
    except native.KeyVaultError:
        return None
    return None if left is None else int(left)


def _write_error(fm, exc, indent: bytes) -> None:
    """The error's kind, message and hint as data, and as lines when there is one."""
    fm.data(
        error_kind=_opt(getattr(exc, "kind", None)),
        error=_opt(getattr(exc, "message", None)),
        hint=_opt(getattr(exc, "hint", None)),
    )
    if exc is None:
        return
    fm.plain(b"%serror:    %s\n" % (indent, _b(exc.message)))
    if exc.hint:
        fm.plain(b"%shint:     %s\n" % (indent, _b(exc.hint)))


def _secret_name(native, group, settings) -> str:
    try:
        return native.secret_name(group.ref, settings.name_prefix)
    except native.KeyVaultError:
        return "?"


def _read_value(ui) -> bytes:
    """The new value: from stdin, or a hidden prompt on a terminal. Never argv."""
    if ui.interactive() and ui._isatty(ui.fin):
        value = ui.getpass(_(b"value (hidden): "))
        if value is None:
            raise error.Abort(_(b"no value given"))
        return value
    value = ui.fin.read()
    # `echo secret | hg vault set REF` should store "secret", not "secret\n".
    if value.endswith(b"\r\n"):
        value = value[:-2]
    elif value.endswith(b"\n"):
        value = value[:-1]
    return value


def vault_set(ui, ref, **opts):
    from . import session

    native = session.native_module()
    client = session.vault(ui)
    value = _read_value(ui)
    if not value:
        raise error.Abort(
            _(b"refusing to store an empty value for %s") % _b(ref),
            hint=_(b"pipe the value on stdin: printf '%s' \"$VALUE\" | hg vault set REF"),
        )
    try:
        props = client.set(ref, value)
    except native.KeyVaultError as exc:
        raise session.abort_for(exc, ref) from None
    finally:
        del value
    fm = ui.formatter(b"vault", pycompat.byteskwargs(opts))
    fm.startitem()
    fm.write(
        b"ref name version",
        b"stored %s as %s, version %s\n",
        _b(ref),
        _b(props.get("name")),
        _b(props.get("version")),
    )
    fm.end()
    return 0


@command(
    b"vault",
    cmdutil.formatteropts,
    _(b"[status | set REF]"),
    helpcategory=command.CATEGORY_MISC,
    norepo=True,
)
def vault(ui, *args, **opts):
    """show the vault's state, or store a secret in it

    ``hg vault`` (or ``hg vault status``) shows the vault, the credential and
    identity used, whether the vault answered and how fast, and the state of
    the secret of every ``[auth]`` group with a ``vault`` key: ok, expiring
    soon, missing, forbidden, disabled, expired. It never shows a value. It
    exits 1 when any configured secret cannot be read, so a CI job can run it
    as a preflight.

    ``hg vault set REF`` stores the value read from standard input (or typed at
    a hidden prompt) under REF, as a new version, and prints that version.

    Returns 0 on success, 1 if a configured secret cannot be read.
    """
    action, rest = (args[0], args[1:]) if args else (b"status", ())
    if action == b"status" and not rest:
        return vault_status(ui, **opts)
    if action == b"set" and len(rest) == 1:
        return vault_set(ui, rest[0].decode("utf-8", "surrogateescape"), **opts)
    raise error.CommandError(b"vault", _(b"invalid arguments"))
