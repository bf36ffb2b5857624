import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emulator import Emulator, start_emulator  # noqa: E402


@pytest.fixture
def emulator(tmp_path) -> Emulator:
    emu = start_emulator(tmp_path)
    try:
        yield emu
    finally:
        emu.stop()
