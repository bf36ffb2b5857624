"""The job's own Entra access token as the credential of ``[auth]`` groups with
``entra-scope`` (a server behind an identity-aware proxy).

A handler that ``url.handlerfuncs`` adds to every opener Mercurial builds:

- before each request, it asks the core for the group's token (the token cache answers
  while the token is fresh, so a long command renews it before it expires) and sets
  ``Authorization`` as an *unredirected* header, judged again for every URL: a redirect to
  another origin, a subrepository elsewhere or a URL that only shares the prefix's text gets
  nothing. It runs before Mercurial's Basic handler, which then leaves the header alone;
- on a 401 to a request that carried a token, it drops the token from the cache, sends the
  request once more with a new one, and aborts naming the group, the scope, the identity
  and the audience if that is refused too.

URLs that no token group covers are not touched.
"""

from __future__ import annotations

import base64
import urllib.request
from typing import NamedTuple

from mercurial import error

from . import config, sanitize


class _Sent(NamedTuple):
    group: config.TokenGroup
    token: str
    info: dict


# One native session per set of settings (chg: the core rebuilds its runtime after a fork).
_sessions: dict[config.VaultSettings, object] = {}


def _session(ui):
    from . import session as vault_session
    from ._native import KeyVaultError, TokenSession

    # Keyed by the settings only: the User-Agent (which names the command) is the first one's,
    # and a 401's forget() must reach the very cache the token came from.
    key = config.vault_settings(ui)
    held = _sessions.get(key)
    if held is None:
        settings = key
        agent = vault_session.user_agent(ui)
        try:
            held = TokenSession(
                credential=settings.credential,
                cacerts=settings.cacerts,
                timeout=settings.timeout,
                user_agent=agent,
                token_cache=settings.token_cache,
                id_token_env=settings.id_token_env,
            )
        except KeyVaultError as exc:
            raise vault_session.abort_for(exc, "keyvault") from None
        _sessions[key] = held
    return held


def matching_group(ui, url: str) -> config.TokenGroup | None:
    """The token group covering ``url`` (scheme, host, port, path segments), or None."""
    groups = config.token_groups(ui)
    if not groups:
        return None
    from ._native import KeyVaultError, match_auth_group

    try:
        index = match_auth_group(url, [(g.prefix, list(g.schemes), None) for g in groups])
    except KeyVaultError:
        # Not a URL the matcher understands: no token goes there.
        return None
    return None if index is None else groups[index]


def fetch(ui, group: config.TokenGroup) -> tuple[str, dict]:
    """``(token, info)`` for ``group``, or an abort naming the group and the scope."""
    from . import session as vault_session
    from ._native import KeyVaultError

    try:
        return _session(ui).token(group.scope)
    except KeyVaultError as exc:
        if "AADSTS500011" in (exc.message or ""):
            # The chain's hint is about the identity; here the API itself is unknown to Entra.
            raise error.Abort(
                b"[auth] %s: no Entra token for %s: %s"
                % (
                    sanitize.local(group.name),
                    sanitize.local(group.scope),
                    sanitize.local(exc.message, keep_newlines=True),
                ),
                hint=b"register the API in Entra ID (az ad app create --identifier-uris ...) "
                b"or set %s.entra-scope to the App ID URI or client id of an existing one"
                % sanitize.local(group.name),
            ) from None
        raise vault_session.abort_for(
            exc, "[auth] %s: no Entra token for %s" % (group.name, group.scope)
        ) from None


def forget(ui, group: config.TokenGroup, token: str) -> None:
    from ._native import KeyVaultError

    try:
        _session(ui).forget(group.scope, token)
    except KeyVaultError:
        pass


def header(group: config.TokenGroup, token: str) -> str:
    if group.token_as == "basic":  # noqa: S105 - a way of sending, not a password
        raw = ("%s:%s" % (group.username, token)).encode("ascii")
        return "Basic %s" % base64.b64encode(raw).decode("ascii")
    return "Bearer %s" % token


def describe_identity(info: dict) -> str:
    return "tenant %s, client id %s, object id %s" % (
        info.get("tenant_id") or "unknown",
        info.get("client_id") or "unknown",
        info.get("object_id") or "unknown",
    )


