"""``hg vault check URL``: which ``[auth]`` group covers URL and why (or why
none does), judged by the same matcher that releases passwords, and whether
that group's secret can be read now. ``--reveal`` shows the password, on a
terminal only."""

from __future__ import annotations

from mercurial import error, pycompat
from mercurial.i18n import _
from mercurial.utils import urlutil

from . import config
from .output import b, date, iso, opt, secret_state, write_error


def _refuse_reveal(ui, opts) -> None:
    """A value may only go to a person looking at a terminal: never to a pipe, a file, a
    CI log or a template."""
    if opts.get("template"):
        raise error.Abort(
            _(b"refusing to reveal a value in -T output"),
            hint=_(b"drop -T, and run it on a terminal"),
        )
    if not (ui.interactive() and ui._isatty(ui.fout)):
        raise error.Abort(
            _(b"refusing to reveal a value: standard output is not a terminal"),
            hint=_(b"run it on a terminal; without --reveal it checks without showing"),
        )


def _explain_token_groups(ui, fm, url: str, native, session):
    """One line per token group (``entra-scope``), judged by the same matcher that sends
    tokens; the group that covers ``url``, if any."""
    tokens = config.token_groups(ui)
    specs = [(g.prefix, list(g.schemes), None) for g in tokens]
    try:
        verdicts = native.explain_auth_groups(url, specs, None) if tokens else []
        best = native.match_auth_group(url, specs, None) if tokens else None
    except native.KeyVaultError as exc:
        raise session.abort_for(exc, "hg vault check") from None
    chosen = None if best is None else tokens[best]
    with fm.nested(b"token_groups") as sub:
        for group, (covers, reason) in zip(tokens, verdicts):
            sub.startitem()
            mark = b"selected" if group is chosen else (b"covers" if covers else b"no")
            sub.write(b"group", b"[auth] %s (entra token): ", b(group.name))
            sub.write(b"verdict", b"%s", mark)
            sub.write(b"reason", b" (%s)\n", b(reason))
            sub.data(prefix=b(group.prefix), covers=bool(covers), selected=group is chosen)
    return chosen


def _check_token_group(ui, fm, group: config.TokenGroup, reveal: bool) -> int:
    """Whether the identity gets a token for the group's API now; never the token."""
    from . import tokenauth
    from ._native import KeyVaultError

    if reveal:
        raise error.Abort(
            _(b"refusing to reveal an Entra token"),
            hint=_(b"hg vault shows its claims (aud, iss, expiry), never the token itself"),
        )
    exc, info = None, {}
    try:
        info = tokenauth._session(ui).token(group.scope)[1]
    except KeyVaultError as e:
        exc = e
    fm.data(group=b(group.name), ref=opt(None), scope=b(group.scope), token_as=b(group.token_as))
    fm.plain(
        b"token:    [auth] %s, scope %s, as %s\n"
        % (b(group.name), b(group.scope), b(group.token_as))
    )
    fm.data(aud=opt(info.get("aud")), version=opt(info.get("version")))
    fm.write(b"state", b"state:    %s\n", b"ok" if exc is None else b"error")
    if exc is None:
        fm.plain(
            b"identity: %s, audience %s (%s)\n"
            % (
                b(tokenauth.describe_identity(info)),
                b(info.get("aud") or "?"),
                b(info.get("version") or "?"),
            )
        )
    write_error(fm, exc, b"")
    fm.end()
    return 0 if exc is None else 1


def run(ui, url: str, reveal: bool, **opts):
    from . import audit, session

    if reveal:
        _refuse_reveal(ui, opts)
    native = session.native_module()
    groups = config.vault_groups(ui)
    parsed = urlutil.url(pycompat.bytesurl(url))
    user = pycompat.strurl(parsed.user) if parsed.user else None
    specs = [(g.prefix, list(g.schemes), g.username) for g in groups]
    try:
        verdicts = native.explain_auth_groups(url, specs, user)
        best = native.match_auth_group(url, specs, user)
    except native.KeyVaultError as exc:
        raise session.abort_for(exc, "hg vault check") from None
    chosen = None if best is None else groups[best]

    fm = ui.formatter(b"vault", pycompat.byteskwargs(opts))
    fm.startitem()
    fm.write(b"url", b"url:      %s\n", b(url))
    with fm.nested(b"groups") as sub:
        for group, (covers, reason) in zip(groups, verdicts):
            sub.startitem()
            mark = b"selected" if group is chosen else (b"covers" if covers else b"no")
            sub.write(b"group", b"[auth] %s: ", b(group.name))
            sub.write(b"verdict", b"%s", mark)
            sub.write(b"reason", b" (%s)\n", b(reason))
            sub.data(prefix=b(group.prefix), covers=bool(covers), selected=group is chosen)
    if not groups:
        fm.plain(_(b"no [auth] group has a vault key\n"))
    token_group = _explain_token_groups(ui, fm, url, native, session)
    if token_group is not None:
        # The token is sent before any challenge: a vault group's password never gets a turn.
        return _check_token_group(ui, fm, token_group, reveal)
    fm.data(group=opt(chosen and chosen.name), ref=opt(chosen and chosen.ref))
    if chosen is None:
        fm.data(state=b"unmatched", provider=opt(None), name=opt(None), version=opt(None))
        fm.data(expires=opt(None), username=opt(None))
        write_error(fm, None, b"")
        fm.plain(
            _(b"no vault group covers this URL: Mercurial uses its own [auth] settings or asks\n")
        )
        fm.end()
        return 1

    client = session.vault(ui)
    name = session.secret_name(client, chosen.ref)
    found = secret_state(client, chosen.ref, native)
    state, props, failed = found.state, found.props, found.error
    audit.record(
        ui,
        client,
        action="check",
        ref=chosen.ref,
        name=name,
        group=chosen.name,
        props=props,
        exc=failed,
    )
    fm.write(b"provider", b"provider: %s\n", b(client.provider))
    fm.write(b"username", b"username: %s\n", b(chosen.username or ""))
    fm.plain(b"ref:      %s\n" % b(chosen.ref))
    fm.write(b"name", b"name:     %s\n", b(name or "?"))
    fm.write(b"state", b"state:    %s\n", b(state))
    fm.data(version=opt(props.get("version")), expires=opt(iso(props.get("expires"))))
    fm.plain(b"version:  %s\n" % b(props.get("version") or "-"))
    fm.plain(b"expires:  %s\n" % date(props.get("expires")))
    write_error(fm, failed, b"")
    if reveal and found.readable:
        fetched = session.read(
            ui, chosen.ref, use="reveal", context=f"[auth] {chosen.name}", group=chosen
        )
        fm.plain(b"password: %s\n" % session.password_text(fetched).encode("utf-8"))
    fm.end()
    return 0 if found.readable else 1
