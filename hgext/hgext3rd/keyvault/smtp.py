"""``hg email``: the SMTP password from the vault, by wrapping Mercurial's
``mail._smtp_login`` (its SMTP code itself is not copied).

With ``[smtp] vault = REF``, Mercurial's own login runs as usual and asks for
the password the way it asks a user; the wrapper answers that question with the
vault's value, for this one call, instead of a prompt. The password goes only
to ``smtp.host``, which like every vault mapping comes from trusted config.
"""

from __future__ import annotations

import smtplib

from mercurial import encoding, error, extensions

from . import sanitize


def _answer_getpass(ui, password: bytes):
    """Make ``ui.getpass`` return ``password`` (for one login), and undo it."""
    had_own = "getpass" in vars(ui)
    saved = vars(ui).get("getpass")

    def getpass(prompt=None, default=None):
        return password

    ui.getpass = getpass

    def restore():
        if had_own:
            ui.getpass = saved
        else:
            del ui.getpass

    return restore


def _smtp_login(orig, ui, smtp, mailhost, mailport):
    ref = ui.config(b"smtp", b"vault")
    if not ref:
        return orig(ui, smtp, mailhost, mailport)
    if ui.config(b"smtp", b"password"):
        raise error.ConfigError(
            b"smtp.password and smtp.vault are both set",
            hint=b"remove smtp.password: the vault provides it",
        )
    username = ui.config(b"smtp", b"username")
    if not username:
        raise error.ConfigError(
            b"smtp.vault is set but smtp.username is not",
            hint=b"set smtp.username to the account the password belongs to",
        )
    from . import session

    ref_text = ref.decode("utf-8", "surrogateescape")
    secret = session.read(ui, ref_text, use="smtp", context="[smtp] vault")
    ui.debug(
        b"keyvault: [smtp] password for %s from %s\n"
        % (sanitize.local(mailhost), sanitize.local(ref))
    )
    restore = _answer_getpass(ui, encoding.tolocal(secret.value))
    try:
        return orig(ui, smtp, mailhost, mailport)
    except smtplib.SMTPAuthenticationError as exc:
        # Rejected: the next command reads the vault again, not the secret cache.
        session.forget(secret)
        said = exc.smtp_error
        raise error.Abort(
            b"mail server %s:%d rejected the password from the vault for [smtp] "
            b"(%s, version %s): %d %s"
            % (
                sanitize.local(mailhost),
                mailport,
                sanitize.local(ref),
                sanitize.local(secret.version or "unknown"),
                exc.smtp_code,
                sanitize.local(said),
            ),
            hint=b"if the password changed on the mail server, rotate it: hg vault set %s"
            % sanitize.local(ref),
        ) from None
    finally:
        restore()


def install(mailmod) -> None:
    """Wrap an executed ``mercurial.mail``."""
    extensions.wrapfunction(mailmod, "_smtp_login", _smtp_login)
