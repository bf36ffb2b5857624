"""What the repository itself declares: the version (one place) and the Mercurial pin."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def workspace_version() -> str:
    """The Cargo workspace's version: the only place the version is written."""
    text = (ROOT / "Cargo.toml").read_text()
    return re.search(r'^\[workspace\.package\][^\[]*?^version = "([^"]+)"', text, re.M | re.S)[1]


def mercurial_pin() -> str:
    """The Mercurial version tests/requirements.txt installs."""
    text = (ROOT / "tests" / "requirements.txt").read_text()
    return re.search(r"^mercurial==(\S+)$", text, re.M)[1]
