"""``hg vault forget REF``: delete a secret and all its versions, after
confirmation or ``--yes``. Key Vault keeps it recoverable (soft delete); the
keyring cannot."""

from __future__ import annotations

from mercurial import error, pycompat
from mercurial.i18n import _

from .output import b, date, iso, opt


def run(ui, ref: str, yes: bool, **opts):
    from . import audit, session

    native = session.native_module()
    client = session.vault(ui)
    name = session.secret_name(client, ref)
    info = client.info()
    where = client.url or "the %s %s" % (info["location"], info["label"])
    if not yes:
        # Non-interactive runs get the default answer, No: CI must say --yes.
        answer = ui.promptchoice(
            _(b"delete %s (%s) and all its versions from %s? (y/N) $$ &Yes $$ &No")
            % (b(ref), b(name), b(where)),
            default=1,
        )
        if answer != 0:
            raise error.Abort(
                _(b"not deleting %s") % b(ref),
                hint=_(b"confirm at the prompt, or pass --yes"),
            )
    try:
        deleted = client.delete(ref)
    except native.KeyVaultError as exc:
        audit.record(ui, client, action="delete", ref=ref, name=name, exc=exc)
        raise session.abort_for(exc, ref) from None
    audit.record(ui, client, action="delete", ref=ref, name=name, props=deleted)
    fm = ui.formatter(b"vault", pycompat.byteskwargs(opts))
    fm.startitem()
    fm.write(b"ref name", b"deleted %s (%s)\n", b(ref), b(deleted["name"]))
    fm.data(
        provider=b(client.provider),
        recoverable=bool(deleted["recoverable"]),
        scheduled_purge=opt(iso(deleted["scheduled_purge"])),
    )
    if deleted["recoverable"]:
        fm.plain(
            b"recoverable until %s (az keyvault secret recover --name %s)\n"
            % (date(deleted["scheduled_purge"]), b(deleted["name"]))
        )
    fm.end()
    return 0
