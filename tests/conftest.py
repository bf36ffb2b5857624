"""Shared pytest set-up: the test helpers in this folder are importable as modules."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bed import Bed, start_bed  # noqa: E402
from keyringd import SecretService, start_secret_service  # noqa: E402


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
