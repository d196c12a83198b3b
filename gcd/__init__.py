"""gcd: policy-driven garbage collection for Docker hosts."""

import contextlib
import importlib
import importlib.machinery
import os
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__version__ = "0.1.0"


class _OnFirstUse(types.ModuleType):
    """Stands in for a module a library imports but uses only inside functions: the real
    module is imported when the library first reads one of its attributes, or first calls one
    of `functions` (for `from module import function`, which reads it at import)."""

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


@contextlib.contextmanager
def standing_in(stand_ins: dict[str, types.ModuleType | None]) -> Iterator[None]:
    """Import with these modules standing in for those not imported yet (None: `import name`
    raises ImportError); the stand-ins leave sys.modules afterwards."""
    placed = {name: module for name, module in stand_ins.items() if name not in sys.modules}
    sys.modules.update(placed)  # type: ignore[arg-type]
    try:
        yield
    finally:
        for name, module in placed.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


def import_pydantic_lean() -> None:
    """pydantic.plugin._loader imports importlib.metadata (with email, zipfile, socket and
    tempfile: a third of `import pydantic` in `gcd check`, `python -X importtime`) for
    `entry_points`, which it calls only when plugins are enabled, and gcd disables them (below).
    It gets a stand-in whose `entry_points` imports importlib.metadata when called."""
    if "pydantic.plugin._loader" in sys.modules:
        return
    with standing_in({"importlib.metadata": _OnFirstUse("importlib.metadata", ["entry_points"])}):
        importlib.import_module("pydantic.plugin._loader")


_after_structlog: list[Callable[[], None]] = []


def when_structlog_imported(callback: Callable[[], None]) -> None:
    """Call `callback` once structlog is imported: now if it is, else right after whoever
    imports it first (gcd.logs configures structlog there, so a command that never logs never
    pays for structlog)."""
    if "structlog" in sys.modules and not _structlog_loading():
        callback()
    else:
        _after_structlog.append(callback)


def _structlog_loading() -> bool:
    spec = getattr(sys.modules.get("structlog"), "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


class _LeanLoader:
    """Runs structlog's own loader with two stand-ins in sys.modules (`_LeanStructlog`)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        module: types.ModuleType | None = self.real.create_module(spec)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        stand_ins: dict[str, types.ModuleType | None] = {
            "rich": None,  # `import rich` raises ImportError
            "asyncio": _OnFirstUse("asyncio"),
        }
        try:
            with standing_in(stand_ins):
                self.real.exec_module(module)
        finally:
            module.__loader__ = self.real
            if module.__spec__ is not None:
                module.__spec__.loader = self.real
        while _after_structlog:
            _after_structlog.pop(0)()


class _LeanStructlog:
    """`import structlog` cost more than the rest of `gcd check` (`python -X importtime`,
    bench/RESULTS.md) for two things gcd does not use, so whoever imports it first (any gcd
    module, at the first command that logs) imports it lean:

    - structlog.dev imports rich's console and traceback for a traceback renderer gcd never
      uses: gcd.logs formats exceptions to text (`format_exc_info`) before any renderer sees
      them. Hidden while structlog loads, structlog.dev takes its plain formatter; rich stays
      importable for the plan tables (gcd.render).
    - structlog.stdlib and structlog._native import asyncio (and with it ssl) only for their
      async methods: they get a stand-in that imports asyncio on their first use of it.

    Both stand-ins leave sys.modules as soon as structlog is imported, and so does this finder
    (it only wraps the loader the other finders give)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "structlog":
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _LeanLoader(spec.loader)
                return spec  # type: ignore[no-any-return]
        return None


if "structlog" not in sys.modules:
    sys.meta_path.insert(0, _LeanStructlog())

# gcd uses no pydantic plugin, and looking for them reads every installed distribution's entry
# points when the first model class is built: a third of `gcd check` (measured with cProfile).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
