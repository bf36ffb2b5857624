"""The extension's configuration items, registered with Mercurial, and the entry points of
their readers.

This module loads with every hg command, so it holds only what Mercurial needs at load
time; the readers and the tuples they return live in ``settings`` (building the tuple
classes compiles code, about 0.4% of ``hg status``), loaded when a command reads them.
Only Mercurial's trusted configuration is read (``ui.config`` ignores untrusted files by
default), so an untrusted ``.hg/hgrc`` never decides where a secret comes from or where it
goes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mercurial import registrar

configtable: dict = {}
configitem = registrar.configitem(configtable)

configitem(b"keyvault", b"url", default=None)
configitem(b"keyvault", b"credential", default=b"auto")
configitem(b"keyvault", b"cacerts", default=None)
configitem(b"keyvault", b"verify-challenge-resource", default=True)
configitem(b"keyvault", b"timeout", default=10.0)
configitem(b"keyvault", b"name-prefix", default=b"hg-")
configitem(b"keyvault", b"provider", default=None)
configitem(b"keyvault", b"keyring", default=b"auto")
configitem(b"keyvault", b"expiry-warning", default=14)
configitem(b"keyvault", b"audit-log", default=None)
# The vault ref of the SMTP password (hg email); see smtp.py.
configitem(b"smtp", b"vault", default=None)
configitem(b"keyvault", b"token-cache", default=True)
configitem(b"keyvault", b"secret-cache", default=0.0)
# The environment variable holding the CI's ID token (GitLab/Heptapod id_tokens:).
configitem(b"keyvault", b"id-token-env", default=None)
# AWS Secrets Manager (provider = aws): the default region and the shared-config profile.
configitem(b"keyvault", b"aws-region", default=None)
configitem(b"keyvault", b"aws-profile", default=None)

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
