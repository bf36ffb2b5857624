"""credentials from Azure Key Vault or the OS keyring, fetched when needed

With this extension, ``hg clone``, ``hg pull`` and ``hg push`` get their HTTP
password from Azure Key Vault (or the OS keyring) at the moment the server
asks for it, so that no password is ever written to an hgrc, a URL, a log or
a file. The value lives in the memory of the hg process only.

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
standard input; ``hg vault`` shows the state of every configured secret; ``hg
help vault`` lists the operator's subcommands (list, forget, check, migrate).

Without ``keyvault.url`` (or with ``keyvault.provider = keyring``) secrets
live in the OS keyring instead: the Secret Service (gnome-keyring, KWallet,
KeePassXC) or the kernel's keyutils on Linux, the Keychain on macOS, the
Credential Manager on Windows. Refs, commands and states are the same; the
keyring keeps only the current value of each ref.

Every vault request names the tool, the repository, the working directory's
parent and the hg command in its User-Agent, and carries an
``x-ms-client-request-id``, so that Key Vault's diagnostic logs tie each
access to a commit and an identity. ``keyvault.audit-log`` keeps a local
trail as well.

A group matches a URL on its scheme, host, port and path, the path on
segment boundaries (``https://hg.contoso.com/repos`` does not match
``https://hg.contoso.com/repos2`` nor ``https://hg.contoso.com.evil.org/``).
URLs that no vault group matches are left to Mercurial as if the extension
were not enabled.

For ``ssh://`` URLs, a group whose prefix is an ``ssh://`` origin holds an
OpenSSH private key (without passphrase) instead of a password::

  [auth]
  deploy.prefix = ssh://hg.contoso.com/
  deploy.vault = secret://hg/ci-bot/ssh-key

For the life of the hg command, the extension starts a private ``ssh-agent``,
loads the key through ``ssh-add``'s standard input, and gives its socket only
to the ssh command Mercurial runs for that URL (as ``SSH_AUTH_SOCK``; an
``IdentityAgent`` in your ssh_config would override it). The agent is stopped
when the command ends, also after an error or a signal. The key is never
written to a file, an argument or another process's environment.

For ``hg email``, ``[smtp] vault`` names the SMTP password; Mercurial's own
SMTP login uses it instead of prompting (``smtp.username`` is required,
``smtp.password`` must not be set)::

  [smtp]
  host = smtp.contoso.com
  tls = starttls
  username = ci-bot
  vault = secret://hg/ci-bot/smtp

A vault password is sent only to the origin of the group that released it:
after a redirect to another host, or to a subrepository elsewhere, the cached
header is not sent. Prefixes with ``*`` never release a secret. A URL that
carries its own password is used as it is, with a warning, and never gets the
vault's. Vault mappings come only from configuration Mercurial trusts: an
``.hg/hgrc`` owned by another user (not in ``[trusted]``) is ignored, while a
trusted one counts as your own configuration (it can already run hooks as
you). Files inside a repository (``.hgsub``) never add mappings.
Names, refs and messages from a vault, a server or a URL are shown without
control or escape characters.

Behind an identity-aware proxy that validates Microsoft Entra ID access
tokens, nothing needs to be stored at all: the job's own identity is the
credential. A group with ``entra-scope`` gets an access token for that API
from the identity chain below (``keyvault.url`` is not needed) and sends it
on every request to the group's origin, never elsewhere, not after a
redirect either::

  [auth]
  proxy.prefix = https://hg.contoso.com/
  proxy.entra-scope = api://hg-proxy

Tokens share the token cache (per identity and scope) and are renewed before
they expire; a 401 to a token gets one new token, then an abort that names
the identity and the token's audience. See docs/identity-proxy.md.

The identity used to read the vault is found in this order, each tried only
when its inputs exist: environment (``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``,
``AZURE_CLIENT_SECRET``), workload identity (``AZURE_FEDERATED_TOKEN_FILE``),
the CI job's own OIDC token (GitHub/Forgejo Actions with ``id-token: write``,
Azure Pipelines, GitLab/Heptapod ``id_tokens``; with ``AZURE_CLIENT_ID`` and
``AZURE_TENANT_ID``), managed identity (App Service/Container Apps, Azure Arc,
Cloud Shell, Azure Machine Learning, and an Azure VM's IMDS only when the
machine's SMBIOS asset tag says it is one: nothing is probed), Azure CLI
(``az login``). ``hg vault`` says which one answered and why. Reading needs
the role "Key Vault Secrets User" on the vault, writing "Key Vault Secrets
Officer".

Configs::

    [keyvault]
    # Where secrets live: azure, keyring or aws (AWS Secrets Manager)
    # (default: azure when url is set, keyring otherwise).
    provider = azure

    # The vault's URI (https only).
    url = https://contoso-hg.vault.azure.net/

    # Which identity to use: auto (the order above), environment,
    # workload-identity, ci-oidc, managed-identity or azure-cli. Naming one
    # pins it; managed-identity named here also asks the VM metadata
    # endpoint without the SMBIOS evidence.
    credential = auto

    # The environment variable holding the CI job's ID token, for GitLab and
    # Heptapod id_tokens: (aud: api://AzureADTokenExchange) (default: none).
    id-token-env = AZURE_ID_TOKEN

    # A PEM file of extra root certificates, for the vault and the identity
    # endpoints, added to the system's (private clouds, tests).
    cacerts = /etc/ssl/private-ca.pem

    # Check that the vault's authentication challenge names a resource of the
    # vault's own domain, as the Azure SDKs do (default: True).
    verify-challenge-resource = True

    # Seconds one vault operation may take, identity included (default: 10).
    timeout = 10

    # The prefix of the Key Vault names that secret:// references map to
    # (default: hg-). The keyring uses the same names.
    name-prefix = hg-

    # Which OS keyring: auto (Linux: the Secret Service if one answers on
    # the session bus, else keyutils), secret-service, keyutils,
    # macos-keychain or windows-credential-manager.
    keyring = auto

    # AWS Secrets Manager: the region of secret:// refs (default: none, then
    # AWS_REGION, AWS_DEFAULT_REGION, the profile's region; ARN refs carry
    # their own) and the profile of the shared config files (default: none,
    # then AWS_PROFILE, else default).
    aws-region = eu-west-1
    aws-profile = ci

    # Days before expiry from which hg vault reports "expiring soon"
    # (default: 14).
    expiry-warning = 14

    # Append one JSON line per secret access to this file: time, OS user,
    # identity ids, repository, node, command, ref, name, version, request
    # id, outcome; never a value (default: none).
    audit-log = ~/.local/state/hg-keyvault/audit.jsonl

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
    # The vault reference of the group's password (replaces GROUP.password),
    # or, for an ssh:// prefix, of its OpenSSH private key.
    GROUP.vault = secret://hg/ci-bot/password

    # Instead of a password: the API behind an identity-aware proxy, as its
    # App ID URI or client id, with or without /.default. The identity of
    # keyvault.credential gets a token for it (no vault needed).
    GROUP.entra-scope = api://hg-proxy

    # How the token is sent: bearer (Authorization: Bearer, the default) or
    # basic (the token is the password of GROUP.username, which is then
    # required and must not contain ':').
    GROUP.token-as = bearer

    [smtp]
    # The vault reference of the SMTP password of hg email (replaces
    # smtp.password).
    vault = secret://hg/ci-bot/smtp
"""

