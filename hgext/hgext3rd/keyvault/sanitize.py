"""Text safe for a terminal: what the extension echoes from a server, a URL, a
vault or a config file loses its control and escape characters first.

The same rule as the core's ``printable`` module (errors coming from the core
are already clean); this one covers what Python itself puts in a message: URLs,
group names, refs, SMTP and ssh-add replies, values of the formatter.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, bidirectional embeddings/overrides/isolates/marks,
# zero-width characters and the byte order mark: they change how a terminal
# shows text instead of being text.
_INVISIBLE = "\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb"
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f" + _INVISIBLE + "]")
_UNSAFE_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f" + _INVISIBLE + "]")


def text(value, *, keep_newlines: bool = False) -> str:
    """``value`` (str, bytes or anything printable) with unsafe characters as ``?``."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    elif not isinstance(value, str):
        value = str(value)
    pattern = _UNSAFE_BUT_NEWLINE if keep_newlines else _UNSAFE
    return pattern.sub("?", value)


def local(value, *, keep_newlines: bool = False) -> bytes:
    """:func:`text` as UTF-8 bytes, ready for ``ui.write`` or ``error.Abort``."""
    return text(value, keep_newlines=keep_newlines).encode("utf-8", "replace")
