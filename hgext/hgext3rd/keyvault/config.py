"""The entry points of the configuration's readers and the values some keys may take.

The items themselves are registered in the package's ``__init__``; the readers and the tuples
they return live in ``settings`` (building the tuple classes compiles code, about 0.4% of
``hg status``), loaded when a command reads them. Only Mercurial's trusted configuration is
read (``ui.config`` ignores untrusted files by default), so an untrusted ``.hg/hgrc`` never
decides where a secret comes from or where it goes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# Registered with Mercurial in the package's ``__init__`` (the module that loads with every
# command); named here too for the code and tests that look for them in ``config``.
from . import configtable  # noqa: F401

CREDENTIAL_CHOICES = (
    b"auto",
    b"environment",
    b"workload-identity",
    b"ci-oidc",
    b"managed-identity",
    b"azure-cli",
)


PROVIDERS = (b"azure", b"keyring", b"aws")

KEYRINGS = (
    b"auto",
    b"secret-service",
    b"keyutils",
    b"macos-keychain",
    b"windows-credential-manager",
)

if TYPE_CHECKING:
    from .settings import TokenGroup, VaultGroup, VaultSettings


def vault_settings(ui) -> VaultSettings:
    """Read ``[keyvault]`` (see ``settings.vault_settings``)."""
    from . import settings

    return settings.vault_settings(ui)


def vault_groups(ui) -> list[VaultGroup]:
    """Every ``[auth]`` group with a ``vault`` key (see ``settings.vault_groups``)."""
    from . import settings

    return settings.vault_groups(ui)


def token_groups(ui) -> list[TokenGroup]:
    """Every ``[auth]`` group with an ``entra-scope`` key (see ``settings.token_groups``)."""
    from . import settings

    return settings.token_groups(ui)


def __getattr__(name: str):
    # PEP 562: the tuples and helpers of ``settings`` for the modules that name them here.
    if name in ("VaultGroup", "VaultSettings", "TokenGroup", "normalise_scope"):
        from . import settings

        return getattr(settings, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
