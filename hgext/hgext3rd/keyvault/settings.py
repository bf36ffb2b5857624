"""The readers of the extension's configuration and the tuples they return.

Only Mercurial's trusted configuration is read (``ui.config`` ignores
untrusted files by default), so an untrusted ``.hg/hgrc`` never decides where a
secret comes from or where it goes. Loaded only when a command reads them (see
``config``).
"""

from __future__ import annotations

import re
from typing import NamedTuple, overload

from .config import CREDENTIAL_CHOICES, KEYRINGS, PROVIDERS


# NamedTuple, not a dataclass: this module loads with every hg command, and generating two
# dataclasses costs ~2 ms of `hg status` (half the extension's whole cost).
class VaultGroup(NamedTuple):
    """An ``[auth]`` group whose password lives in the vault."""

    name: str
    prefix: str
    schemes: tuple[str, ...]
    username: str | None
    ref: str


class TokenGroup(NamedTuple):
    """An ``[auth]`` group whose credential is the job's own Entra access token."""

    name: str
    prefix: str
    schemes: tuple[str, ...]
    # Normalised to ``<App ID URI or client id>/.default``.
    scope: str
    # "bearer" or "basic".
    token_as: str
    # For ``basic`` only.
    username: str | None


TOKEN_AS = (b"bearer", b"basic")


class VaultSettings(NamedTuple):
    """The ``[keyvault]`` section, as the native ``Vault`` takes it."""

    provider: str
    keyring: str
    expiry_warning_days: float
    url: str | None
    credential: str
    cacerts: str | None
    verify_challenge_resource: bool
    timeout: float
    name_prefix: str
    token_cache: bool = True
    secret_cache: float = 0.0
    id_token_env: str | None = None
    aws_region: str | None = None
    aws_profile: str | None = None

    def keyring_kwargs(self) -> dict:
        return {
            "keyring": self.keyring,
            "timeout": self.timeout,
            "name_prefix": self.name_prefix,
            "expiry_warning": self.expiry_warning_days,
        }

    def store_kwargs(self) -> dict:
        """Every option, for ``Vault.open``: each provider uses those it needs."""
        return {
            **self.native_kwargs(),
            "url": self.url,
            "keyring": self.keyring,
            "aws_region": self.aws_region,
            "aws_profile": self.aws_profile,
        }

    def native_kwargs(self) -> dict:
        return {
            "credential": self.credential,
            "cacerts": self.cacerts,
            "verify_challenge_resource": self.verify_challenge_resource,
            "timeout": self.timeout,
            "name_prefix": self.name_prefix,
            "token_cache": self.token_cache,
            "secret_cache": self.secret_cache,
            "expiry_warning": self.expiry_warning_days,
            "id_token_env": self.id_token_env,
        }


@overload
def _text(value: bytes) -> str: ...
@overload
def _text(value: bytes | None) -> str | None: ...
def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "surrogateescape")


def vault_settings(ui) -> VaultSettings:
    """Read ``[keyvault]``; raise ``error.ConfigError`` naming the bad key."""
    from mercurial import error, util

    credential = ui.config(b"keyvault", b"credential") or b"auto"
    if credential not in CREDENTIAL_CHOICES:
        raise error.ConfigError(
            b"keyvault.credential: unknown credential '%s'" % credential,
            hint=b"use one of: %s" % b", ".join(CREDENTIAL_CHOICES),
        )
    timeout = ui.configwith(float, b"keyvault", b"timeout")
    if not timeout > 0:
        raise error.ConfigError(
            b"keyvault.timeout: must be a positive number of seconds, not %s"
            % ui.config(b"keyvault", b"timeout"),
            hint=b"the default is 10",
        )
    secret_cache = ui.configwith(float, b"keyvault", b"secret-cache")
    if not secret_cache >= 0:
        raise error.ConfigError(
            b"keyvault.secret-cache: must be a number of seconds (0 = off), not %s"
            % ui.config(b"keyvault", b"secret-cache"),
            hint=b"the default is 0: values are read from the vault by every command",
        )
    # An empty value (`url =` in a later hgrc) unsets it.
    url = ui.config(b"keyvault", b"url") or None
    if url is not None and not url.lower().startswith(b"https://"):
        raise error.ConfigError(
            b"keyvault.url: '%s' is not an https:// URL" % url,
            hint=b"use the vault's URI, for example https://contoso-hg.vault.azure.net/",
        )
    provider = ui.config(b"keyvault", b"provider")
    if provider is None:
        # Naming a vault is choosing Azure; without one, the OS keyring.
        provider = b"azure" if url else b"keyring"
    if provider not in PROVIDERS:
        raise error.ConfigError(
            b"keyvault.provider: unknown provider '%s'" % provider,
            hint=b"use one of: %s" % b", ".join(PROVIDERS),
        )
    keyring = ui.config(b"keyvault", b"keyring") or b"auto"
    if keyring not in KEYRINGS:
        raise error.ConfigError(
            b"keyvault.keyring: unknown keyring '%s'" % keyring,
            hint=b"use one of: %s" % b", ".join(KEYRINGS),
        )
    expiry_warning = ui.configwith(float, b"keyvault", b"expiry-warning")
    if not expiry_warning >= 0:
        raise error.ConfigError(
            b"keyvault.expiry-warning: must be a number of days, not %s"
            % ui.config(b"keyvault", b"expiry-warning"),
            hint=b"the default is 14",
        )
    id_token_env = ui.config(b"keyvault", b"id-token-env") or None
    if id_token_env is not None and not re.fullmatch(
        rb"[A-Za-z_][A-Za-z0-9_]{0,127}", id_token_env
    ):
        raise error.ConfigError(
            b"keyvault.id-token-env: '%s' is not an environment variable name" % id_token_env,
            hint=b"name the variable of the job's id_tokens: entry, e.g. AZURE_ID_TOKEN",
        )
    cacerts = ui.config(b"keyvault", b"cacerts")
    if cacerts:
        cacerts = util.expandpath(cacerts)
    return VaultSettings(
        provider=_text(provider),
        keyring=_text(keyring),
        expiry_warning_days=expiry_warning,
        url=_text(url),
        credential=_text(credential),
        cacerts=_text(cacerts) or None,
        verify_challenge_resource=ui.configbool(b"keyvault", b"verify-challenge-resource"),
        timeout=timeout,
        name_prefix=_text(ui.config(b"keyvault", b"name-prefix") or b"hg-"),
        token_cache=ui.configbool(b"keyvault", b"token-cache"),
        secret_cache=secret_cache,
        id_token_env=_text(id_token_env),
        # Empty (`aws-region =` in a later hgrc) unsets them.
        aws_region=_text(ui.config(b"keyvault", b"aws-region") or None),
        aws_profile=_text(ui.config(b"keyvault", b"aws-profile") or None),
    )


