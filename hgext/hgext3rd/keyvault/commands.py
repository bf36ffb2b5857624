"""``hg vault``: registration only. The status (``cmd_status``) and every operator's
subcommand (set, list, forget, check, migrate, each in its own ``cmd_*`` module) load when
that subcommand runs: this module loads with every hg command. None ever prints a value,
except ``check --reveal`` on a terminal."""

from __future__ import annotations

from mercurial import cmdutil, error, pycompat, registrar
from mercurial.i18n import _

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
        from . import cmd_status

        return cmd_status.run(ui, **formatter_opts)
    if action == b"set" and len(rest) == 1:
        from . import cmd_set

        return cmd_set.run(
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
