"""docs/config.md and ``hg help keyvault`` cannot drift from the configuration the code has.

The truth is the code: the items registered in ``hgext3rd.keyvault.config.configtable`` (with their
defaults) and every key the Python code reads (``ui.config*(b"section", b"key")`` calls, and the
``[auth]`` settings ``config.vault_groups`` and ``config.token_groups`` take from each group, as
``GROUP.key``), found with ``ast``. The page has one ``### `[section] key``` heading per key and
a ``- **Default:** `VALUE`` line under it, VALUE being the registered default as a user writes
it (``unset`` for None).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import hgext3rd.keyvault
from hgext3rd.keyvault import config

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "config.md"
PY_ROOT = ROOT / "hgext" / "hgext3rd" / "keyvault"

Key = tuple[str, str]

HEADING = re.compile(r"^### `\[(?P<section>[\w-]+)\] (?P<key>[\w.-]+)`\s*$", re.M)
DEFAULT = re.compile(r"^- \*\*Default:\*\* `(?P<value>[^`]*)`", re.M)


def registered() -> dict[Key, object]:
    """Every registered item and its default."""
    return {
        (section.decode(), name.decode()): item.default
        for section, items in config.configtable.items()
        for name, item in items.items()
    }


def keys_read() -> set[Key]:
    """Every (section, key) the extension's Python code reads."""
    keys: set[Key] = set()
    for path in sorted(PY_ROOT.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            attr = node.func.attr
            if attr.startswith("config") and attr not in ("configitems", "configoverride"):
                names = [
                    a.value.decode()
                    for a in node.args
                    if isinstance(a, ast.Constant) and isinstance(a.value, bytes)
                ]
                if len(names) >= 2:
                    keys.add((names[0], names[1]))
        for func in ast.walk(tree):
            if isinstance(func, ast.FunctionDef) and func.name in ("vault_groups", "token_groups"):
                for node in ast.walk(func):
                    if (
                        isinstance(node, ast.Call)
                        and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "get"
                        and node.args
                        and isinstance(node.args[0], ast.Constant)
                        and isinstance(node.args[0].value, bytes)
                    ):
                        keys.add(("auth", "GROUP." + node.args[0].value.decode()))
    return keys


def shown(default) -> str:
    """A registered default the way the page (and an hgrc) writes it."""
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    if isinstance(default, bytes):
        return default.decode()
    return str(default)


def documented(text: str) -> dict[Key, str | None]:
    """Each key the page has a heading for, with the default its section states (or None)."""
    headings = list(HEADING.finditer(text))
    found: dict[Key, str | None] = {}
    for i, heading in enumerate(headings):
        end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
        default = DEFAULT.search(text, heading.end(), end)
        found[(heading["section"], heading["key"])] = default["value"] if default else None
    return found


def page_problems(text: str, items: dict[Key, object], read: set[Key]) -> list[str]:
    """Every way ``text`` differs from the code: missing keys, unknown keys, wrong defaults."""
    on_page = documented(text)
    problems = []
    for key in sorted(set(items) | read):
        if key not in on_page:
            problems.append(f"[{key[0]}] {key[1]} is not documented")
    for key, value in sorted(on_page.items(), key=lambda kv: kv[0]):
        if key not in items and key not in read:
            problems.append(f"[{key[0]}] {key[1]} is documented but neither registered nor read")
        if value is None:
            problems.append(f"[{key[0]}] {key[1]} has no '- **Default:** `...`' line")
        elif key in items and value != shown(items[key]):
            problems.append(
                f"[{key[0]}] {key[1]}: the page says default `{value}`, "
                f"the code registers `{shown(items[key])}`"
            )
    return problems


def test_the_page_documents_every_key_with_its_registered_default_and_nothing_else():
    assert page_problems(PAGE.read_text(), registered(), keys_read()) == []


def test_the_check_catches_a_missing_key_an_unknown_key_and_a_wrong_default():
    text = PAGE.read_text()
    items, read = registered(), keys_read()
    without = re.sub(r"^### `\[keyvault\] timeout`$", "### timeout", text, flags=re.M)
    assert "[keyvault] timeout is not documented" in page_problems(without, items, read)
    extra = text + "\n### `[keyvault] retries`\n\n- **Default:** `3`\n"
    assert any("retries is documented but" in p for p in page_problems(extra, items, read))
    wrong = text.replace("- **Default:** `14`", "- **Default:** `7`")
    assert any(
        "expiry-warning: the page says default `7`" in p for p in page_problems(wrong, items, read)
    )


def test_every_registered_item_is_read_somewhere():
    # A registered key nobody reads would be documented as doing something it does not.
    assert set(registered()) - keys_read() == set()


# ``hg help keyvault``: the module docstring's ``Configs::`` block.

CONFIGS_SECTION = re.compile(r"^\s*\[(?P<section>[\w-]+)\]\s*$")
CONFIGS_KEY = re.compile(r"^\s*(?P<key>[\w.-]+) = ")
HELP_DEFAULT = re.compile(r"\(default: (?P<value>[^,)]+)")


def help_configs() -> dict[Key, str | None]:
    """Each key of the help's ``Configs::`` block, with the default its comment states."""
    doc = hgext3rd.keyvault.__doc__
    block = doc[doc.index("Configs::") :]
    found: dict[Key, str | None] = {}
    section, comment = None, []
    for line in block.splitlines()[1:]:
        if m := CONFIGS_SECTION.match(line):
            section, comment = m["section"], []
        elif line.strip().startswith("#"):
            comment.append(line.strip().lstrip("# "))
        elif section and (m := CONFIGS_KEY.match(line)):
            stated = HELP_DEFAULT.search(" ".join(comment))
            found[(section, m["key"])] = stated["value"].strip() if stated else None
            comment = []
    return found


def test_hg_help_keyvault_lists_every_key_the_extension_adds_with_the_registered_default():
    in_help = help_configs()
    # The keys the extension adds to [auth], a section it does not register.
    added = {("auth", "GROUP.vault"), ("auth", "GROUP.entra-scope"), ("auth", "GROUP.token-as")}
    assert set(in_help) == set(registered()) | added
    items = registered()
    for key, stated in in_help.items():
        if stated is not None and items.get(key) is not None:
            assert stated.lower() == shown(items[key]), key


def test_the_page_and_the_help_document_the_same_keys_of_the_extension():
    on_page = documented(PAGE.read_text())
    assert set(help_configs()) <= set(on_page)
