"""sanitize.py, imported directly: what may reach a terminal from a server, a URL, a vault
or a config file (no hg subprocess)."""

from __future__ import annotations

import pytest
from hgext3rd.keyvault import sanitize


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text", "plain text"),
        ("title \x1b]0;owned\x07 end", "title ?]0;owned? end"),  # OSC escape sequence
        ("red \x1b[31mtext", "red ?[31mtext"),
        ("bell\x07 del\x7f c1\x9b", "bell? del? c1?"),
        ("cr\rlf\ntab\t", "cr?lf?tab?"),
        ("file\u202etxt.exe", "file?txt.exe"),  # right-to-left override
        ("zero\u200bwidth\ufeff", "zero?width?"),
        ("über café 日本", "über café 日本"),  # printable non-ASCII stays
    ],
)
def test_unsafe_characters_become_question_marks(raw, shown):
    assert sanitize.text(raw) == shown


def test_newlines_are_kept_only_when_asked():
    assert sanitize.text("a\nb\rc", keep_newlines=True) == "a\nb?c"
    assert sanitize.text("a\nb", keep_newlines=False) == "a?b"


def test_bytes_none_and_other_values():
    assert sanitize.text(None) == ""
    assert sanitize.text(b"caf\xc3\xa9 \xff\x1b") == "café \ufffd?"
    assert sanitize.text(42) == "42"
    assert sanitize.local("é\x1b") == "é?".encode()
    assert isinstance(sanitize.local(None), bytes)
