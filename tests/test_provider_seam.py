"""The provider seam from Python: every store is opened through the core's provider table
(`Vault.open`) and answers the same interface; what differs between providers is data
(`info()`, `cache_status()`, `identity()`), never a branch in the extension."""

from __future__ import annotations

import pytest
from emulator import Emulator, start_emulator
from hgext3rd.keyvault import _native


@pytest.fixture(scope="module")
def emulator(tmp_path_factory) -> Emulator:
    emu = start_emulator(tmp_path_factory.mktemp("seam"))
    try:
        yield emu
    finally:
        emu.stop()


def test_an_unknown_provider_is_a_config_error_listing_the_table():
    with pytest.raises(_native.ConfigError) as caught:
        _native.Vault.open("gnome")
    assert caught.value.message == "keyvault.provider: unknown provider 'gnome'"
    names = [name for name, _needs in _native.providers()]
    assert caught.value.hint == "use one of: " + ", ".join(names)


def test_a_missing_needed_option_is_named_with_the_tables_hint():
    with pytest.raises(_native.ConfigError) as caught:
        _native.Vault.open("azure")
    assert caught.value.message == "keyvault.url is not set"
    assert caught.value.hint == "set [keyvault] url = https://<your-vault>.vault.azure.net/"
    with pytest.raises(_native.ConfigError) as checked:
        _native.check_needs("azure", ["credential", "timeout"])
    assert (checked.value.message, checked.value.hint) == (caught.value.message, caught.value.hint)
    _native.check_needs("azure", ["url"])
    _native.check_needs("keyring", [])


def test_azure_through_the_table_reads_and_describes_itself(emulator, monkeypatch):
    p = emulator.principal("officer")
    monkeypatch.setenv("AZURE_TENANT_ID", emulator.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", p["client_id"])
    monkeypatch.setenv("AZURE_CLIENT_SECRET", p["client_secret"])
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", emulator.authority_host)
    v = _native.Vault.open(
        "azure",
        url=emulator.vault_url,
        credential="environment",
        cacerts=emulator.ca_file,
        verify_challenge_resource=False,
        keyring="keyutils",  # another provider's option: ignored here
    )
    v.set("secret://seam/azure", b"value")
    value, props = v.get("secret://seam/azure")
    assert value == b"value"
    assert props["source"] == "vault"
    assert v.provider == "azure"
    assert v.url == emulator.vault_url
    info = v.info()
    assert (info["label"], info["location_key"], info["location"]) == (
        "vault",
        "url",
        emulator.vault_url,
    )
    assert info["credential"] == "environment"
    assert v.selected_link() == "environment"
    assert v.identity_applies()
    identity = v.identity()
    assert identity is not None
    assert identity["client_id"] == p["client_id"]
    caches = v.cache_status()
    assert caches is not None
    assert caches["token_cache"] in ("kernel-keyring", "process")


def test_the_keyring_takes_the_defaults_of_a_store_without_caches_or_identity():
    v = _native.Vault.open("keyring", keyring="keyutils", url="https://ignored.example/")
    assert v.provider == "keyring"
    assert v.url is None
    info = v.info()
    assert (info["label"], info["location_key"], info["credential"]) == (
        "keyring",
        "keyring",
        None,
    )
    assert v.cache_status() is None
    assert v.identity() is None
    assert v.selected_link() is None
    assert v.identity_applies()
    assert v.cached_for("secret://seam/none") is None
    v.forget_cached("secret://seam/none")
