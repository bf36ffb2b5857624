"""``hg vault`` / ``hg vault status``: the store in use, the identity, whether the store
answers, the caches, and the state of every configured secret. Never a value. Loaded only
when that subcommand runs (``commands`` loads with every hg command)."""

from __future__ import annotations

import time

from mercurial import pycompat
from mercurial.i18n import _

from . import config
from .output import UNKNOWN, b, date, iso, opt, outcome_state, user_tags, write_error


def run(ui, **opts):
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
    # The store says what its location is called (vault URL, keyring backend): no provider here.
    fm.data(url=opt(None), keyring=opt(None), keyring_detail=opt(info["detail"]))
    fm.data(**{info["location_key"]: opt(info["location"])})
    fm.plain(b"%-11s %s\n" % (b(info["label"] + ":"), b(info["location"])))
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
    # The configured credential, for stores that find an identity (None: the OS user is it).
    credential = identity.get("link") or info["credential"]
    fm.data(credential=opt(credential))
    if info["credential"] is not None:
        fm.plain(b"credential: %s\n" % b(credential))
    # Which link answered and why it was chosen: "managed identity (Azure VM: SMBIOS asset tag)".
    fm.data(link=opt(identity.get("link_id")), via=opt(identity.get("via")))
    if identity.get("via"):
        fm.plain(b"via:        %s\n" % b(identity["via"]))
    job = audit.ci_job()
    fm.data(ci_job=opt(job))
    if job:
        fm.plain(b"ci job:     %s\n" % b(job))
    # The store names its own ids (Key Vault: tenant, client, object; AWS: caller ARN, account).
    ids = list(identity.get("ids") or ())
    azure_ids = ["tenant_id", "client_id", "object_id"]
    if not ids or ids == azure_ids:
        fm.data(**{k: opt(identity.get(k)) for k in azure_ids})
        if identity:
            fm.plain(
                b"identity:   tenant %s, client %s, object %s\n"
                % tuple(b(identity.get(k) or "?") for k in azure_ids)
            )
    else:
        fm.data(identity_source=opt(identity.get("link_id")))
        fm.data(**{k: opt(identity.get(k)) for k in ids})
        shown = [b"%s %s" % (b(k.replace("_", " ")), b(identity.get(k) or "?")) for k in ids]
        fm.plain(b"identity:   %s\n" % b", ".join(shown))
    fm.data(answered=answered, elapsed_ms=elapsed_ms)
    fm.data(asked=asked)
    if asked:
        fm.plain(b"answered:   %s in %d ms\n" % (b"yes" if answered else b"no", elapsed_ms))
    else:
        fm.plain(b"answered:   not asked: no identity applies\n")
    write_error(fm, failure, b"")
    # None: the store has no caches (the keyring holds the secrets themselves).
    caches = client.cache_status()
    if caches is not None:
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
            name = session.secret_name(client, group.ref)
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
            if caches is not None and caches.get("secret_cache_ttl"):
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
