"""The Mercurial lines the extension declares are the ones its suite runs on.

``make test`` runs the newest line (tests/requirements.txt), ``make test-compat`` the oldest
supported one (COMPAT_HG_VERSION in the Makefile). ``testedwith`` must name both and
``minimumhgversion`` must be the older, so that moving either line without updating them fails
here, on whichever line runs it. A Mercurial older than ``minimumhgversion`` must get only its
own warning: importing the extension does nothing that could fail before Mercurial checks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from hgserver import HG

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hgext" / "hgext3rd" / "keyvault"


def major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def newest_line() -> str:
    pin = re.search(r"^mercurial==(\S+)$", (ROOT / "tests" / "requirements.txt").read_text(), re.M)
    return major_minor(pin[1])


def compat_line() -> str:
    pin = re.search(r"^COMPAT_HG_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    return major_minor(pin[1])


def hg(*args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HG")}
    env.update(HGRCPATH="", HGPLAIN="1", LC_ALL="C")
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [HG, "--config", "extensions.keyvault=", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def declared(name: str, source: Path = PACKAGE / "__init__.py") -> str:
    """A ``name = b"..."`` assignment of the extension module, read without importing it."""
    return re.search(rf'^{name} = b"([^"]*)"$', source.read_text(), re.M)[1]


def test_testedwith_names_the_running_line_and_both_tested_lines():
    result = hg("debugextensions", "-v", "-T", "json")
    assert result.returncode == 0, result.stderr
    (ours,) = [e for e in json.loads(result.stdout) if e["name"] == "keyvault"]
    running = major_minor(json.loads(hg("version", "-T", "json").stdout)[0]["ver"])
    assert running in ours["testedwith"], (running, ours["testedwith"])
    assert sorted(ours["testedwith"]) == sorted({newest_line(), compat_line()})


def test_minimumhgversion_is_the_compat_line():
    assert declared("minimumhgversion") == compat_line()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"mercurial>={compat_line()}"' in pyproject


def test_an_older_mercurial_only_warns_and_disables_the_extension(tmp_path):
    # The running Mercurial plays the older one: a copy of the extension demands 99.0.
    copy = tmp_path / "hgext3rd" / "keyvault"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    init = copy / "__init__.py"
    init.write_text(
        init.read_text().replace(
            f'minimumhgversion = b"{compat_line()}"', 'minimumhgversion = b"99.0"'
        )
    )
    assert declared("minimumhgversion", init) == "99.0"

    version = hg("version", "-q", pythonpath=tmp_path)
    assert version.returncode == 0, version.stderr
    assert "extension keyvault requires version 99.0 or newer of Mercurial" in version.stderr
    assert "Traceback" not in version.stderr and "failed to import" not in version.stderr
    assert "disabling" in version.stderr
    # Disabled, not half-loaded: its command does not exist.
    vault = hg("vault", pythonpath=tmp_path)
    assert "unknown command 'vault'" in vault.stderr, vault.stderr
    assert "Traceback" not in vault.stderr
