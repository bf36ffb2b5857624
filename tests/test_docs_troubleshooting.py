"""docs/troubleshooting.md has every message the extension can print, and only those.

The messages come from the source (tests/source_messages.py): every abort, configuration error and
warning of the Python code, and every error of the Rust core (which reaches the user through the
bindings as ``error.Abort``/``error.ConfigError`` with the core's hint, or on the ``error:`` line of
``hg vault``). Each must be found in the page's code blocks, where messages are written as the
user sees them, placeholders as ``<group>``, ``<ref>``...
"""

from __future__ import annotations

import re
from pathlib import Path

from source_messages import (
    Message,
    literal_chars,
    pattern,
    python_messages,
    rust_messages,
)

PAGE = Path(__file__).resolve().parent.parent / "docs" / "troubleshooting.md"

# Call sites whose message is not a literal, each with the reason it needs no entry of its own.
# A new one makes test_every_message_is_readable_from_the_source fail: restructure it so that
# its literal is in the call, or add it here with a reason.
NOT_LITERAL = {
    # Re-raises a core error (checked on the Rust side) as Abort/ConfigError behind a context.
    ("hgext/hgext3rd/keyvault/session.py", "abort_for"),
}

# Fewer letters and digits than this outside placeholders, and a template would match
# almost any line: split such a message into literal sentences.
MIN_LITERAL_CHARS = 8

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)


def code_blocks(text: str) -> list[str]:
    return [m.group(1) for m in FENCE.finditer(text)]


def all_messages() -> list[Message]:
    return python_messages()[0] + rust_messages()[0]


def missing_from(text: str, messages: list[Message]) -> list[str]:
    """Each message template (and literal hint) not found in the page's code blocks."""
    blocks = "\n".join(code_blocks(text))
    missing = []
    for message in messages:
        for template in message.templates:
            if not pattern(template).search(blocks):
                missing.append(f"{message.where}: {template!r}")
        for hint in message.hints:
            if literal_chars(hint) >= MIN_LITERAL_CHARS and not pattern(hint, hint=True).search(
                blocks
            ):
                missing.append(f"{message.where}: hint {hint!r}")
    return missing


def test_every_message_is_readable_from_the_source():
    for unseen in python_messages()[1] + rust_messages()[1]:
        file = unseen.where.rsplit(":", 1)[0]
        assert (file, unseen.function) in NOT_LITERAL, (
            f"{unseen.where} ({unseen.function}) builds a {unseen.kind} message the drift test "
            "cannot read: put its literal (or format!) into the call, or list it in NOT_LITERAL"
        )


def test_the_extraction_finds_the_messages_of_both_sides():
    # Guards against an extractor that silently finds nothing (and so checks nothing).
    python, rust = python_messages()[0], rust_messages()[0]
    assert len(python) >= 35 and len(rust) >= 60, (len(python), len(rust))
    kinds = {m.kind for m in python}
    assert {"Abort", "ConfigError", "InputError", "warn"} <= kinds
    rust_text = [t for m in rust for t in m.templates]
    assert "no Azure credential could get a token; tried:\n\x00" in rust_text
    assert "\x00 has expired in vault \x00" in rust_text


def test_every_template_has_enough_fixed_text_to_be_checked():
    vague = [
        f"{m.where}: {t!r}"
        for m in all_messages()
        for t in m.templates
        if literal_chars(t) < MIN_LITERAL_CHARS
    ]
    assert vague == []


def test_every_message_and_hint_of_the_code_is_on_the_page():
    missing = missing_from(PAGE.read_text(), all_messages())
    assert missing == [], "not in docs/troubleshooting.md:\n" + "\n".join(missing)


def test_every_abort_on_the_page_is_one_the_code_prints():
    templates = [pattern(t) for m in all_messages() for t in m.templates]
    stale = []
    for block in code_blocks(PAGE.read_text()):
        for match in re.finditer(r"^(abort|config error): .*$", block, re.M):
            line_end = match.end()
            rest = block[match.start() :]
            # A message may go on over the next lines (the credential chain's "tried:" list).
            found = any(
                (m := p.search(rest)) is not None and m.start() < line_end - match.start()
                for p in templates
            )
            if not found:
                stale.append(match.group(0))
    assert stale == [], "the page documents messages the code does not print:\n" + "\n".join(stale)


def test_the_check_fails_when_a_message_is_deleted_from_the_page():
    text = PAGE.read_text()
    messages = all_messages()
    for line in (
        "abort: keyvault: ssh-agent did not start within <n> s",
        "config error: keyvault.url is not set",
        "abort: [auth] <group>: secret <ref> (<name>) has expired in vault <vault>",
    ):
        assert line + "\n" in text, line
        assert missing_from(text.replace(line + "\n", ""), messages) != [], line
