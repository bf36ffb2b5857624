"""``hg vault``: the store in use and the state of every configured secret
(status), and the operator's subcommands (set, list, forget, check, migrate,
each in its own module). None ever prints a value, except ``check --reveal``
on a terminal."""

from __future__ import annotations

import time

from mercurial import cmdutil, error, pycompat, registrar
from mercurial.i18n import _

from . import config
from .output import UNKNOWN, b, date, iso, opt, outcome_state, user_tags, write_error

cmdtable: dict = {}
command = registrar.command(cmdtable)

# Which options each subcommand takes; any other is a usage error.
_OPTIONS = {
    b"status": set(),
    b"set": {"expires", "tag"},
    b"list": set(),
    b"forget": {"yes"},
    b"check": {"reveal"},
    b"migrate": {"from", "to", "dry_run", "remove_source"},
}


def vault_status(ui, **opts):
    from . import audit, session

    native = session.native_module()
    settings = config.vault_settings(ui)
    groups = config.vault_groups(ui)
    if not groups and settings.url is None and config.token_groups(ui):
        return _token_status(ui, native, opts)
    client = session.vault(ui)
    info = client.info()

    fm = ui.formatter(b"vault", pycompat.byteskwargs(opts))
    fm.startitem()
    # The core's version is the package's (one Cargo workspace version), and it is loaded already.
    fm.write(b"extension_version", b"extension:  hg-keyvault %s\n", b(native.__version__))
    fm.write(b"provider", b"provider:   %s\n", b(info["provider"]))
    fm.data(url=opt(client.url), keyring=opt(None), keyring_detail=opt(None))
    if client.provider == "azure":
        fm.plain(b"vault:      %s\n" % b(client.url))
    else:
        fm.data(keyring=opt(info["location"]), keyring_detail=opt(info["detail"]))
        fm.plain(b"keyring:    %s\n" % b(info["location"]))
        if info["detail"]:
            fm.plain(b"            (%s)\n" % b(info["detail"]))
    user, uid = audit.os_user()
    fm.write(b"os_user", b"os user:    %s\n", b(user))

    start = time.monotonic()
    answered, failure = True, None
    try:
        client.ping()
    except (native.UnreachableError, native.VaultTimeoutError) as exc:
        answered, failure = False, exc
    except native.KeyVaultError as exc:
        failure = exc
    elapsed_ms = int((time.monotonic() - start) * 1000)
    # No identity applies: the core failed before sending anything, so the vault was not asked.
    asked = failure is None or client.identity_applies()
    if not asked:
        answered = False

    identity: dict = {}
    if answered and not isinstance(failure, native.UnauthenticatedError):
        try:
            identity = dict(client.identity() or {})
        except native.KeyVaultError:
            identity = {}
    credential = identity.get("link") or (settings.credential if client.url else None)
    fm.data(credential=opt(credential))
    if client.provider == "azure":
        fm.plain(b"credential: %s\n" % b(credential))
    # Which link answered and why it was chosen: "managed identity (Azure VM: SMBIOS asset tag)".
    fm.data(link=opt(identity.get("link_id")), via=opt(identity.get("via")))
    if identity.get("via"):
        fm.plain(b"via:        %s\n" % b(identity["via"]))
    job = audit.ci_job()
    fm.data(ci_job=opt(job))
    if job:
        fm.plain(b"ci job:     %s\n" % b(job))
    fm.data(
        tenant_id=opt(identity.get("tenant_id")),
        client_id=opt(identity.get("client_id")),
        object_id=opt(identity.get("object_id")),
    )
    if identity:
        fm.plain(
            b"identity:   tenant %s, client %s, object %s\n"
            % tuple(b(identity.get(k) or "?") for k in ("tenant_id", "client_id", "object_id"))
        )
    fm.data(answered=answered, elapsed_ms=elapsed_ms)
    fm.data(asked=asked)
    if asked:
        fm.plain(b"answered:   %s in %d ms\n" % (b"yes" if answered else b"no", elapsed_ms))
    else:
        fm.plain(b"answered:   not asked: no identity applies\n")
    write_error(fm, failure, b"")
    caches = client.cache_status()
    if client.provider == "azure":
        _write_caches(fm, caches)

    outcomes: list
    if answered:
        # Several at a time (bounded in the core): 200 groups, not 200 round trips in a row.
        outcomes = client.check_many([g.ref for g in groups])
    else:
        # The store did not answer: asking again per secret would only wait again.
        outcomes = [None] * len(groups)
    unreadable = 0
    with fm.nested(b"secrets") as sub:
        for group, outcome in zip(groups, outcomes):
            name = session.secret_name(group.ref, settings)
            found = UNKNOWN if outcome is None else outcome_state(outcome, native)
            state, props, failed = found.state, found.props, found.error
            if outcome is not None:
                audit.record(
                    ui,
                    client,
                    action="check",
                    ref=group.ref,
                    name=name,
                    group=group.name,
                    props=props,
                    exc=failed,
                )
            if not found.readable:
                unreadable += 1
            sub.startitem()
            sub.write(b"group state", b"[auth] %s: %s\n", b(group.name), b(state))
            sub.write(b"prefix", b"  prefix:   %s\n", b(group.prefix))
            sub.write(b"username", b"  username: %s\n", b(group.username or ""))
            sub.write(b"ref", b"  ref:      %s\n", b(group.ref))
            sub.write(b"name", b"  name:     %s\n", b(name or "?"))
            sub.data(
                version=opt(props.get("version")),
                expires=opt(iso(props.get("expires"))),
                tags=user_tags(props),
            )
            sub.plain(b"  version:  %s\n" % b(props.get("version") or "-"))
            sub.plain(b"  expires:  %s\n" % date(props.get("expires")))
            if caches.get("secret_cache_ttl"):
                left = _cached_for(client, group, native)
                sub.data(cached_for=left)
                sub.plain(
                    b"  cached:   %s\n"
                    % (b"no" if left is None else b"yes, %d s left in the secret cache" % left)
                )
            write_error(sub, failed, b"  ")
    if not groups:
        fm.plain(_(b"no [auth] group has a vault key\n"))
    from . import status_tokens

    # Token groups need no vault: their tokens come from the identity alone.
    no_token = status_tokens.write(ui, fm)
    fm.end()
    return 1 if unreadable or not answered or no_token else 0


