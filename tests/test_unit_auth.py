"""auth.py, imported directly: which [auth] vault group a URL gets (the core's matcher fed
from Mercurial's config) and the Basic header it would send (no hg subprocess)."""

from __future__ import annotations

import base64

import pytest
from hgext3rd.keyvault import auth
from hgui import make_ui
from mercurial import error

GROUPS = (
    "[auth]\n"
    "corp.prefix = https://hg.example.com/\ncorp.vault = secret://corp\n"
    "repos.prefix = https://hg.example.com/repos\nrepos.vault = secret://repos\n"
    "bob.prefix = https://hg.example.com/\nbob.username = bob\nbob.vault = secret://bob\n"
    "both.prefix = hg.other.example\nboth.schemes = http https\nboth.vault = secret://both\n"
    "plain.prefix = https://plain.example/\nplain.username = u\nplain.password = p\n"
)


@pytest.mark.parametrize(
    ("url", "user", "group"),
    [
        # On a tie the group naming a username wins, as in Mercurial's readauthforuri.
        ("https://hg.example.com/x", None, "bob"),
        ("https://hg.example.com/repos/app", None, "repos"),  # the longest prefix wins
        ("https://hg.example.com/repos2", "alice", "corp"),  # segment boundaries only
        ("https://hg.example.com/x", "bob", "bob"),
        ("https://hg.example.com/x", "alice", "corp"),  # bob's group is not alice's
        ("https://hg.example.com.evil.org/x", None, None),
        ("http://hg.example.com/x", None, None),  # https only unless schemes says so
        ("http://hg.other.example/x", None, "both"),
        ("https://plain.example/x", None, None),  # no vault key: Mercurial's own business
    ],
)
def test_a_url_gets_the_most_specific_vault_group(tmp_path, url, user, group):
    found = auth.matching_group(make_ui(tmp_path, GROUPS), url, user)
    assert (found.name if found else None) == group


def test_without_vault_groups_nothing_matches(tmp_path):
    ui = make_ui(tmp_path, "[auth]\nx.prefix = https://x/\nx.password = p\n")
    assert auth.matching_group(ui, "https://x/", None) is None


def test_a_prefix_with_a_control_character_is_an_abort_naming_keyvault(tmp_path):
    ui = make_ui(
        tmp_path, "[auth]\nbad.prefix = https://x.example/\x1b[2J\nbad.vault = secret://x\n"
    )
    with pytest.raises(error.Abort) as raised:
        auth.matching_group(ui, "https://x.example/", None)
    assert raised.value.message.startswith(b"keyvault: ")
    assert b"\x1b" not in raised.value.message


def test_basic_header_is_user_colon_password_in_base64():
    header = auth._basic_header("ci-bot", "p@ss:w0rd")
    assert header.startswith("Basic ")
    assert base64.b64decode(header[6:]) == b"ci-bot:p@ss:w0rd"
