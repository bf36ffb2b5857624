"""``hg vault migrate --from P --to P``: copy every secret hg-keyvault manages
from one provider to another (any two of the core's provider table: keyring,
azure, aws). Each copy is a new version in the target, with the source's
expiry and tags, verified by reading it back and comparing digests in the core
(no value, nor its digest, reaches Python).
Idempotent: a secret whose current value is already in the target is left
alone. The source is untouched unless ``--remove-source``."""

from __future__ import annotations

from mercurial import error, pycompat
from mercurial.i18n import _

from . import config
from .output import b, opt, write_error


def _known() -> bytes:
    """The providers of the core's table (this build's), comma-separated."""
    from . import session

    return b", ".join(b(name) for name, _needs in session.native_module().providers())


def _provider(opts, key: str) -> str:
    value = opts.get(key) or b""
    if value not in config.PROVIDERS:
        raise error.InputError(
            _(b"--%s: '%s' is not a provider") % (pycompat.sysbytes(key), value),
            hint=_(b"use two of: %s") % _known(),
        )
    return value.decode("ascii")


def run(ui, opts, **fmopts):
    from . import audit, session

    native = session.native_module()
    source_name, target_name = _provider(opts, "from"), _provider(opts, "to")
    if source_name == target_name:
        raise error.InputError(
            _(b"--from and --to are both %s") % b(source_name),
            hint=_(b"migrate between two different providers of: %s") % _known(),
        )
    dry_run, remove = bool(opts.get("dry_run")), bool(opts.get("remove_source"))
    source = session.vault(ui, source_name)
    target = session.vault(ui, target_name)
    try:
        listed = [(ref, p) for p in source.list() if (ref := p["ref"])]
    except native.KeyVaultError as exc:
        raise session.abort_for(exc, "listing the %s store" % source_name) from None
    # Only what this configuration reaches: a secret stored under another name prefix keeps
    # its ref tag but is not found by that ref here.
    managed, foreign = [], 0
    for ref, props in listed:
        expected = session.secret_name(source, ref)
        if expected and expected.lower() == (props.get("name") or "").lower():
            managed.append(ref)
        else:
            foreign += 1
    managed.sort()

    counts = {"copied": 0, "unchanged": 0, "failed": 0, "removed": 0}
    fm = ui.formatter(b"vault", pycompat.byteskwargs(fmopts))
    fm.startitem()
    with fm.nested(b"secrets") as sub:
        for ref in managed:
            name = session.secret_name(target, ref)
            action, removed, failure = "would copy", False, None
            outcome: dict = {}
            if not dry_run:
                try:
                    outcome = dict(target.copy_from(source, ref))
                    action = "copied" if outcome["copied"] else "unchanged"
                except native.KeyVaultError as exc:
                    action, failure = "failed", exc
                audit.record(
                    ui,
                    target,
                    action="migrate",
                    ref=ref,
                    name=name,
                    props=outcome.get("target"),
                    exc=failure,
                )
                counts[action] += 1
                if remove and failure is None:
                    try:
                        deleted = source.delete(ref)
                        removed = True
                        counts["removed"] += 1
                        audit.record(ui, source, action="delete", ref=ref, name=name, props=deleted)
                    except native.KeyVaultError as exc:
                        failure = exc
                        counts["failed"] += 1
                        audit.record(ui, source, action="delete", ref=ref, name=name, exc=exc)
            sub.startitem()
            sub.write(b"ref action", b"%s: %s", b(ref), b(action))
            sub.plain(b", removed from %s\n" % b(source_name) if removed else b"\n")
            version = (outcome.get("target") or {}).get("version")
            sub.data(name=opt(name), removed=removed, version=opt(version))
            write_error(sub, failure, b"  ")
    fm.data(source=b(source_name), target=b(target_name), dry_run=dry_run, total=len(managed))
    fm.data(skipped_other_prefix=foreign)
    if foreign:
        fm.plain(
            b"%d secrets stored under another keyvault.name-prefix were left alone\n" % foreign
        )
    fm.data(**counts)
    if dry_run:
        fm.plain(
            b"%d secrets would be copied from %s to %s (dry run, nothing written)\n"
            % (len(managed), b(source_name), b(target_name))
        )
    else:
        fm.plain(
            b"%d secrets: %d copied, %d already there, %d failed, %d removed from %s\n"
            % (
                len(managed),
                counts["copied"],
                counts["unchanged"],
                counts["failed"],
                counts["removed"],
                b(source_name),
            )
        )
    fm.end()
    return 1 if counts["failed"] else 0
