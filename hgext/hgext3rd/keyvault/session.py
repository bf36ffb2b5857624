"""The process's vault session: one native client, values kept in memory only.

Everything here runs only once a credential is actually needed; importing this
module loads the native core.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mercurial import error

from . import _native, audit, config, sanitize
from ._native import BadRefError, ConfigError, KeyVaultError, Vault


@dataclass
class Fetched:
    """A password read from the vault for one ``[auth]`` group."""

    group: config.VaultGroup
    value: str
    version: str | None
    # "vault", or "secret-cache" when keyvault.secret-cache served it.
    source: str = "vault"
    settings: config.VaultSettings | None = None


# One client per set of settings (and User-Agent, which names the command): chg
# runs many commands in one server, and each forked worker builds its own (the
# core refuses to reuse one across a fork).
_vaults: dict[tuple[config.VaultSettings, str, str], Vault] = {}
_values: dict[tuple[config.VaultSettings, str], Fetched] = {}


def native_module():
    return _native


def _b(text) -> bytes:
    # Messages may carry what a vault or a URL said: no escape sequence reaches the terminal.
    return sanitize.local(text, keep_newlines=True)


def abort_for(exc: KeyVaultError, context: str | None = None) -> error.Abort:
    """Turn a core error into Mercurial's abort with the core's hint."""
    message = _b(exc.message)
    if context:
        message = b"%s: %s" % (_b(context), message)
    hint = _b(exc.hint) if exc.hint else None
    if isinstance(exc, (ConfigError, BadRefError)):
        return error.ConfigError(message, hint=hint)
    return error.Abort(message, hint=hint)


def user_agent(ui) -> str:
    """Appended to the SDK's User-Agent, so that Key Vault's logs tie each request to the
    tool, the repository, the working directory's parent and the hg command."""
    return audit.user_agent(ui, _native.__version__)


def vault(ui, provider: str | None = None) -> Vault:
    """The client of ``provider`` (default: the configured one), built once per process."""
    settings = config.vault_settings(ui)
    provider = provider or settings.provider
    if provider == "azure" and settings.url is None:
        raise error.ConfigError(
            b"keyvault.url is not set",
            hint=b"set [keyvault] url = https://<your-vault>.vault.azure.net/",
        )
    agent = user_agent(ui) if provider == "azure" else ""
    key = (settings, provider, agent)
    client = _vaults.get(key)
    if client is None:
        try:
            if provider == "azure":
                client = Vault(settings.url, user_agent=agent, **settings.native_kwargs())
            else:
                client = Vault.keyring(**settings.keyring_kwargs())
        except KeyVaultError as exc:
            raise abort_for(exc, "keyvault") from None
        _vaults[key] = client
    return client


def secret_name(ref: str, settings: config.VaultSettings) -> str | None:
    try:
        return _native.secret_name(ref, settings.name_prefix)
    except KeyVaultError:
        return None


def password_for(ui, group: config.VaultGroup) -> Fetched:
    """The group's password, read from the vault once per process."""
    settings = config.vault_settings(ui)
    key = (settings, group.ref)
    fetched = _values.get(key)
    if fetched is not None:
        return fetched
    client = vault(ui)
    start = time.monotonic()
    name = secret_name(group.ref, settings)
    try:
        value, props = client.get(group.ref)
    except KeyVaultError as exc:
        audit.record(ui, client, action="read", ref=group.ref, name=name, group=group.name, exc=exc)
        raise abort_for(exc, f"[auth] {group.name}") from None
    # Before the value is used: a configured audit trail that cannot be written stops here.
    audit.record(ui, client, action="read", ref=group.ref, name=name, group=group.name, props=props)
    source = props.get("source") or "vault"
    ui.debug(
        b"keyvault: [auth] %s: read %s version %s %s in %d ms\n"
        % (
            _b(group.name),
            _b(props.get("name")),
            _b(props.get("version")),
            b"from the secret cache" if source == "secret-cache" else b"from the vault",
            (time.monotonic() - start) * 1000,
        )
    )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise error.Abort(
            b"[auth] %s: the secret %s is not UTF-8 text, so it cannot be an HTTP password"
            % (_b(group.name), _b(group.ref)),
            hint=b"store the password as text with: hg vault set %s" % _b(group.ref),
        ) from None
    fetched = Fetched(
        group=group,
        value=text,
        version=props.get("version"),
        source=source,
        settings=settings,
    )
    _values[key] = fetched
    return fetched


def forget(fetched: Fetched) -> None:
    """The server rejected this value: drop it here and from the secret cache, so the next
    command reads the vault again."""
    _values.pop((fetched.settings, fetched.group.ref), None)
    client = _vaults.get(fetched.settings)
    if client is not None:
        try:
            client.forget_cached(fetched.group.ref)
        except KeyVaultError:
            pass


def forget_values() -> None:
    """Drop every value this process holds (tests, and after a rejection)."""
    _values.clear()
