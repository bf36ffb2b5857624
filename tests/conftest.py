"""Shared pytest set-up: the test helpers in this folder are importable as modules."""

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bed import Bed, start_bed  # noqa: E402
from keyringd import SecretService, start_secret_service  # noqa: E402

# Tests put Unix sockets under their tmp_path (the ssh-agent the extension starts in the client's
# TMPDIR, chg's, D-Bus's), and a socket path holds at most 107 bytes. pytest's own base,
# /tmp/pytest-of-<user>/pytest-<n>/, with pytest-xdist's popen-gw<n>/ under it, leaves too little
# of that, so the run gets a short base of its own: removed after a run that passed, kept (and
# named) after one that failed.
_SHORT_BASE = "_hg_keyvault_short_basetemp"


@pytest.hookimpl(tryfirst=True)  # before pytest's tmp_path factory reads the option
def pytest_configure(config):
    worker = hasattr(config, "workerinput")  # pytest-xdist hands workers the controller's base
    if config.option.basetemp is None and not worker:
        base = tempfile.mkdtemp(prefix="kv-", dir="/tmp")
        config.option.basetemp = base
        setattr(config, _SHORT_BASE, base)


def pytest_unconfigure(config):
    base = getattr(config, _SHORT_BASE, None)
    if base is None:
        return
    failed = getattr(config, "_hg_keyvault_failed", True)
    if failed:
        sys.stderr.write(f"test files kept in {base}\n")
    else:
        shutil.rmtree(base, ignore_errors=True)


def pytest_sessionfinish(session, exitstatus):
    session.config._hg_keyvault_failed = exitstatus not in (0, 5)


@pytest.fixture(scope="module")
def bed(tmp_path_factory) -> Bed:
    """The emulator and the authenticated hg server, one pair per test module."""
    bed = start_bed(tmp_path_factory.mktemp("bed"))
    try:
        yield bed
    finally:
        bed.stop()


@pytest.fixture
def clean_faults(bed):
    """No emulator fault from an earlier test, none left for the next one."""
    bed.emulator.clear_faults()
    yield
    bed.emulator.clear_faults()


@pytest.fixture(scope="module")
def secret_service(tmp_path_factory) -> SecretService:
    """gnome-keyring's Secret Service on a private D-Bus session, one per test module."""
    service = start_secret_service(tmp_path_factory.mktemp("secretservice"))
    try:
        yield service
    finally:
        service.stop()
