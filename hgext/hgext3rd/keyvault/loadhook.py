"""Run a callback when a module is actually executed, without importing it.

Wrapping ``mercurial.url`` at extension set-up would import it (with ssl and
email) in every command, about 16-21 ms that ``hg status`` or ``hg log`` never
needed. Instead we install our wrappers at the moment the module is executed,
whether Mercurial's demand importer loads it lazily or something imports it
for real.

Callbacks are named as ``"package.module:function"`` and imported only when
their module runs: what stays registered in a command that never runs it is a
few strings, and one meta path entry for all of them (each entry is asked about
every later import).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

# Module name -> callbacks ("package.module:function") waiting for it to be executed.
_pending: dict[str, list[str]] = {}


def _run(callbacks: list[str], module) -> None:
    for target in callbacks:
        modname, _, func = target.partition(":")
        getattr(importlib.import_module(modname), func)(module)


class _CallbackLoader:
    """Delegates to the real loader, then hands the executed module on."""

    def __init__(self, loader, callbacks: list[str]):
        self._loader = loader
        self._callbacks = callbacks

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _run(self._callbacks, module)

    def __getattr__(self, name):
        # get_source, get_code, is_package...: whatever the real loader offers.
        return getattr(self._loader, name)


def _wrap_loader(spec, callbacks: list[str]) -> None:
    loader = spec.loader
    if isinstance(loader, importlib.util.LazyLoader):
        # Keep the import lazy: wrap the loader that runs on first attribute access.
        loader.loader = _CallbackLoader(loader.loader, callbacks)  # type: ignore[attr-defined]
    else:
        spec.loader = _CallbackLoader(loader, callbacks)


class _Finder:
    """The one meta path entry: answers only for the modules in ``_pending``."""

    def find_spec(self, fullname, path, target=None):
        callbacks = _pending.get(fullname)
        if callbacks is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                del _pending[fullname]
                _wrap_loader(spec, callbacks)
                return spec
        return None


_finder = _Finder()


def _is_lazy_pending(module) -> bool:
    # type(), not isinstance(): reading __class__ of a lazy module would load it.
    return issubclass(type(module), importlib.util._LazyModule)  # type: ignore[attr-defined]


def on_module_executed(fullname: str, callback: str) -> None:
    """Call ``callback`` (``"package.module:function"``) with module ``fullname`` once it
    has run, now if it already has."""
    module = sys.modules.get(fullname)
    if module is None:
        if fullname in _pending:
            _pending[fullname].append(callback)
            return
        _pending[fullname] = [callback]
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
    elif _is_lazy_pending(module):
        # Registered but not executed yet: read the spec without triggering the load.
        spec = object.__getattribute__(module, "__spec__")
        spec.loader = _CallbackLoader(spec.loader, [callback])
    else:
        _run([callback], module)
