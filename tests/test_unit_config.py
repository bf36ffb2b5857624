"""config.py, imported directly: how [keyvault] and [auth] read, and which values are
configuration errors naming their key (no hg subprocess)."""

from __future__ import annotations

import pytest
from hgext3rd.keyvault import config
from hgui import make_ui
from mercurial import error


def test_defaults_choose_the_keyring_without_a_url(tmp_path):
    settings = config.vault_settings(make_ui(tmp_path))
    assert settings.provider == "keyring"
    assert settings.url is None
    assert settings.credential == "auto"
    assert settings.keyring == "auto"
    assert settings.timeout == 10.0
    assert settings.name_prefix == "hg-"
    assert settings.expiry_warning_days == 14
    assert settings.secret_cache == 0.0
    assert settings.token_cache is True
    assert settings.verify_challenge_resource is True


def test_a_url_chooses_azure_and_every_key_reaches_the_native_arguments(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    ui = make_ui(
        tmp_path,
        "[keyvault]\nurl = https://contoso.vault.azure.net/\ncredential = azure-cli\n"
        "cacerts = ~/ca.pem\nverify-challenge-resource = no\ntimeout = 2.5\n"
        "name-prefix = ci-\ntoken-cache = off\nsecret-cache = 30\nexpiry-warning = 3\n"
        "id-token-env = GITLAB_AZURE_TOKEN\n",
    )
    settings = config.vault_settings(ui)
    assert settings.provider == "azure"
    assert settings.native_kwargs() == {
        "credential": "azure-cli",
        "cacerts": f"{tmp_path}/ca.pem",
        "verify_challenge_resource": False,
        "timeout": 2.5,
        "name_prefix": "ci-",
        "token_cache": False,
        "secret_cache": 30.0,
        "expiry_warning": 3.0,
        "id_token_env": "GITLAB_AZURE_TOKEN",
    }
    assert settings.keyring_kwargs() == {
        "keyring": "auto",
        "timeout": 2.5,
        "name_prefix": "ci-",
        "expiry_warning": 3.0,
    }


def test_an_empty_url_in_a_later_file_unsets_it(tmp_path):
    ui = make_ui(tmp_path, "[keyvault]\nurl = https://a.vault.azure.net/\n")
    ui.setconfig(b"keyvault", b"url", b"", b"later")
    assert config.vault_settings(ui).url is None
    assert config.vault_settings(ui).provider == "keyring"


def test_settings_are_hashable_and_equal_for_equal_config(tmp_path):
    # session.py keys its clients and values by them.
    one = config.vault_settings(make_ui(tmp_path, "[keyvault]\ntimeout = 3\n"))
    two = config.vault_settings(make_ui(tmp_path, "[keyvault]\ntimeout = 3\n"))
    assert one == two and hash(one) == hash(two)
    assert {one: 1}[two] == 1


@pytest.mark.parametrize(
    ("hgrc", "message", "hint"),
    [
        ("credential = magic", b"keyvault.credential: unknown credential 'magic'", b"azure-cli"),
        ("timeout = 0", b"keyvault.timeout: must be a positive number of seconds, not 0", b"10"),
        ("secret-cache = -1", b"keyvault.secret-cache: must be a number of seconds", b"0"),
        ("url = http://a.vault.azure.net/", b"'http://a.vault.azure.net/' is not an https://", b""),
        ("provider = gcp", b"keyvault.provider: unknown provider 'gcp'", b"azure, keyring, aws"),
        ("keyring = pass", b"keyvault.keyring: unknown keyring 'pass'", b"keyutils"),
        ("expiry-warning = -2", b"keyvault.expiry-warning: must be a number of days", b"14"),
    ],
)
def test_bad_values_are_config_errors_naming_the_key(tmp_path, hgrc, message, hint):
    ui = make_ui(tmp_path, f"[keyvault]\n{hgrc}\n")
    with pytest.raises(error.ConfigError) as raised:
        config.vault_settings(ui)
    assert message in raised.value.message
    assert hint in (raised.value.hint or b"")


def test_vault_groups_in_order_with_schemes_and_expanded_username(tmp_path, monkeypatch):
    monkeypatch.setenv("CI_USER", "bot")
    ui = make_ui(
        tmp_path,
        "[auth]\n"
        "b.prefix = https://b.example/\nb.username = $CI_USER\nb.vault = secret://b\n"
        "plain.prefix = https://plain.example/\nplain.password = not-ours\n"
        "a.prefix = hg.example/repos\na.schemes = http https\na.vault = secret://a\n"
        "nodot = ignored\n",
    )
    groups = config.vault_groups(ui)
    assert groups == [
        config.VaultGroup("b", "https://b.example/", ("https",), "bot", "secret://b"),
        config.VaultGroup("a", "hg.example/repos", ("http", "https"), None, "secret://a"),
    ]


def test_a_group_with_a_password_and_a_vault_is_a_config_error(tmp_path):
    ui = make_ui(tmp_path, "[auth]\nx.prefix = https://x/\nx.password = p\nx.vault = secret://x\n")
    with pytest.raises(error.ConfigError) as raised:
        config.vault_groups(ui)
    assert raised.value.message == b"[auth] x has both a password and a vault secret"
    assert raised.value.hint == b"remove x.password: the vault provides it"


def test_the_providers_are_those_of_the_core_table():
    # keyvault.provider accepts exactly the providers the core's table opens, in its order.
    from hgext3rd.keyvault import _native

    assert [name.encode() for name, _needs in _native.providers()] == list(config.PROVIDERS)
    assert dict(_native.providers())["azure"] == ["url"]


def test_store_kwargs_carry_every_option_for_any_provider(tmp_path):
    ui = make_ui(
        tmp_path,
        "[keyvault]\nurl = https://contoso.vault.azure.net/\nkeyring = keyutils\n"
        "aws-region = eu-west-1\naws-profile = ci\n",
    )
    settings = config.vault_settings(ui)
    kwargs = settings.store_kwargs()
    assert kwargs == {
        **settings.native_kwargs(),
        "url": "https://contoso.vault.azure.net/",
        "keyring": "keyutils",
        "aws_region": "eu-west-1",
        "aws_profile": "ci",
    }
