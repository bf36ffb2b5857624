"""The extension's version, written in one place: the Cargo workspace's ``version``.

maturin copies it into the installed distribution's metadata (a wheel or an
editable install alike), and the native core carries it as
``_native.__version__``. ``hg version`` reads the metadata, so that it does
not load the native core.
"""

from __future__ import annotations

DISTRIBUTION = "hg-keyvault"


def installed() -> str:
    """The version of the installed distribution, as text."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        # A source tree enabled by path without being installed: only the core knows.
        from . import _native

        return _native.__version__
