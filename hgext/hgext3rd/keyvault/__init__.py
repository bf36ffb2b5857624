"""credentials from Azure Key Vault or the OS keyring, fetched when needed

This extension gives Mercurial its credentials at the moment it needs them,
so that no password, token or key is ever written to an hgrc, a URL or a log.

The Rust core lives in the private module ``hgext3rd.keyvault._native`` and is
imported only when a credential is actually needed.
"""

from __future__ import annotations

# Mercurial reads these from the extension module.
testedwith = b"7.2"
minimumhgversion = b"6.0"
buglink = b"https://github.com/hg-keyvault/hg-keyvault/issues"


def native():
    """Return the native core module, importing it on first use.

    Commands that need no credential never pay for loading it.
    """
    from . import _native  # noqa: PLC0415 - deliberately lazy

    return _native
