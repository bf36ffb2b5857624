"""Run a callback when a module is actually executed, without importing it.

Wrapping ``mercurial.url`` at extension set-up would import it (with ssl and
email) in every command, about 16-21 ms that ``hg status`` or ``hg log`` never
needed. Instead we install our wrappers at the moment the module is executed,
whether Mercurial's demand importer loads it lazily or something imports it
for real.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Callable

_Callback = Callable[[types.ModuleType], None]


class _CallbackLoader:
    """Delegates to the real loader, then hands the executed module on."""

    def __init__(self, loader, callback: _Callback):
        self._loader = loader
        self._callback = callback

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._callback(module)

    def __getattr__(self, name):
        # get_source, get_code, is_package...: whatever the real loader offers.
        return getattr(self._loader, name)


def _wrap_loader(spec, callback: _Callback) -> None:
    loader = spec.loader
    if isinstance(loader, importlib.util.LazyLoader):
        # Keep the import lazy: wrap the loader that runs on first attribute access.
        loader.loader = _CallbackLoader(loader.loader, callback)  # type: ignore[attr-defined]
    else:
        spec.loader = _CallbackLoader(loader, callback)


class _Finder:
    """A meta path entry that only ever answers for one module name."""

    def __init__(self, fullname: str, callback: _Callback):
        self.fullname = fullname
        self.callback = callback

    def find_spec(self, fullname, path, target=None):
        if fullname != self.fullname:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                _wrap_loader(spec, self.callback)
                return spec
        return None


def _is_lazy_pending(module) -> bool:
    # type(), not isinstance(): reading __class__ of a lazy module would load it.
    return issubclass(type(module), importlib.util._LazyModule)  # type: ignore[attr-defined]


def on_module_executed(fullname: str, callback: _Callback) -> None:
    """Call ``callback(module)`` once ``fullname`` has run, now if it already has."""
    module = sys.modules.get(fullname)
    if module is None:
        sys.meta_path.insert(0, _Finder(fullname, callback))
    elif _is_lazy_pending(module):
        # Registered but not executed yet: read the spec without triggering the load.
        spec = object.__getattribute__(module, "__spec__")
        spec.loader = _CallbackLoader(spec.loader, callback)
    else:
        callback(module)
