"""gcd: policy-driven garbage collection for Docker hosts."""

import importlib
import os
import sys
import types

__version__ = "0.1.0"


class _OnFirstUse(types.ModuleType):
    """Stands in for a module a library imports but uses only inside functions: the real
    module is imported when the library first reads one of its attributes."""

    def __getattr__(self, attribute: str) -> object:
        real = self.__dict__.get("_real")
        if real is None:
            real = importlib.import_module(self.__name__)
            self.__dict__["_real"] = real
        return getattr(real, attribute)


def _import_structlog_lean() -> None:
    """`import structlog` cost more than the rest of `gcd check` (`python -X importtime`,
    bench/RESULTS.md) for two things gcd does not use there:

    - structlog.dev imports rich's console and traceback for a traceback renderer gcd never
      uses: gcd.logs formats exceptions to text (`format_exc_info`) before any renderer sees
      them. Hidden while structlog loads, structlog.dev takes its plain formatter; rich stays
      importable for the plan tables (gcd.render).
    - structlog.stdlib and structlog._native import asyncio (and with it ssl) only for their
      async methods: they get a stand-in that imports asyncio on their first use of it.

    Both stand-ins leave sys.modules as soon as structlog is imported."""
    if "structlog" in sys.modules:
        return
    stand_ins: dict[str, types.ModuleType | None] = {}
    if "rich" not in sys.modules:
        stand_ins["rich"] = None  # `import rich` raises ImportError
    if "asyncio" not in sys.modules:
        stand_ins["asyncio"] = _OnFirstUse("asyncio")
    sys.modules.update(stand_ins)  # type: ignore[arg-type]
    try:
        import structlog  # noqa: F401, PLC0415
    finally:
        for name in stand_ins:
            del sys.modules[name]


_import_structlog_lean()

# gcd uses no pydantic plugin, and looking for them reads every installed distribution's entry
# points when the first model class is built: a third of `gcd check` (measured with cProfile).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
