"""The process's vault session: one native client, values kept in memory only.

Everything here runs only once a credential is actually needed; importing this
module loads the native core.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

from mercurial import error

from . import _native, audit, config, sanitize
from ._native import BadRefError, ConfigError, KeyVaultError, Vault


@dataclass
class Fetched:
    """A secret read for one use: an ``[auth]`` group's HTTP password or SSH key, the SMTP
    password. Kept in this process's memory only."""

    ref: str
    # How messages name the use: "[auth] corp", "[smtp] vault".
    context: str
    value: bytes = field(repr=False)
    version: str | None
    # "vault", or "secret-cache" when keyvault.secret-cache served it.
    source: str = "vault"
    group: config.VaultGroup | None = None
    # The client that read it: forget() drops the value from that client's secret cache.
    client: Vault | None = field(default=None, repr=False, compare=False)


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
    """The client of ``provider`` (default: the configured one), built once per process.
    Every provider is opened the same way, through the core's provider table."""
    settings = config.vault_settings(ui)
    provider = provider or settings.provider
    options = settings.store_kwargs()
    try:
        # The provider's own sentence for a missing option (``keyvault.url is not set``).
        _native.check_needs(provider, [k for k, v in options.items() if v is not None])
    except KeyVaultError as exc:
        raise abort_for(exc) from None
    agent = user_agent(ui)
    key = (settings, provider, agent)
    client = _vaults.get(key)
    if client is None:
        try:
            client = Vault.open(provider, user_agent=agent, **options)
        except KeyVaultError as exc:
            raise abort_for(exc, "keyvault") from None
        _vaults[key] = client
    return client


def secret_name(client: Vault, ref: str) -> str | None:
    """The name ``client``'s store keeps ``ref`` under (None when it cannot hold that ref)."""
    try:
        return client.name_of(ref)
    except KeyVaultError:
        return None


def read(
    ui, ref: str, *, use: str, context: str, group: config.VaultGroup | None = None
) -> Fetched:
    """The current value of ``ref`` for ``use`` (``http``, ``ssh``, ``smtp``, ``reveal``): the
    one read path of every kind of value. Read from the store once per process, recorded in
    the audit log (when one is set) before the value is used, and an abort naming ``context``
    if it cannot be read."""
    settings = config.vault_settings(ui)
    key = (settings, ref)
    held = _values.get(key)
    if held is not None:
        # Another use of the same secret in this process (two groups may share a ref).
        return dataclasses.replace(held, context=context, group=group)
    client = vault(ui)
    start = time.monotonic()
    name = secret_name(client, ref)
    group_name = group.name if group is not None else None
    try:
        value, props = client.get(ref)
    except KeyVaultError as exc:
        audit.record(
            ui, client, action="read", use=use, ref=ref, name=name, group=group_name, exc=exc
        )
        raise abort_for(exc, context) from None
    # Before the value is used: a configured audit trail that cannot be written stops here.
    audit.record(
        ui, client, action="read", use=use, ref=ref, name=name, group=group_name, props=props
    )
    source = props["source"]
    ui.debug(
        b"keyvault: %s: read %s version %s %s in %d ms\n"
        % (
            _b(context),
            _b(props.get("name")),
            _b(props.get("version")),
            b"from the secret cache" if source == "secret-cache" else b"from the vault",
            (time.monotonic() - start) * 1000,
        )
    )
    fetched = Fetched(
        ref=ref,
        context=context,
        value=bytes(value),
        version=props.get("version"),
        source=source,
        group=group,
        client=client,
    )
    _values[key] = fetched
    return fetched


def password_text(fetched: Fetched) -> str:
    """The value as an HTTP password (text), or an abort saying how to store it."""
    try:
        text = fetched.value.decode("utf-8")
    except UnicodeDecodeError:
        raise error.Abort(
            b"%s: the secret %s is not UTF-8 text, so it cannot be an HTTP password"
            % (_b(fetched.context), _b(fetched.ref)),
            hint=b"store the password as text with: hg vault set %s" % _b(fetched.ref),
        ) from None
    if not text.isascii():
        # Mercurial builds the Basic header with an ASCII encoding (url.httpbasicauthhandler):
        # anything else would end in a UnicodeEncodeError traceback, here or in Mercurial.
        raise error.Abort(
            b"%s: the secret %s is not ASCII, and Mercurial sends only ASCII passwords"
            % (_b(fetched.context), _b(fetched.ref)),
            hint=b"store an ASCII password with: hg vault set %s" % _b(fetched.ref),
        )
    return text


def forget(fetched: Fetched) -> None:
    """A server rejected this value: drop it here and from the secret cache, so the next
    command reads the vault again."""
    for key, held in list(_values.items()):
        if held.ref == fetched.ref and held.client is fetched.client:
            del _values[key]
    if fetched.client is not None:
        try:
            fetched.client.forget_cached(fetched.ref)
        except KeyVaultError:
            pass


def forget_values() -> None:
    """Drop every value this process holds."""
    _values.clear()