from __future__ import annotations

import sys

from mercurial import cmdutil, registrar

# What loads with every hg command is this module alone, so it holds all that Mercurial needs at
# load time: the tables, the version lines, and the set-up of uisetup. Each submodule of the
# package costs about 0.4 M instructions to find and load (0.05% of `hg status`) even before
# it runs; they load when a command uses them (the native core only when a credential is needed).

# Mercurial reads these from the extension module. They name the lines the end-to-end suite
# runs on: `make test` (tests/requirements.txt) and `make test-compat` (COMPAT_HG_VERSION in the
# Makefile); tests/test_compat.py fails when either changes without them.
testedwith = b"6.3 7.2"
minimumhgversion = b"6.3"
buglink = b"https://github.com/hg-keyvault/hg-keyvault/issues"

# The configuration items (their readers are in ``config`` and ``settings``). Only Mercurial's
# trusted configuration is read (``ui.config`` ignores untrusted files by default), so an
# untrusted ``.hg/hgrc`` never decides where a secret comes from or where it goes.
configtable: dict = {}
_configitem = registrar.configitem(configtable)

_configitem(b"keyvault", b"url", default=None)
_configitem(b"keyvault", b"credential", default=b"auto")
_configitem(b"keyvault", b"cacerts", default=None)
_configitem(b"keyvault", b"verify-challenge-resource", default=True)
_configitem(b"keyvault", b"timeout", default=10.0)
_configitem(b"keyvault", b"name-prefix", default=b"hg-")
_configitem(b"keyvault", b"provider", default=None)
_configitem(b"keyvault", b"keyring", default=b"auto")
_configitem(b"keyvault", b"expiry-warning", default=14)
_configitem(b"keyvault", b"audit-log", default=None)
# The vault ref of the SMTP password (hg email); see smtp.py.
_configitem(b"smtp", b"vault", default=None)
_configitem(b"keyvault", b"token-cache", default=True)
_configitem(b"keyvault", b"secret-cache", default=0.0)
# The environment variable holding the CI's ID token (GitLab/Heptapod id_tokens:).
_configitem(b"keyvault", b"id-token-env", default=None)
# AWS Secrets Manager (provider = aws): the default region and the shared-config profile.
_configitem(b"keyvault", b"aws-region", default=None)
_configitem(b"keyvault", b"aws-profile", default=None)

