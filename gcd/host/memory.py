"""Giving a finished cycle's memory back to the system (the daemon, between cycles).

A cycle parses the engine's listings (megabytes of JSON at 5,000 images) and builds a snapshot
and a plan from them; all of it is garbage once the cycle is over, but CPython frees into its
own arenas and glibc's malloc keeps freed heap pages, so the resident size stays at the
cycle's peak. `gc.collect()` frees what reference cycles still hold and `malloc_trim(0)`
returns glibc's free pages (bench/RESULTS.md has the figures)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        trim = libc.malloc_trim if libc is not None else None
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim): nothing to do
        return None
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_memory() -> None:
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
