"""``hg vault list``: every secret hg-keyvault manages in the store (the ones
that carry their ref), with version count, state, expiry and tags. Touches no
value."""

from __future__ import annotations

from mercurial import pycompat

from .output import b, date, iso, opt, tags_text, user_tags, write_error


def run(ui, **opts):
    from . import session

    native = session.native_module()
    client = session.vault(ui)
    try:
        listed = client.list()
    except native.KeyVaultError as exc:
        raise session.abort_for(exc, "hg vault list") from None
    managed = sorted(((ref, p) for p in listed if (ref := p["ref"])), key=lambda item: item[0])

    fm = ui.formatter(b"vault", pycompat.byteskwargs(opts))
    for ref, props in managed:
        failure, versions, note = None, [], None
        expected = session.secret_name(client, ref) or ""
        if props.get("scheduled_deletion") is not None:
            # Forgotten (AWS): restorable until that date, its versions cannot be listed.
            note = (
                "scheduled for deletion on %s (hg vault forget)"
                % date(props.get("scheduled_deletion")).decode()
            )
        elif expected.lower() != (props.get("name") or "").lower():
            # Stored by a configuration with another name prefix: this one cannot reach it by
            # its ref, so its versions are not asked for.
            note = "stored under another keyvault.name-prefix"
        else:
            try:
                versions = client.versions(ref)
            except native.KeyVaultError as exc:
                failure = exc
        current = versions[-1] if versions else props
        fm.startitem()
        fm.write(b"ref", b"%s\n", b(ref))
        fm.write(b"name", b"  name:     %s\n", b(props.get("name")))
        # The core's state of the current version, the same that hg vault reports.
        fm.write(b"state", b"  state:    %s\n", b(current.get("state")))
        fm.data(versions=len(versions) if note is None and failure is None else None)
        fm.plain(b"  versions: %s\n" % (b"%d" % len(versions) if versions else b"?"))
        fm.data(
            scheduled_deletion=opt(iso(props.get("scheduled_deletion"))),
            version=opt(current.get("version")),
            enabled=bool(current.get("enabled", True)),
            expires=opt(iso(current.get("expires"))),
            updated=opt(iso(current.get("updated"))),
            tags=user_tags(current),
        )
        fm.plain(b"  version:  %s\n" % b(current.get("version") or "-"))
        fm.plain(b"  expires:  %s\n" % date(current.get("expires")))
        fm.plain(b"  tags:     %s\n" % tags_text(current))
        fm.data(note=opt(note))
        if note:
            fm.plain(b"  note:     %s\n" % b(note))
        write_error(fm, failure, b"  ")
    if not managed:
        fm.plain(b"no secret managed by hg-keyvault in the %s store\n" % b(client.provider))
    fm.end()
    return 0
