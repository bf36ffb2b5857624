"""Secrets that are not HTTP passwords (an SSH private key, the SMTP password),
read from the vault once per process and kept in memory only."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from . import config


@dataclass(frozen=True)
class Value:
    """A secret's bytes and the version they came from."""

    ref: str
    value: bytes = field(repr=False)
    version: str | None


_values: dict[tuple[config.VaultSettings, str], Value] = {}


def read(ui, ref: str, context: str) -> Value:
    """The current value of ``ref``; an abort naming ``context`` (e.g. ``[smtp] vault``) if not."""
    from . import sanitize, session

    settings = config.vault_settings(ui)
    cached = _values.get((settings, ref))
    if cached is not None:
        return cached
    client = session.vault(ui)
    start = time.monotonic()
    try:
        value, props = client.get(ref)
    except session.KeyVaultError as exc:
        raise session.abort_for(exc, context) from None
    ui.debug(
        b"keyvault: %s: read %s version %s in %d ms\n"
        % (
            sanitize.local(context),
            sanitize.local(props.get("name")),
            sanitize.local(props.get("version")),
            (time.monotonic() - start) * 1000,
        )
    )
    read_value = Value(ref=ref, value=bytes(value), version=props.get("version"))
    _values[(settings, ref)] = read_value
    return read_value


def forget() -> None:
    _values.clear()
