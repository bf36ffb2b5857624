"""Every abort, configuration error and warning the extension can print, read from its source.

The doc-drift test of docs/troubleshooting.md uses this to find each message on the page. Two
sources:

- Python (hgext/): ``ast`` finds every ``error.<Abort|...Error>(msg, hint=...)`` and
  ``ui.warn(msg)``; a message is a literal, ``_()`` of one, ``literal % args`` or an f-string
  (implicitly concatenated literals are one constant to ``ast``).
- Rust (rust/keyvault-core/src): a small lexer masks string literals and comments, then finds
  every ``Error::new(kind, msg)``, ``Error::bad_ref(msg)`` and ``Error::bad_config(msg)`` outside
  ``#[cfg(test)]`` code, and the ``.with_hint(...)`` chained to it; a message is a literal or the
  format string of a ``format!`` (each branch of an ``if``/``match`` inside the call counts).

A call site whose message is not a literal in one of those shapes is returned as ``unseen``, so
that the test can insist that it is either restructured or listed with a reason.

A message is a *template*: literal text and placeholders (``%s``, ``{}``, ``{name}``...), turned
into a regular expression by :func:`pattern` where each placeholder matches any text on one line
(the page writes ``<group>``, ``<ref>``...) and any run of whitespace matches any other.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY_ROOT = ROOT / "hgext" / "hgext3rd" / "keyvault"
RUST_ROOT = ROOT / "rust" / "keyvault-core" / "src"

# A placeholder inside a template (a character no message contains).
HOLE = "\x00"


@dataclass
class Message:
    """One message the code can print, with where it is built."""

    source: str  # "python" or "rust"
    where: str  # file:line
    kind: str  # Abort, ConfigError, warn, NotFound, bad_ref...
    templates: list[str]  # one per branch; HOLE for each variable part
    hints: list[str] = field(default_factory=list)  # literal hint templates (none: no/computed)
    has_hint: bool = False

    def literal_text(self, template: str) -> str:
        return template.replace(HOLE, " ")


@dataclass
class Unseen:
    """A call site whose message cannot be read from the source."""

    where: str
    function: str
    kind: str


def pattern(template: str, hint: bool = False) -> re.Pattern:
    """A regex that finds ``template`` in the page, placeholders matching any text on a line.

    A message ends at the end of a line (it may follow a prefix: ``abort: [auth] <group>: ``);
    a hint is a whole line, in parentheses as Mercurial prints it or after ``hint:`` as
    ``hg vault`` does. So a message that is the start of a longer one does not pass for it.
    """
    out = [r"^(?:\(|\s*hint:\s+)"] if hint else []
    for i, literal in enumerate(template.split(HOLE)):
        if i:
            out.append(r"[^\n]*?")
        words = literal.split()
        if literal[:1].isspace():
            out.append(r"\s+")
        out.append(r"\s+".join(re.escape(w) for w in words))
        if literal[-1:].isspace() and words:
            out.append(r"\s+")
    out.append(r"\)?$" if hint else "$")
    return re.compile("".join(out), re.M)


def literal_chars(template: str) -> int:
    """How much fixed text a template has: letters and digits outside placeholders."""
    return sum(c.isalnum() for c in template.replace(HOLE, ""))


# ---------------------------------------------------------------------------------------------
# Python


_PY_ERRORS = re.compile(r"^(Abort|[A-Z]\w*Error)$")
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*\d*(?:\.\d+)?[sdrifxXab]|%%")


def _percent_template(text: str) -> str:
    return _PERCENT.sub(lambda m: "%" if m.group(0) == "%%" else HOLE, text)


def _py_template(node: ast.AST) -> str | None:
    """The template of a message expression, or None when it is not built from literals."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (bytes, str)):
        value = node.value.decode() if isinstance(node.value, bytes) else node.value
        return value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_":
        return _py_template(node.args[0]) if node.args else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        left = _py_template(node.left)
        return None if left is None else _percent_template(left)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _py_template(node.left), _py_template(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            else:
                parts.append(HOLE)
        return "".join(parts)
    return None


def _is_ui(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id == "ui"
    return isinstance(node, ast.Attribute) and node.attr == "ui"


def _enclosing_functions(tree: ast.AST) -> dict[ast.AST, str]:
    names: dict[ast.AST, str] = {}
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(func):
                names.setdefault(node, func.name)
    return names


def python_messages() -> tuple[list[Message], list[Unseen]]:
    found: list[Message] = []
    unseen: list[Unseen] = []
    for path in sorted(PY_ROOT.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        functions = _enclosing_functions(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            func = node.func
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if (
                isinstance(func.value, ast.Name)
                and func.value.id == "error"
                and _PY_ERRORS.match(func.attr)
            ):
                kind = func.attr
                # CommandError(command, message): hg prints "hg COMMAND: message".
                args = node.args[1:] if kind == "CommandError" else node.args
            elif func.attr in ("warn", "write_err") and _is_ui(func.value):
                kind = "warn"
                args = node.args
            else:
                continue
            if not args:
                continue
            template = _py_template(args[0])
            if template is None:
                unseen.append(Unseen(where, functions.get(node, "<module>"), kind))
                continue
            hints = [kw.value for kw in node.keywords if kw.arg == "hint"]
            hint_templates = [t for t in (_py_template(h) for h in hints) if t is not None]
            found.append(
                Message(
                    source="python",
                    where=where,
                    kind=kind,
                    templates=[template.strip()],
                    hints=[h.strip() for h in hint_templates],
                    # A warning's hint is its own ui.warn line, "(...)".
                    has_hint=bool(hints) or kind == "warn",
                )
            )
    return found, unseen


# ---------------------------------------------------------------------------------------------
# Rust


@dataclass
class _Literal:
    start: int
    end: int
    value: str


_CHAR_LITERAL = re.compile(r"'(?:[^'\\\n]|\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.))'")
_RUST_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}


def _decode_rust(body: str) -> str:
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt == "\n":
            # Line continuation: the newline and the next line's leading whitespace vanish.
            i += 2
            while i < len(body) and body[i] in " \t\n\r":
                i += 1
        elif nxt == "u":
            close = body.index("}", i)
            out.append(chr(int(body[i + 3 : close], 16)))
            i = close + 1
        elif nxt == "x":
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
        else:
            out.append(_RUST_ESCAPES.get(nxt, nxt))
            i += 2
    return "".join(out)


def _lex_rust(src: str) -> tuple[str, list[_Literal]]:
    """The source with comments and literal contents blanked (same offsets), and the strings."""
    masked = list(src)
    literals: list[_Literal] = []
    i = 0
    n = len(src)

    def blank(a: int, b: int) -> None:
        for k in range(a, b):
            if masked[k] != "\n":
                masked[k] = " "

    while i < n:
        c = src[i]
        if src.startswith("//", i):
            end = src.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif (m := re.compile(r'b?r(#*)"').match(src, i)) and (
            i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")
        ):
            close = '"' + m.group(1)
            end = src.index(close, m.end())
            literals.append(_Literal(i, end + len(close), src[m.end() : end]))
            blank(m.end(), end)
            i = end + len(close)
        elif c == '"':
            j = i + 1
            while src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            literals.append(_Literal(i, j + 1, _decode_rust(src[i + 1 : j])))
            blank(i + 1, j)
            i = j + 1
        elif c == "'" and (m := _CHAR_LITERAL.match(src, i)):
            blank(i + 1, m.end() - 1)
            i = m.end()
        else:
            i += 1
    return "".join(masked), literals


_OPEN = {"(": ")", "[": "]", "{": "}"}


def _close_of(masked: str, open_at: int) -> int:
    """Offset of the bracket closing the one at ``open_at``."""
    stack = []
    for j in range(open_at, len(masked)):
        c = masked[j]
        if c in _OPEN:
            stack.append(_OPEN[c])
        elif c in ")]}":
            stack.pop()
            if not stack:
                return j
    raise ValueError(f"unbalanced bracket at {open_at}")


def _split_args(masked: str, start: int, end: int) -> list[tuple[int, int]]:
    """Top-level comma-separated argument spans of ``masked[start:end]``."""
    spans, depth, first = [], 0, start
    for j in range(start, end):
        c = masked[j]
        if c in _OPEN:
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            spans.append((first, j))
            first = j + 1
    if masked[first:end].strip():
        spans.append((first, end))
    return spans


def _strip_cfg_test(masked: str) -> list[tuple[int, int]]:
    """Spans of items under ``#[cfg(test)]`` (test modules and helpers), to skip."""
    spans = []
    for m in re.finditer(r"#\[cfg\(test\)\]", masked):
        brace, semi = masked.find("{", m.end()), masked.find(";", m.end())
        if semi >= 0 and (brace < 0 or semi < brace):
            spans.append((m.start(), semi))
        else:
            spans.append((m.start(), _close_of(masked, brace)))
    return spans


_FORMAT_STRING = re.compile(r"\{\{|\}\}|\{[^{}]*\}")


def _format_template(text: str) -> str:
    return _FORMAT_STRING.sub(
        lambda m: {"{{": "{", "}}": "}"}.get(m.group(0), HOLE),
        text,
    )


def _rust_templates(masked: str, literals: list[_Literal], start: int, end: int) -> list[str]:
    """Templates in an argument: each ``format!``'s format string, and bare literals outside
    any ``format!`` (the branches of an ``if``/``match``); its arguments are not messages. A
    bare ``CONSTANT`` is looked up among the file's ``const NAME: &str = "..."``."""
    constant = re.fullmatch(r"\s*([A-Z][A-Z0-9_]*)\s*", masked[start:end])
    if constant:
        const = re.search(rf"\bconst\s+{constant[1]}\s*:\s*&(?:'static\s+)?str\s*=", masked)
        if const:
            value = next((lit for lit in literals if lit.start > const.end()), None)
            return [value.value] if value else []
    inside = [lit for lit in literals if start <= lit.start < end]
    templates: list[str] = []
    skip: list[tuple[int, int]] = []
    for m in re.finditer(r"\bformat!\s*\(", masked[start:end]):
        open_at = start + m.end() - 1
        if any(a <= open_at < b for a, b in skip):
            continue
        close = _close_of(masked, open_at)
        skip.append((open_at, close))
        first = next((lit for lit in inside if open_at < lit.start < close), None)
        if first is not None:
            templates.append(_format_template(first.value))
    for lit in inside:
        if any(a <= lit.start < b for a, b in skip):
            continue
        # A literal is a message only where it is the expression itself, not a call's argument
        # (e.g. `.unwrap_or_else(|| "the identity".to_owned())` inside format! was skipped).
        templates.append(lit.value)
    return templates


_CONSTRUCTOR = re.compile(r"(?<![\w:])Error::(new|bad_ref|bad_config)\s*\(")


def _line_of(src: str, offset: int) -> int:
    return src.count("\n", 0, offset) + 1


def _function_at(masked: str, offset: int) -> str:
    names = list(re.finditer(r"\bfn\s+(\w+)", masked[:offset]))
    return names[-1].group(1) if names else "<module>"


def rust_messages() -> tuple[list[Message], list[Unseen]]:
    found: list[Message] = []
    unseen: list[Unseen] = []
    for path in sorted(RUST_ROOT.rglob("*.rs")):
        if path.name == "error.rs":
            continue  # the constructors themselves
        src = path.read_text()
        masked, literals = _lex_rust(src)
        tests = _strip_cfg_test(masked)
        for m in _CONSTRUCTOR.finditer(masked):
            if any(a <= m.start() < b for a, b in tests):
                continue
            open_at = m.end() - 1
            close = _close_of(masked, open_at)
            args = _split_args(masked, open_at + 1, close)
            constructor = m.group(1)
            if constructor == "new":
                kind = masked[args[0][0] : args[0][1]].strip().removeprefix("ErrorKind::")
                message_span = args[1]
            else:
                kind = constructor
                message_span = args[0]
            where = f"{path.relative_to(ROOT)}:{_line_of(src, m.start())}"
            templates = _rust_templates(masked, literals, *message_span)
            if not templates:
                unseen.append(Unseen(where, _function_at(masked, m.start()), kind))
                continue
            hint = re.compile(r"\s*\.with_hint\s*\(").match(masked, close + 1)
            hints: list[str] = []
            if hint:
                hint_open = hint.end() - 1
                hints = _rust_templates(
                    masked, literals, hint_open + 1, _close_of(masked, hint_open)
                )
            found.append(
                Message(
                    source="rust",
                    where=where,
                    kind=kind,
                    templates=templates,
                    hints=hints,
                    has_hint=bool(hint),
                )
            )
    return found, unseen
