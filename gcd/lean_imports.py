"""Libraries imported lean: a module they import at their top but use only inside functions
gcd does not call gets a stand-in while they load (bench/RESULTS.md, "Start-up" and "Daemon
memory"). A meta-path finder wraps the loader of each name in `LEAN`, whoever imports it first,
and leaves sys.meta_path once all are loaded; the stand-ins leave sys.modules at once.

- structlog: structlog.dev imports rich's console and traceback for a traceback renderer gcd
  never uses (gcd.logs formats exceptions to text, `format_exc_info`, before any renderer sees
  them): hidden, structlog.dev takes its plain formatter; rich stays importable for the plan
  tables (gcd.render). structlog.stdlib and structlog._native import asyncio (and with it ssl)
  for their async methods only.
- pydantic.plugin._loader imports importlib.metadata (with email, zipfile, socket, tempfile:
  a third of pydantic's import in `gcd check`) for `entry_points`, called only when plugins are
  enabled; gcd disables them (gcd/__init__.py) unless the environment says otherwise.
- apscheduler.util imports asyncio (1.5 MiB of the daemon's resident size) for
  `iscoroutinefunction`, which only APScheduler's asyncio and tornado executors call.

A stand-in imports the real module at its first use (an attribute read, or a call of one of
its `functions`), so each library still works in full if it does use it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any


class OnFirstUse(types.ModuleType):
    """Stands in for a module: the real one is imported when the library first reads one of
    its attributes, or first calls one of `functions` (`from module import function` reads the
    function at import time, so it gets a wrapper)."""

    def __init__(self, name: str, functions: Sequence[str] = ()) -> None:
        super().__init__(name)
        for function in functions:
            setattr(self, function, self._deferred(function))

    def _deferred(self, function: str) -> Callable[..., object]:
        def call(*args: object, **kwargs: object) -> object:
            return getattr(importlib.import_module(self.__name__), function)(*args, **kwargs)

        return call

    def __getattr__(self, attribute: str) -> object:
        if attribute.startswith("__"):  # the import system's questions (`__path__`)
            raise AttributeError(attribute)
        real = self.__dict__.get("_real")
        if real is None:
            real = importlib.import_module(self.__name__)
            self.__dict__["_real"] = real
        return getattr(real, attribute)


StandIns = dict[str, types.ModuleType | None]
"""Module name → stand-in (None: `import name` raises ImportError)."""

LEAN: dict[str, Callable[[], StandIns]] = {
    "structlog": lambda: {"rich": None, "asyncio": OnFirstUse("asyncio")},
    "pydantic.plugin._loader": lambda: {
        "importlib.metadata": OnFirstUse("importlib.metadata", ["entry_points"])
    },
    "apscheduler.util": lambda: {"asyncio": OnFirstUse("asyncio", ["iscoroutinefunction"])},
}

_after: dict[str, list[Callable[[], None]]] = {}


@contextlib.contextmanager
def standing_in(stand_ins: StandIns) -> Iterator[None]:
    """Import with these modules standing in for those not imported yet."""
    placed = {name: module for name, module in stand_ins.items() if name not in sys.modules}
    sys.modules.update(placed)  # type: ignore[arg-type]
    try:
        yield
    finally:
        for name, module in placed.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


def when_imported(name: str, callback: Callable[[], None]) -> None:
    """Call `callback` once module `name` is imported: now if it is, else right after whoever
    imports it first loads it (gcd.logs configures structlog so: a command that never logs
    never pays for structlog)."""
    spec = getattr(sys.modules.get(name), "__spec__", None)
    if name in sys.modules and not getattr(spec, "_initializing", False):
        callback()
    else:
        _after.setdefault(name, []).append(callback)


class _LeanLoader:
    """Runs a module's own loader with its stand-ins in sys.modules."""

    def __init__(self, real: Any, stand_ins: StandIns) -> None:
        self.real = real
        self.stand_ins = stand_ins

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        module: types.ModuleType | None = self.real.create_module(spec)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        try:
            with standing_in(self.stand_ins):
                self.real.exec_module(module)
        finally:
            module.__loader__ = self.real
            if module.__spec__ is not None:
                module.__spec__.loader = self.real
        callbacks = _after.pop(module.__name__, [])
        for callback in callbacks:
            callback()


class _LeanFinder:
    """Gives the other finders' spec of a name in `LEAN` a `_LeanLoader` (importlib.abc is not
    subclassed: it imports importlib.resources, 24 ms)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        stand_ins = LEAN.get(fullname)
        if stand_ins is None or fullname in sys.modules:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _LeanLoader(spec.loader, stand_ins())
                if all(name in sys.modules or name == fullname for name in LEAN):
                    sys.meta_path.remove(self)
                return spec  # type: ignore[no-any-return]
        return None


def install() -> None:
    if not any(isinstance(finder, _LeanFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _LeanFinder())
