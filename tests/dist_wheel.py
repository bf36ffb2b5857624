"""The release wheel of `make dist`, installed with Mercurial into a fresh venv without any Rust
toolchain on PATH, is a working extension: version, help and a secret round trip through the
emulator's Azure TLS path, from that venv's own hg.

Run by `make test-dist` (HG_KEYVAULT_WHEEL names the wheel). It has no test_ prefix so that
`pytest tests` (`make test`) does not collect it: it needs a release build.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from bed import REF, Bed, Client, files_containing
from project import mercurial_pin, workspace_version

TOOLCHAIN = ("cargo", "rustc", "rustup")


def path_without_rust() -> str:
    """PATH minus every directory holding a Rust toolchain binary."""
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(
        d for d in dirs if d and not any(os.path.exists(os.path.join(d, t)) for t in TOOLCHAIN)
    )


def no_rust_env(venv: Path, base: dict[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in base.items()
        if not k.startswith(("CARGO", "RUSTUP", "RUSTC", "PYTHON", "MATURIN"))
        and k != "VIRTUAL_ENV"
    }
    env["PATH"] = os.pathsep.join([str(venv / "bin"), path_without_rust()])
    return env


@pytest.fixture(scope="module")
def wheel() -> Path:
    value = os.environ.get("HG_KEYVAULT_WHEEL")
    assert value, "HG_KEYVAULT_WHEEL names the wheel to test: run `make test-dist`"
    path = Path(value)
    assert path.is_file(), path
    return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel and Mercurial from the registry, installed without Rust."""
    venv = tmp_path_factory.mktemp("wheel") / "venv"
    env = no_rust_env(venv, dict(os.environ))
    for tool in TOOLCHAIN:
        assert shutil.which(tool, path=env["PATH"]) is None, tool
    subprocess.run([sys.executable, "-m", "venv", str(venv)], env=env, check=True)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            # A wheel of everything: nothing may need compiling on the user's machine.
            "--only-binary",
            ":all:",
            str(wheel),
            f"mercurial=={mercurial_pin()}",
        ],
        env=env,
        check=True,
        timeout=600,
    )
    return venv


def wheel_client(bed: Bed, venv: Path, root: Path) -> Client:
    client = bed.client(root)
    client.env = no_rust_env(venv, client.env)
    return client


def test_wheel_is_abi3_manylinux_and_ships_only_the_extension(wheel):
    name = wheel.name
    assert re.fullmatch(
        rf"hg_keyvault-{re.escape(workspace_version())}-cp39-abi3-"
        r"manylinux2014_x86_64\.manylinux_2_17_x86_64\.whl",
        name,
    ), name
    files = zipfile.ZipFile(wheel).namelist()
    packages = {f.split("/")[0] for f in files if not f.startswith("hg_keyvault-")}
    assert packages == {"hgext3rd"}, packages
    # hgext3rd is a namespace shared with other extensions (evolve, topic).
    assert "hgext3rd/__init__.py" not in files
    assert "hgext3rd/keyvault/_native.abi3.so" in files
    assert not [f for f in files if "emulator" in f]


def test_native_module_and_extension_come_from_the_fresh_venv(venv, wheel):
    env = no_rust_env(venv, dict(os.environ))
    out = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import hgext3rd.keyvault as k, hgext3rd.keyvault._native as n;"
            "print(k.__file__); print(n.__file__); print(n.__version__)",
        ],
        env=env,
        cwd=venv,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    site = (venv / "lib").resolve()
    assert all(Path(p).resolve().is_relative_to(site) for p in out[:2]), out
    assert out[2] == workspace_version()


def test_hg_version_lists_keyvault_with_its_version(bed, venv, tmp_path):
    client = wheel_client(bed, venv, tmp_path)
    hg = str(venv / "bin" / "hg")

    verbose = client.hg("version", "-v", program=hg)
    assert verbose.returncode == 0, verbose.output
    assert re.search(
        rf"^\s+keyvault\s+external\s+{re.escape(workspace_version())}$", verbose.stdout, re.M
    ), verbose.stdout

    data = client.hg("version", "-T", "json", program=hg)
    [info] = json.loads(data.stdout)
    assert info["ver"] == mercurial_pin()
    assert {"name": "keyvault", "ver": workspace_version(), "bundled": False} in info["extensions"]


def test_help_is_the_same_as_from_the_source_tree(bed, venv, tmp_path):
    client = wheel_client(bed, venv, tmp_path)
    result = client.hg("help", "keyvault", program=str(venv / "bin" / "hg"))
    assert result.returncode == 0, result.output
    snapshot = Path(__file__).parent / "snapshots" / "help-keyvault.txt"
    assert result.stdout == snapshot.read_text()


def test_secret_round_trip_through_the_emulator_from_the_wheel(bed, venv, tmp_path):
    """hg vault set, hg vault, hg vault list, then a clone whose password comes from the vault:
    the wheel's native core speaks TLS to the emulator and to the hg server."""
    client = wheel_client(bed, venv, tmp_path)
    hg = str(venv / "bin" / "hg")
    password = bed.server.password

    stored = client.hg("vault", "set", REF, stdin=password.encode(), program=hg)
    assert stored.returncode == 0, stored.output

    status = client.hg("vault", "-T", "json", program=hg)
    assert status.returncode == 0, status.output
    [data] = json.loads(status.stdout)
    assert data["extension_version"] == workspace_version()
    assert data["answered"] is True
    assert [(s["group"], s["state"]) for s in data["secrets"]] == [("corp", "ok")]

    listed = client.hg("vault", "list", "-T", "json", program=hg)
    assert listed.returncode == 0, listed.output
    assert REF in [s["ref"] for s in json.loads(listed.stdout)]

    cloned = client.hg("clone", bed.server.repo_url(), "work", program=hg)
    assert cloned.returncode == 0, cloned.output
    assert (client.home / "work" / ".hg").is_dir()

    assert not [o for o in client.outputs if password in o]
    hits, searched = files_containing([client.root], password.encode())
    assert searched > 0 and hits == []
