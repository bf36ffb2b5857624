"""credentials from Azure Key Vault, fetched when Mercurial needs them

With this extension, ``hg clone``, ``hg pull`` and ``hg push`` get their HTTP
password from Azure Key Vault at the moment the server asks for it, so that no
password is ever written to an hgrc, a URL, a log or a file. The value lives
in the memory of the hg process only.

Point the extension at a vault, and give an ``[auth]`` group a ``vault`` key
instead of a ``password``::

  [extensions]
  keyvault =

  [keyvault]
  url = https://contoso-hg.vault.azure.net/

  [auth]
  corp.prefix = https://hg.contoso.com/
  corp.username = ci-bot
  corp.vault = secret://hg/ci-bot/password

A ``vault`` value is a secret reference: either ``secret://`` followed by
slash-separated segments (stored under a name derived from it), or a Key
Vault secret identifier such as
``https://contoso-hg.vault.azure.net/secrets/ci-bot-password`` (used as it
is, optionally with a version). ``hg vault set REF`` stores a value read from
standard input; ``hg vault`` shows the state of every configured secret.

A group matches a URL on its scheme, host, port and path, the path on
segment boundaries (``https://hg.contoso.com/repos`` does not match
``https://hg.contoso.com/repos2`` nor ``https://hg.contoso.com.evil.org/``).
URLs that no vault group matches are left to Mercurial as if the extension
were not enabled.

The identity used to read the vault is found in this order, each tried only
when its inputs exist: environment (``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``,
``AZURE_CLIENT_SECRET``), workload identity (``AZURE_FEDERATED_TOKEN_FILE``),
managed identity (``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER``), Azure CLI
(``az login``). Reading needs the role "Key Vault Secrets User" on the vault,
writing "Key Vault Secrets Officer".

Configs::

    [keyvault]
    # The vault's URI (https only).
    url = https://contoso-hg.vault.azure.net/

    # Which identity to use: auto (the order above), environment,
    # workload-identity, managed-identity or azure-cli. Naming one pins it;
    # managed-identity named here also tries the VM metadata endpoint.
    credential = auto

    # A PEM file of extra root certificates, for the vault and the identity
    # endpoints, added to the system's (private clouds, tests).
    cacerts = /etc/ssl/private-ca.pem

    # Check that the vault's authentication challenge names a resource of the
    # vault's own domain, as the Azure SDKs do (default: True).
    verify-challenge-resource = True

    # Seconds one vault operation may take, identity included (default: 10).
    timeout = 10

    # The prefix of the Key Vault names that secret:// references map to
    # (default: hg-).
    name-prefix = hg-

    # Share access tokens between your hg processes, in the kernel's per-user
    # keyring (memory only, never a file), each until 5 minutes before it
    # expires, with what the vault's challenge said: a warm command sends one
    # request to the vault. Dropped when the vault refuses it. Without kernel
    # keyutils, tokens are kept for the process only (default: True).
    token-cache = True

    # Keep the values read from the vault this many seconds in the kernel's
    # per-user keyring (memory only; any process of your user can read
    # them), so that commands in a burst read each secret once. Never
    # written anywhere else: without kernel keyutils, nothing is cached.
    # ``hg vault`` shows what is cached (default: 0, off).
    secret-cache = 0

    [auth]
    # The vault reference of the group's password (replaces GROUP.password).
    GROUP.vault = secret://hg/ci-bot/password
"""

from __future__ import annotations

from . import commands, config, loadhook

# Mercurial reads these from the extension module.
testedwith = b"7.2"
minimumhgversion = b"6.0"
buglink = b"https://github.com/hg-keyvault/hg-keyvault/issues"

configtable = config.configtable
cmdtable = commands.cmdtable


def _install_auth_wrappers(urlmod) -> None:
    from . import auth

    auth.install(urlmod)


def uisetup(ui):
    # Wrap mercurial.url when it runs, not now: importing it costs every command.
    loadhook.on_module_executed("mercurial.url", _install_auth_wrappers)
