"""``hg vault``: which subcommand runs. Its help and options are registered in the package's
``__init__`` (which loads with every hg command, this module only when ``hg vault`` runs); the
status (``cmd_status``) and every operator's subcommand (set, list, forget, check, migrate, each
in its own ``cmd_*`` module) load when that subcommand runs. None ever prints a value,
except ``check --reveal`` on a terminal."""

from __future__ import annotations

from mercurial import error, pycompat
from mercurial.i18n import _

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


def run(ui, args: tuple, opts: dict):
    """``hg vault [ACTION ...]`` (registered in the package's ``__init__``)."""
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