def _auth_groups(ui) -> dict[bytes, dict[bytes, bytes]]:
    # ui.configitems reads trusted configuration only: an untrusted .hg/hgrc never decides
    # where a secret or a token goes.
    groups: dict[bytes, dict[bytes, bytes]] = {}
    for key, value in ui.configitems(b"auth"):
        if b"." not in key:
            continue
        group, setting = key.rsplit(b".", 1)
        groups.setdefault(group, {})[setting] = value
    return groups


# An App ID URI (api://..., https://...) or a client id; no spaces, quotes or controls.
_SCOPE_RE = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://[!-~]+|[0-9A-Fa-f-]{36}")


def normalise_scope(value: bytes) -> bytes | None:
    """``<App ID URI or client id>/.default``, or None if ``value`` is neither."""
    value = value.strip()
    if value.endswith(b"/.default"):
        value = value[: -len(b"/.default")]
    value = value.rstrip(b"/")
    if not _SCOPE_RE.fullmatch(value) or b'"' in value or b"\\" in value:
        return None
    return value + b"/.default"


def token_groups(ui) -> list[TokenGroup]:
    """Every ``[auth]`` group that has an ``entra-scope`` key, in configuration order; a
    ``ConfigError`` naming the key for anything inconsistent."""
    from mercurial import error, util

    from . import sanitize

    found = []
    for name, settings in _auth_groups(ui).items():
        raw_scope = settings.get(b"entra-scope")
        if not raw_scope:
            continue
        n = sanitize.local(name)
        for other, what in ((b"password", b"a password"), (b"vault", b"a vault secret")):
            if settings.get(other):
                # Which one would the server get? Neither guess is safe.
                raise error.ConfigError(
                    b"[auth] %s has both entra-scope and %s" % (n, what),
                    hint=b"remove %s.%s: the job's Entra identity is the credential" % (n, other),
                )
        scope = normalise_scope(raw_scope)
        if scope is None:
            raise error.ConfigError(
                b"[auth] %s.entra-scope: '%s' is not an App ID URI or a client id"
                % (n, sanitize.local(raw_scope)),
                hint=b"use the API's App ID URI (api://hg-proxy) or its client id",
            )
        token_as = (settings.get(b"token-as") or b"bearer").strip().lower()
        if token_as not in TOKEN_AS:
            raise error.ConfigError(
                b"[auth] %s.token-as: unknown value '%s'"
                % (n, sanitize.local(settings.get(b"token-as"))),
                hint=b"use bearer (Authorization: Bearer) or basic (the token as the password)",
            )
        username = settings.get(b"username") or None
        if username is not None:
            username = util.expandpath(username)
        if token_as == b"basic":
            if not username:
                raise error.ConfigError(
                    b"[auth] %s.token-as = basic needs %s.username" % (n, n),
                    hint=b"set %s.username to the user the proxy expects" % n,
                )
            if b":" in username:
                raise error.ConfigError(
                    b"[auth] %s.username: '%s' contains ':', which a Basic user name cannot"
                    % (n, sanitize.local(username)),
                    hint=b"choose a user name without ':'",
                )
        else:
            # Bearer carries no user name; one set here would only mislead.
            username = None
        found.append(
            TokenGroup(
                name=_text(name),
                prefix=_text(settings.get(b"prefix") or b""),
                schemes=tuple(_text(settings.get(b"schemes") or b"https").split()),
                scope=_text(scope),
                token_as=_text(token_as),
                username=_text(username),
            )
        )
    return found


def vault_groups(ui) -> list[VaultGroup]:
    """Every ``[auth]`` group that has a ``vault`` key, in configuration order."""
    from mercurial import error, util

    from . import sanitize

    found = []
    for name, settings in _auth_groups(ui).items():
        ref = settings.get(b"vault")
        if not ref or settings.get(b"entra-scope"):
            # A group with both is refused by token_groups().
            continue
        if settings.get(b"password"):
            # Half a migration: the plaintext password would stay in a file, and it
            # would be unclear which one the server gets.
            raise error.ConfigError(
                b"[auth] %s has both a password and a vault secret" % sanitize.local(name),
                hint=b"remove %s.password: the vault provides it" % sanitize.local(name),
            )
        username = settings.get(b"username")
        found.append(
            VaultGroup(
                name=_text(name),
                prefix=_text(settings.get(b"prefix") or b""),
                schemes=tuple(_text(settings.get(b"schemes") or b"https").split()),
                username=_text(util.expandpath(username)) if username else None,
                ref=_text(ref),
            )
        )
    return found
