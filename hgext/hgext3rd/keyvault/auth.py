"""Mercurial's HTTP authentication points, wrapped (never replaced).

Installed only once ``mercurial.url`` has actually been executed (see
``on_module_executed`` in the package's ``__init__``), so commands that never talk
HTTP pay nothing.

A vault password is bound to the origin of the group that released it: after
one successful login Mercurial adds the cached Basic header to every later
request of the handler, also to a redirect to another host; for headers built
from the vault that happens only while the request's URL still matches the
same group.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from mercurial import error, extensions, pycompat

from . import config, sanitize

if TYPE_CHECKING:
    from .session import Fetched

# The Basic headers built from vault passwords in this process, mapped to what
# they came from, so that a server's rejection can name the group and version.
_supplied: dict[str, Fetched] = {}
# URLs already warned about for carrying their own password.
_warned_password_urls: set[str] = set()


def _basic_header(user: str, password: str) -> str:
    raw = b"%s:%s" % (pycompat.bytesurl(user), pycompat.bytesurl(password))
    return "Basic %s" % pycompat.strurl(base64.b64encode(raw).strip())


def matching_group(ui, authuri: str, user: str | None):
    """The ``[auth]`` vault group for this URL, or None (no native import if none)."""
    groups = config.vault_groups(ui)
    if not groups:
        return None
    from ._native import KeyVaultError, match_auth_group

    try:
        index = match_auth_group(
            authuri,
            [(g.prefix, list(g.schemes), g.username) for g in groups],
            user,
        )
    except KeyVaultError as exc:
        from . import session

        raise session.abort_for(exc, "keyvault") from None
    return None if index is None else groups[index]


def _warn_password_in_url(ui, authuri: str, user: str) -> None:
    """Say once that a URL's own password wins and the vault stays out of it."""
    group = matching_group(ui, authuri, user)
    if group is None or authuri in _warned_password_urls:
        return
    _warned_password_urls.add(authuri)
    ui.warn(
        b"keyvault: %s has a password in the URL: it is used as it is, and the vault secret "
        b"of [auth] %s is not sent with it\n"
        % (sanitize.local(authuri), sanitize.local(group.name))
    )
    ui.warn(b"(keyvault: remove the password from the URL; the vault provides it)\n")


def _find_user_password(orig, self, realm, authuri):
    stored_user, stored_password = self.passwddb.find_user_password(realm, authuri)
    if stored_user and stored_password:
        # The URL itself carries a password: Mercurial's own business, never
        # combined with a vault secret.
        _warn_password_in_url(self.ui, pycompat.strurl(authuri), pycompat.strurl(stored_user))
        return orig(self, realm, authuri)
    group = matching_group(self.ui, authuri, pycompat.strurl(stored_user) if stored_user else None)
    if group is None:
        return orig(self, realm, authuri)
    from . import session

    fetched = session.read(
        self.ui, group.ref, use="http", context=f"[auth] {group.name}", group=group
    )
    password = session.password_text(fetched)
    user = group.username or (pycompat.strurl(stored_user) if stored_user else None)
    if not user:
        raise error.ConfigError(
            b"[auth] %s has a vault password but no username" % sanitize.local(group.name),
            hint=b"set %s.username" % sanitize.local(group.name),
        )
    self.ui.debug(
        b"keyvault: using [auth] %s for %s\n"
        % (sanitize.local(group.name), sanitize.local(authuri))
    )
    self._writedebug(pycompat.bytesurl(user), pycompat.bytesurl(password))
    _supplied[_basic_header(user, password)] = fetched
    return (user, password)


def supplied(header: str | None) -> Fetched | None:
    """What a Basic header built here from a vault password came from, or None."""
    return _supplied.get(header) if header else None


def rejected(fetched: Fetched, url: str) -> error.Abort:
    """The abort for a 401 to the vault's password; the value is forgotten first, so that
    the next command reads the vault again."""
    from . import session

    session.forget(fetched)
    return error.Abort(
        b"%s rejected the password from the vault for %s (%s, version %s)"
        % (
            sanitize.local(url),
            sanitize.local(fetched.context),
            sanitize.local(fetched.ref),
            sanitize.local(fetched.version or "unknown"),
        ),
        hint=b"if the password changed on the server, rotate it: hg vault set %s"
        % sanitize.local(fetched.ref),
    )


def _retry_http_basic_auth(orig, self, host, req, realm):
    fetched = supplied(req.get_header(self.auth_header, None))
    if fetched is not None:
        # The server answered 401 to the vault's password: stop here with a
        # clear word instead of letting urllib try again.
        raise rejected(fetched, req.get_full_url())
    return orig(self, host, req, realm)


def _origin_bound_request(orig, self, request):
    """Mercurial's ``http_request``/``https_request``, minus a vault header sent elsewhere."""
    fetched = _supplied.get(self.auth) if self.auth else None
    if fetched is None:
        return orig(self, request)
    url = request.get_full_url()
    group = matching_group(self.passwd.ui, url, None)
    if group is not None and group == fetched.group:
        return orig(self, request)
    # A redirect to (or a later request for) another origin: keep the secret home.
    request.remove_header(self.auth_header)
    self.passwd.ui.debug(
        b"keyvault: not sending the password of %s to %s\n"
        % (sanitize.local(fetched.context), sanitize.local(url))
    )
    return request


def install(urlmod) -> None:
    """Wrap the auth points of an executed ``mercurial.url`` module."""
    handler = urlmod.httpbasicauthhandler
    extensions.wrapfunction(urlmod.passwordmgr, "find_user_password", _find_user_password)
    extensions.wrapfunction(handler, "retry_http_basic_auth", _retry_http_basic_auth)
    for name in ("http_request", "https_request"):
        if hasattr(handler, name):
            extensions.wrapfunction(handler, name, _origin_bound_request)