def _token_status(ui, native, opts) -> int:
    """``hg vault`` with token groups only: no store to ask, only the identity's tokens."""
    from . import status_tokens

    fm = ui.formatter(b"vault", pycompat.byteskwargs(opts))
    fm.startitem()
    fm.write(b"extension_version", b"extension:  hg-keyvault %s\n", b(native.__version__))
    fm.data(provider=None)
    fm.plain(b"vault:      none (token groups only)\n")
    no_token = status_tokens.write(ui, fm)
    fm.end()
    return 1 if no_token else 0


def _write_caches(fm, caches) -> None:
    """Whether the token came from the token cache, and whether the secret cache is on."""
    store = caches.get("token_cache")
    source = caches.get("token_source")
    until = caches.get("token_fresh_until")
    fm.data(
        token_cache=opt(store),
        token_source=opt(source),
        token_fresh_until=opt(iso(until)),
    )
    where = {"kernel-keyring": b"kernel keyring", "process": b"this process only"}
    if store is None:
        line = b"off"
    elif source == "cache":
        line = b"%s, token from the cache (fresh until %s)" % (where[store], date(until))
    elif source == "fetched":
        line = b"%s, token fetched now (cached until %s)" % (where[store], date(until))
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


def vault_set(ui, ref, expires=b"", tag=(), **opts):
    from . import audit, session

    native = session.native_module()
    settings = config.vault_settings(ui)
    expires_at = parse_expires(expires) if expires else None
    tags = parse_tags(tag or ())
    client = session.vault(ui)
    value = _read_value(ui)
    if not value:
        raise error.Abort(
            _(b"refusing to store an empty value for %s") % b(ref),
            hint=_(b"pipe the value on stdin: printf '%s' \"$VALUE\" | hg vault set REF"),
        )
    name = session.secret_name(ref, settings)
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


def _check_options(action: bytes, opts: dict) -> None:
    allowed = _OPTIONS[action] | {"template"}
    for key, value in opts.items():
        if value and key not in allowed:
            raise error.InputError(
                _(b"--%s does not apply to hg vault %s")
                % (pycompat.sysbytes(key.replace("_", "-")), action),
                hint=_(b"see hg help vault"),
            )