# ``hg vault``: its help and options; what it does is in ``commands`` (and each subcommand's
# ``cmd_*`` module), loaded when it runs. The option texts are not passed through ``_()``: no
# message catalogue carries them, so it would only cost every command (0.01% of `hg status`).
cmdtable: dict = {}
_command = registrar.command(cmdtable)


@_command(
    b"vault",
    [
        (b"", b"expires", b"", b"set: expiry, in days or a UTC date", b"DAYS|DATE"),
        (b"", b"tag", [], b"set: a tag (repeatable)", b"KEY=VALUE"),
        (b"", b"yes", False, b"forget: delete without asking"),
        (b"", b"from", b"", b"migrate: copy from this provider", b"PROVIDER"),
        (b"", b"to", b"", b"migrate: copy to this provider", b"PROVIDER"),
        (b"n", b"dry-run", False, b"migrate: only say what would be copied"),
        (
            b"",
            b"remove-source",
            False,
            b"migrate: delete each secret from the source once copied",
        ),
        (b"", b"reveal", False, b"check: show the password (on a terminal only)"),
    ]
    + cmdutil.formatteropts,
    b"[status | set REF | list | forget REF | check URL | migrate --from P --to P]",
    helpcategory=_command.CATEGORY_MISC,
    norepo=True,
)
def vault(ui, *args, **opts):
    """show the secret store's state, or manage the secrets in it

    ``hg vault`` (or ``hg vault status``) shows the provider (Azure Key Vault
    or the OS keyring) and where it keeps secrets, the credential and identity
    used, whether the store answered and how fast, and the state of the secret
    of every ``[auth]`` group with a ``vault`` key: ok, expiring soon (within
    ``keyvault.expiry-warning`` days), missing, forbidden, disabled, expired,
    not yet valid. ``hg vault list`` and ``hg vault check`` report the same
    states, computed once by the core.
    It exits 1 when any configured secret cannot be read, so a CI job can run
    it as a preflight.

    ``hg vault set REF`` stores the value read from standard input (or typed at
    a hidden prompt) under REF as a new version; readers get it from then on.
    ``--expires`` sets its expiry (days, or a UTC date), ``--tag KEY=VALUE``
    its tags.

    ``hg vault list`` lists every secret hg-keyvault manages in the store, with
    its version count, state, expiry and tags.

    ``hg vault forget REF`` deletes a secret, after confirmation or with
    ``--yes`` (Key Vault keeps it recoverable until its purge date).

    ``hg vault check URL`` says which ``[auth]`` group covers URL and why (or
    why none does), and whether its secret can be read now. ``--reveal`` shows
    the password, only when standard output is a terminal.

    ``hg vault migrate --from keyring --to azure`` (or back) copies every
    managed secret, verifies each copy by reading it back, and reports counts.
    Running it again copies nothing new. ``--dry-run`` only reports;
    ``--remove-source`` deletes each secret from the source once its copy is
    verified.

    Every subcommand takes ``-T json``. None ever prints a value, except
    ``check --reveal`` on a terminal.

    Returns 0 on success, 1 if a secret cannot be read (status, check) or a
    copy failed (migrate).
    """
    from . import commands

    return commands.run(ui, args, opts)


