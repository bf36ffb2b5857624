"""Mercurial's HTTP authentication points, wrapped (never replaced).

Installed only once ``mercurial.url`` has actually been executed (see
``loadhook``), so commands that never talk HTTP pay nothing.
"""

from __future__ import annotations

import base64

from mercurial import error, extensions, pycompat

from . import config

# The Basic headers built from vault passwords in this process, mapped to what
# they came from, so that a server's rejection can name the group and version.
_supplied: dict[str, object] = {}


def _basic_header(user: str, password: str) -> str:
    raw = b"%s:%s" % (pycompat.bytesurl(user), pycompat.bytesurl(password))
    return "Basic %s" % pycompat.strurl(base64.b64encode(raw).strip())


def matching_group(ui, authuri: str, user: str | None):
    """The ``[auth]`` vault group for this URL, or None (no native import if none)."""
    groups = config.vault_groups(ui)
    if not groups:
        return None
    from ._native import match_auth_group

    index = match_auth_group(
        authuri,
        [(g.prefix, list(g.schemes), g.username) for g in groups],
        user,
    )
    return None if index is None else groups[index]


def _find_user_password(orig, self, realm, authuri):
    stored_user, stored_password = self.passwddb.find_user_password(realm, authuri)
    if stored_user and stored_password:
        # The URL itself carries a password: Mercurial's own business, never
        # combined with a vault secret.
        return orig(self, realm, authuri)
    group = matching_group(self.ui, authuri, pycompat.strurl(stored_user) if stored_user else None)
    if group is None:
        return orig(self, realm, authuri)
    from . import session

    fetched = session.password_for(self.ui, group)
    user = group.username or (pycompat.strurl(stored_user) if stored_user else None)
    if not user:
        raise error.ConfigError(
            b"[auth] %s has a vault password but no username"
            % group.name.encode("utf-8", "replace"),
            hint=b"set %s.username" % group.name.encode("utf-8", "replace"),
        )
    self.ui.debug(
        b"keyvault: using [auth] %s for %s\n"
        % (group.name.encode("utf-8", "replace"), pycompat.bytesurl(authuri))
    )
    self._writedebug(pycompat.bytesurl(user), pycompat.bytesurl(fetched.value))
    _supplied[_basic_header(user, fetched.value)] = fetched
    return (user, fetched.value)


def _retry_http_basic_auth(orig, self, host, req, realm):
    sent = req.get_header(self.auth_header, None)
    fetched = _supplied.get(sent) if sent else None
    if fetched is not None:
        # The server answered 401 to the vault's password: stop here with a
        # clear word instead of letting urllib try again.
        from . import session

        session.forget(fetched)
        group = fetched.group
        url = pycompat.bytesurl(req.get_full_url())
        raise error.Abort(
            b"%s rejected the password from the vault for [auth] %s (%s, version %s)"
            % (
                url,
                group.name.encode("utf-8", "replace"),
                group.ref.encode("utf-8", "replace"),
                (fetched.version or "unknown").encode("ascii", "replace"),
            ),
            hint=b"if the password changed on the server, rotate it: hg vault set %s"
            % group.ref.encode("utf-8", "replace"),
        )
    return orig(self, host, req, realm)


def install(urlmod) -> None:
    """Wrap the auth points of an executed ``mercurial.url`` module."""
    extensions.wrapfunction(urlmod.passwordmgr, "find_user_password", _find_user_password)
    extensions.wrapfunction(
        urlmod.httpbasicauthhandler, "retry_http_basic_auth", _retry_http_basic_auth
    )