@command(
    b"vault",
    [
        (b"", b"expires", b"", _(b"set: expiry, in days or a UTC date"), _(b"DAYS|DATE")),
        (b"", b"tag", [], _(b"set: a tag (repeatable)"), _(b"KEY=VALUE")),
        (b"", b"yes", False, _(b"forget: delete without asking")),
        (b"", b"from", b"", _(b"migrate: copy from this provider"), _(b"PROVIDER")),
        (b"", b"to", b"", _(b"migrate: copy to this provider"), _(b"PROVIDER")),
        (b"n", b"dry-run", False, _(b"migrate: only say what would be copied")),
        (
            b"",
            b"remove-source",
            False,
            _(b"migrate: delete each secret from the source once copied"),
        ),
        (b"", b"reveal", False, _(b"check: show the password (on a terminal only)")),
    ]
    + cmdutil.formatteropts,
    _(b"[status | set REF | list | forget REF | check URL | migrate --from P --to P]"),
    helpcategory=command.CATEGORY_MISC,
    norepo=True,
)
def vault(ui, *args, **opts):
    """show the secret store's state, or manage the secrets in it

    ``hg vault`` (or ``hg vault status``) shows the provider (Azure Key Vault
    or the OS keyring) and where it keeps secrets, the credential and identity
    used, whether the store answered and how fast, and the state of the secret
    of every ``[auth]`` group with a ``vault`` key: ok, expiring soon (within
    ``keyvault.expiry-warning`` days), missing, forbidden, disabled, expired,
    not yet valid. ``hg vault list`` and ``hg vault check`` report the same
    states, computed once by the core.
    It exits 1 when any configured secret cannot be read, so a CI job can run
    it as a preflight.

    ``hg vault set REF`` stores the value read from standard input (or typed at
    a hidden prompt) under REF as a new version; readers get it from then on.
    ``--expires`` sets its expiry (days, or a UTC date), ``--tag KEY=VALUE``
    its tags.

    ``hg vault list`` lists every secret hg-keyvault manages in the store, with
    its version count, state, expiry and tags.

    ``hg vault forget REF`` deletes a secret, after confirmation or with
    ``--yes`` (Key Vault keeps it recoverable until its purge date).

    ``hg vault check URL`` says which ``[auth]`` group covers URL and why (or
    why none does), and whether its secret can be read now. ``--reveal`` shows
    the password, only when standard output is a terminal.

    ``hg vault migrate --from keyring --to azure`` (or back) copies every
    managed secret, verifies each copy by reading it back, and reports counts.
    Running it again copies nothing new. ``--dry-run`` only reports;
    ``--remove-source`` deletes each secret from the source once its copy is
    verified.

    Every subcommand takes ``-T json``. None ever prints a value, except
    ``check --reveal`` on a terminal.

    Returns 0 on success, 1 if a secret cannot be read (status, check) or a
    copy failed (migrate).
    """
    action, rest = (args[0], args[1:]) if args else (b"status", ())
    if action not in _OPTIONS:
        raise error.CommandError(b"vault", _(b"invalid arguments"))
    formatter_opts = {"template": opts.pop("template", b"")}
    _check_options(action, opts)
    if action == b"status" and not rest:
        return vault_status(ui, **formatter_opts)
    if action == b"set" and len(rest) == 1:
        return vault_set(
            ui,
            rest[0].decode("utf-8", "surrogateescape"),
            expires=opts.get("expires"),
            tag=opts.get("tag"),
            **formatter_opts,
        )
    if action == b"list" and not rest:
        from . import cmd_list

        return cmd_list.run(ui, **formatter_opts)
    if action == b"forget" and len(rest) == 1:
        from . import cmd_forget

        return cmd_forget.run(
            ui, rest[0].decode("utf-8", "surrogateescape"), bool(opts.get("yes")), **formatter_opts
        )
    if action == b"check" and len(rest) == 1:
        from . import cmd_check

        return cmd_check.run(
            ui,
            rest[0].decode("utf-8", "surrogateescape"),
            bool(opts.get("reveal")),
            **formatter_opts,
        )
    if action == b"migrate" and not rest:
        from . import cmd_migrate

        return cmd_migrate.run(ui, opts, **formatter_opts)
    raise error.CommandError(b"vault", _(b"invalid arguments"))
