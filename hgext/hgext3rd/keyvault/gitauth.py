"""hg-git's HTTP client (dulwich), bound to the origin of the vault group like Mercurial's.

hg-git asks Mercurial's password manager (``url.passwordmgr.find_user_password``), so a vault
group answers it, and hands the password to dulwich, which keeps it as a Basic header on the
client's connection pool for every later request. When the discovery request
(``info/refs``) is redirected, dulwich moves the client's base URL to the redirect target and
sends its POSTs there with that header; urllib3 drops it from the redirected request alone. A
header built from a vault password is therefore dropped from any request its group's prefix
does not cover. A 401 to it ends the command with the same message as Mercurial's own HTTP
path, instead of hg-git's retries and its bare "authorization failed".
"""

from __future__ import annotations

from mercurial import extensions

from . import auth


def _covers(group, url: str) -> bool:
    from ._native import match_auth_group

    return match_auth_group(url, [(group.prefix, list(group.schemes), group.username)], None) == 0


def _origin_bound_http_request(unauthorized, orig, self, url, headers=None, data=None):
    pool_headers = self.pool_manager.headers
    key = next((k for k in pool_headers if k.lower() == "authorization"), None)
    fetched = auth.supplied(pool_headers.get(key)) if key else None
    if fetched is None:
        return orig(self, url, headers, data)
    if not _covers(fetched.group, url):
        # Every later request of this client goes to the new base URL too: keep the secret home.
        del pool_headers[key]
        return orig(self, url, headers, data)
    try:
        return orig(self, url, headers, data)
    except unauthorized:
        raise auth.rejected(fetched, url) from None


def install(clientmod) -> None:
    """Wrap the request method of an executed ``dulwich.client`` module (dulwich 0.21-0.22)."""
    cls = getattr(clientmod, "Urllib3HttpGitClient", None)
    if cls is None or not hasattr(cls, "_http_request"):
        return
    extensions.wrapfunction(
        cls,
        "_http_request",
        lambda orig, *args, **kwargs: _origin_bound_http_request(
            clientmod.HTTPUnauthorized, orig, *args, **kwargs
        ),
    )