def __getattr__(name: str):
    # PEP 562: Mercurial reads __version__ only for `hg version` (and crash reports); looking it
    # up at import would cost every command.
    if name == "__version__":
        from . import version

        globals()["__version__"] = value = version.installed()
        return value
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


# -- the audit trail's context ---------------------------------------------------------------

# The command being dispatched and its repository (may be None), for the audit trail: ``audit``
# reads them when a vault access happens (one command per process, or per chg worker).
dispatched: tuple = (None, None)


def _record_dispatch(orig, lui, repo, cmd, *args, **kwargs):
    global dispatched
    dispatched = (cmd, repo)
    return orig(lui, repo, cmd, *args, **kwargs)


# -- wrapping Mercurial's modules when they run ----------------------------------------------
# Wrapping ``mercurial.url`` at set-up would import it (with ssl and email) in every command,
# about 16-21 ms that ``hg status`` or ``hg log`` never needed. Instead the wrappers are installed
# at the moment the module is executed, whether Mercurial's demand importer loads it lazily or
# something imports it for real. Callbacks are named as ``"package.module:function"`` and
# imported only when their module runs.

# Module name -> callbacks waiting for it to be executed.
_pending: dict = {}


def _run(callbacks: list, module) -> None:
    import importlib

    for target in callbacks:
        modname, _sep, func = target.partition(":")
        getattr(importlib.import_module(modname), func)(module)


class _CallbackLoader:
    """Delegates to the real loader, then hands the executed module on."""

    def __init__(self, loader, callbacks: list):
        self._loader = loader
        self._callbacks = callbacks

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _run(self._callbacks, module)

    def __getattr__(self, name):
        # get_source, get_code, is_package...: whatever the real loader offers.
        return getattr(self._loader, name)


def _wrap_loader(spec, callbacks: list) -> None:
    import importlib.util

    loader = spec.loader
    if isinstance(loader, importlib.util.LazyLoader):
        # Keep the import lazy: wrap the loader that runs on first attribute access.
        loader.loader = _CallbackLoader(loader.loader, callbacks)  # type: ignore[attr-defined]
    else:
        spec.loader = _CallbackLoader(loader, callbacks)


class _Finder:
    """The one meta path entry: answers only for the modules in ``_pending``."""

    def find_spec(self, fullname, path, target=None):
        callbacks = _pending.get(fullname)
        if callbacks is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                del _pending[fullname]
                _wrap_loader(spec, callbacks)
                return spec
        return None


_finder = _Finder()


def _leave_meta_path() -> None:
    # At exit, before the interpreter's clean-up: an entry of sys.meta_path lives until late in
    # that clean-up and, through this module, would keep Mercurial's modules alive past its
    # first collection, to be cleared one by one (6 M instructions, 0.8% of `hg status`).
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)


def on_module_executed(fullname: str, callback: str) -> None:
    """Call ``callback`` (``"package.module:function"``) with module ``fullname`` once it
    has run, now if it already has."""
    import importlib.util

    module = sys.modules.get(fullname)
    if module is None:
        if fullname in _pending:
            _pending[fullname].append(callback)
            return
        _pending[fullname] = [callback]
        if _finder not in sys.meta_path:
            import atexit

            sys.meta_path.insert(0, _finder)
            atexit.register(_leave_meta_path)
    # type(), not isinstance(): reading __class__ of a lazy module would load it.
    elif issubclass(type(module), importlib.util._LazyModule):  # type: ignore[attr-defined]
        # Registered but not executed yet: read the spec without triggering the load.
        spec = object.__getattribute__(module, "__spec__")
        spec.loader = _CallbackLoader(spec.loader, [callback])
    else:
        _run([callback], module)


def uisetup(ui):
    from mercurial import dispatch, extensions

    # Callbacks by name (this package's: ``hgext_keyvault`` when enabled by path).
    on_module_executed("mercurial.url", __name__ + ".auth:install")
    on_module_executed("mercurial.url", __name__ + ".tokenauth:install")
    # hg-git's HTTP client, when hg-git loads it.
    on_module_executed("dulwich.client", __name__ + ".gitauth:install")
    on_module_executed("mercurial.sshpeer", __name__ + ".ssh:install")
    on_module_executed("mercurial.mail", __name__ + ".smtp:install")
    # The audit trail names the command and repository of each vault access.
    extensions.wrapfunction(dispatch, "runcommand", _record_dispatch)
