"""The type stub of the native module (hgext/hgext3rd/keyvault/_native.pyi) says what the built
module really has: mypy's stubtest imports the module and compares every name, class and
signature with the stub (as pydantic-core checks its own), so `make lint`'s type check of
hgext/ checks against the real binding."""

from __future__ import annotations

import subprocess
import sys

from project import ROOT


def test_the_stub_matches_the_built_native_module():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy.stubtest",
            "hgext3rd.keyvault._native",
            "--mypy-config-file",
            str(ROOT / "pyproject.toml"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
