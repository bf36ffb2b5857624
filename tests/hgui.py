"""A real Mercurial ``ui`` for the unit tests of the extension's Python helpers: the
extension's config items registered as Mercurial registers them when it loads the extension,
and configuration read by Mercurial from an hgrc file. No hg subprocess, no mock."""

from __future__ import annotations

from pathlib import Path

from hgext3rd.keyvault import config
from mercurial import configitems
from mercurial import ui as uimod


def make_ui(directory: Path, hgrc: str = "") -> uimod.ui:
    """A fresh, non-interactive ui configured by ``hgrc`` (the text of an hgrc file)."""
    path = directory / "hgrc"
    path.write_text("[ui]\ninteractive = no\n" + hgrc)
    ui = uimod.ui()
    configitems.loadconfigtable(ui, b"keyvault", config.configtable)
    ui.readconfig(bytes(path), trust=True)
    return ui
