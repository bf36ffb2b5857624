"""``hg vault``'s part for token groups (``[auth] GROUP.entra-scope``): for each, the token
the job's identity gets for the group's API, described by its claims, never shown."""

from __future__ import annotations

from . import config, tokenauth
from .output import b, date, iso, opt, write_error


def write(ui, fm) -> int:
    """Write every token group into ``fm`` (``tokens`` list); the number without a token."""
    from ._native import KeyVaultError

    groups = config.token_groups(ui)
    failed = 0
    with fm.nested(b"tokens") as sub:
        for group in groups:
            info: dict = {}
            exc = None
            try:
                info = tokenauth._session(ui).token(group.scope)[1]
            except KeyVaultError as e:
                exc = e
                failed += 1
            identity = info.get("identity") or {}
            sub.startitem()
            sub.write(
                b"group prefix scope token_as state",
                b"token [auth] %s: %s scope %s as %s: %s\n",
                b(group.name),
                b(group.prefix),
                b(group.scope),
                b(group.token_as),
                b"ok" if exc is None else b"error",
            )
            sub.data(
                username=opt(group.username),
                link=opt(identity.get("link_id")),
                tenant_id=opt(info.get("tenant_id")),
                client_id=opt(info.get("client_id")),
                object_id=opt(info.get("object_id")),
                aud=opt(info.get("aud")),
                iss=opt(info.get("iss")),
                version=opt(info.get("version")),
                expires_on=opt(iso(info.get("expires_on"))),
                source=opt(info.get("source")),
            )
            if exc is None:
                sub.plain(
                    b"  identity: %s via %s\n"
                    % (b(tokenauth.describe_identity(info)), b(identity.get("link_id") or "?"))
                )
                sub.plain(
                    b"  token:    aud %s, iss %s, %s, expires %s, %s\n"
                    % (
                        b(info.get("aud") or "?"),
                        b(info.get("iss") or "?"),
                        b(info.get("version") or "?"),
                        date(info.get("expires_on")),
                        b"from the cache" if info.get("source") == "cache" else b"from Entra",
                    )
                )
            write_error(sub, exc, b"  ")
    return failed