def refused_later(url: str, sent: _Sent) -> error.Abort:
    """A 401 after the same token was accepted in this command: the token is fine, the server
    (hgweb's allow-push, a per-path rule of the proxy) does not let the identity do this."""
    g = sent.group
    oid = sent.info.get("object_id") or "unknown"
    return error.Abort(
        b"%s refused [auth] %s's identity (%s) after accepting its Entra token for earlier "
        b"requests"
        % (
            sanitize.local(url),
            sanitize.local(g.name),
            sanitize.local(describe_identity(sent.info)),
        ),
        hint=b"the server does not let this identity do this: grant it the right there (hgweb: "
        b"allow-push names REMOTE_USER, which the proxy usually sets to the object id %s)"
        % sanitize.local(oid),
    )


def refused(url: str, sent: _Sent) -> error.Abort:
    g = sent.group
    aud = sent.info.get("aud") or "unknown"
    return error.Abort(
        b"%s refused the Entra token of [auth] %s (scope %s, %s; the token's audience was %s)"
        % (
            sanitize.local(url),
            sanitize.local(g.name),
            sanitize.local(g.scope),
            sanitize.local(describe_identity(sent.info)),
            sanitize.local(aud),
        ),
        hint=b"give the identity an app role of the API, check that %s.entra-scope names the "
        b"API the proxy expects, and that the proxy accepts the audience %s "
        b"(see docs/identity-proxy.md)" % (sanitize.local(g.name), sanitize.local(aud)),
    )


class TokenHandler(urllib.request.BaseHandler):
    # Before Mercurial's Basic (500) and Digest (490) handlers: a Bearer challenge would
    # make urllib's digest handler raise, and a Basic one would prompt for a password.
    handler_order = 400

    def __init__(self, ui):
        self.ui = ui
        # Authorization header value -> what it carried, for this opener's requests.
        self._sent: dict[str, _Sent] = {}
        # Header values a server answered with something else than 401 in this command.
        self._accepted: set[str] = set()

    def _request(self, request):
        url = request.get_full_url()
        group = matching_group(self.ui, url)
        ours = self._sent.get(request.get_header("Authorization") or "")
        if group is None:
            if ours is not None:
                # Carried over from another request (a redirect): keep the token home.
                request.remove_header("Authorization")
                self.ui.debug(
                    b"keyvault: not sending the Entra token of [auth] %s to %s\n"
                    % (sanitize.local(ours.group.name), sanitize.local(url))
                )
            return request
        token, info = fetch(self.ui, group)
        value = header(group, token)
        self._sent[value] = _Sent(group, token, info)
        request.remove_header("Authorization")
        request.add_unredirected_header("Authorization", value)
        self.ui.debug(
            b"keyvault: sending the Entra token of [auth] %s to %s\n"
            % (sanitize.local(group.name), sanitize.local(url))
        )
        return request

    http_request = _request
    https_request = _request

    def _response(self, request, response):
        value = request.get_header("Authorization") or ""
        if value in self._sent and getattr(response, "code", 401) != 401:
            self._accepted.add(value)
        return response

    http_response = _response
    https_response = _response

    def http_error_401(self, req, fp, code, msg, headers):
        sent = self._sent.get(req.get_header("Authorization") or "")
        if sent is None:
            return None  # not ours: Mercurial's handlers decide
        url = req.get_full_url()
        if req.get_header("Authorization") in self._accepted:
            # Not a bad token: a new one would be refused the same way.
            raise refused_later(url, sent)
        if getattr(req, "_keyvault_token_retried", False):
            raise refused(url, sent)
        # Once: the cached token may be stale (revoked, roles changed); never a loop.
        forget(self.ui, sent.group, sent.token)
        self._sent.pop(header(sent.group, sent.token), None)
        req._keyvault_token_retried = True
        self.ui.debug(
            b"keyvault: %s refused the Entra token of [auth] %s; getting a new one\n"
            % (sanitize.local(url), sanitize.local(sent.group.name))
        )
        fp.close()
        return self.parent.open(req, timeout=req.timeout)


def _handler(ui, passmgr):
    return TokenHandler(ui)


def install(urlmod) -> None:
    """Add the handler to every opener of an executed ``mercurial.url`` module."""
    if _handler not in urlmod.handlerfuncs:
        urlmod.handlerfuncs.append(_handler)
