"""hg-git's HTTP client (dulwich), bound to the origin of the vault group like Mercurial's.

hg-git asks Mercurial's password manager (``url.passwordmgr.find_user_password``), so a vault
group answers it, and hands the password to dulwich, which keeps it as a Basic header on the
client's urllib3 pool for every later request. urllib3 follows redirects itself and keeps the
header on a redirect within the same host (whatever the path); when the discovery request
(``info/refs``) was redirected, dulwich moves the client's base URL to the redirect target and
sends its POSTs there, header included. So every request the pool sends, each redirect hop
included (urllib3 sends each through ``urlopen`` again), loses a header built from a vault
password when its group's prefix does not cover the URL. A 401 to it ends the command with the
same message as Mercurial's own HTTP path, instead of hg-git's retries and its bare
"authorization failed".
"""

from __future__ import annotations

from mercurial import extensions

from . import auth

# The vault value the latest request of this process carried (None: none), so that a 401 is
# blamed on the vault's password only when the request that got it really carried that.
_last_sent: list = [None]


def _covers(group, url: str) -> bool:
    from ._native import KeyVaultError, match_auth_group

    if group is None:
        # Only [auth] groups' passwords become Basic headers; anything else stays home.
        return False
    try:
        index = match_auth_group(url, [(group.prefix, list(group.schemes), group.username)], None)
    except KeyVaultError:
        # A URL the matcher cannot read is nobody's origin: the header stays home.
        return False
    return index == 0


def _bound_urlopen(pool, orig, method, url, *args, **kwargs):
    # Without headers of its own, a request gets the pool's (urllib3's PoolManager.urlopen).
    headers = kwargs.get("headers") or pool.headers
    key = next((k for k in headers if k.lower() == "authorization"), None)
    fetched = auth.supplied(headers[key]) if key else None
    if fetched is not None and not _covers(fetched.group, url):
        kwargs["headers"] = {k: v for k, v in headers.items() if k != key}
        fetched = None
    _last_sent[0] = fetched
    return orig(method, url, *args, **kwargs)


def _bind_client(orig, self, *args, **kwargs):
    orig(self, *args, **kwargs)
    pool = self.pool_manager
    # An instance attribute: urllib3's redirect handling calls self.urlopen for each hop.
    plain = pool.urlopen
    pool.urlopen = lambda *a, **kw: _bound_urlopen(pool, plain, *a, **kw)


def _reject_vault_401(unauthorized, orig, self, url, *args, **kwargs):
    _last_sent[0] = None
    try:
        return orig(self, url, *args, **kwargs)
    except unauthorized:
        fetched = _last_sent[0]
        if fetched is None:
            raise
        raise auth.rejected(fetched, url) from None


def install(clientmod) -> None:
    """Wrap the HTTP client of an executed ``dulwich.client`` module (dulwich 0.21-0.22)."""
    cls = clientmod.Urllib3HttpGitClient
    extensions.wrapfunction(cls, "__init__", _bind_client)
    extensions.wrapfunction(
        cls,
        "_http_request",
        lambda orig, *args, **kwargs: _reject_vault_401(
            clientmod.HTTPUnauthorized, orig, *args, **kwargs
        ),
    )
