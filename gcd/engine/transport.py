"""One request to the engine: bounded in time, its failure classified, its strikes counted.

The docker SDK's `APIClient` takes a single timeout for every request. `SdkClient` reads the
bound of the request in progress from a context variable instead (set by `waiting`), so each
kind of request gets its own (`gcd.engine.timeouts`) while every SDK call stays as it is;
context variables are per thread, so the event watcher's thread never sees the executor's
bound. The SDK passes `timeout=None` itself for `GET /events`, which keeps it unbounded.
"""

from __future__ import annotations

import contextvars
import errno
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import docker
import requests.exceptions
import requests.utils
from docker.transport import UnixHTTPAdapter

from gcd.engine.hosts import redact_text
from gcd.engine.timeouts import Timeouts
from gcd.errors import EngineDownError, EngineNoAnswerError

__all__ = ["SdkClient", "Strikes", "is_refused", "waiting"]

_bound: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "gcd_engine_request_timeout", default=None
)


class _OneUnixPool(UnixHTTPAdapter):
    """docker-py's unix-socket adapter keys its connection pools by each request's full URL,
    so every per-image path (`/images/sha256:…/json`) opened a pool and a connection of its
    own (10,004 connections for a first sight of 5,000 images). One pool for the socket: the
    requests of a run go over one kept-alive connection (more only while the event stream or
    another thread holds one)."""

    def get_connection(self, url: str | bytes, proxies: Any = None) -> Any:
        return super().get_connection(self.socket_path, proxies)


class SdkClient(docker.APIClient):
    """`docker.APIClient` with the timeout of the request in progress (`waiting`), one
    kept-alive connection per socket (`_OneUnixPool`), and the proxy environment read once
    here rather than by `requests` on every call (`trust_env`: 3.6 s of an 8 s first sight of
    5,000 images). A proxy only ever applies to a `tcp://` engine."""

    def __init__(self, base_url: str, version: str, timeout: int) -> None:
        super().__init__(base_url=base_url, version=version, timeout=timeout)
        self.trust_env = False
        adapter = self.adapters.get("http+docker://")
        if isinstance(adapter, UnixHTTPAdapter):
            one = _OneUnixPool(
                f"http+unix://{adapter.socket_path}", timeout, max_pool_size=adapter.max_pool_size
            )
            adapter.close()
            self._custom_adapter = one
            self.mount("http+docker://", one)
        elif self.base_url.startswith(("http://", "https://")):
            self.proxies = requests.utils.get_environ_proxies(self.base_url)

    def speak(self, version: str) -> None:
        """Speak the negotiated API `version` from now on, over the same connection (a
        second client would open a second one)."""
        self._version = version

    def _set_request_timeout(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        # docker 7's request helpers (`_get`, `_post`, `_delete`) all pass through here.
        bound = _bound.get()
        kwargs.setdefault("timeout", self.timeout if bound is None else bound)
        return kwargs


@contextmanager
def waiting(bound: tuple[float, float]) -> Iterator[None]:
    """`(connect, read)` seconds for the requests made inside."""
    token = _bound.set(bound)
    try:
        yield
    finally:
        _bound.reset(token)


_REFUSED = (ConnectionRefusedError, FileNotFoundError, PermissionError)
_REFUSED_ERRNOS = frozenset({errno.ECONNREFUSED, errno.ENOENT, errno.EACCES, errno.EHOSTUNREACH})


def _causes(exc: BaseException, depth: int = 0) -> Iterator[BaseException]:
    """`exc` and what it wraps: requests → urllib3 (`reason`, `args`) → the socket's OSError."""
    if depth > 8:
        return
    yield exc
    inner = [exc.__cause__, exc.__context__, getattr(exc, "reason", None), *exc.args]
    for item in inner:
        if isinstance(item, BaseException) and item is not exc:
            yield from _causes(item, depth + 1)


def is_refused(exc: BaseException) -> bool:
    """The connection was never made (nothing listens, no socket, no permission): the request
    cannot have reached the engine. Otherwise a connection error lost an answer."""
    for cause in _causes(exc):
        if isinstance(cause, _REFUSED):
            return True
        if isinstance(cause, OSError) and cause.errno in _REFUSED_ERRNOS:
            return True
        name = type(cause).__name__
        if name in ("NewConnectionError", "NameResolutionError"):
            return True
    return False


def is_no_answer(exc: BaseException) -> bool:
    """A timeout, or a connection lost (reset, closed) after it was made."""
    if isinstance(exc, requests.exceptions.Timeout):
        return True
    return isinstance(exc, requests.exceptions.ConnectionError) and not is_refused(exc)


class Strikes:
    """Consecutive unanswered requests per kind of request (`GET /containers/json`,
    `DELETE /images/{id}`); at `Timeouts.give_up_after` in a row of one kind, the engine is
    down until `clear` (a new run, or an answered ping). Counted under a lock: the executor
    deletes images on several threads."""

    def __init__(self, timeouts: Timeouts) -> None:
        self.timeouts = timeouts
        self._by_kind: dict[str, int] = {}
        self._lock = threading.Lock()
        self.down: str | None = None

    def clear(self) -> None:
        with self._lock:
            self._by_kind.clear()
            self.down = None

    def check(self) -> None:
        """Raise `EngineDownError` if gcd gave up on the engine: no request is sent."""
        if self.down is not None:
            raise EngineDownError(self.down, timed_out=True)

    def answered(self, kind: str) -> None:
        with self._lock:
            self._by_kind.pop(kind, None)

    def missed(self, kind: str, exc: BaseException, read_seconds: float) -> EngineNoAnswerError:
        """Count a request of `kind` that got no answer; the error to raise for it."""
        timed_out = isinstance(exc, requests.exceptions.Timeout)
        with self._lock:
            count = self._by_kind.get(kind, 0) + 1
            self._by_kind[kind] = count
        what = (
            f"{kind} got no answer within {read_seconds:g} s"
            if timed_out
            else f"{kind} lost its connection before the answer ({_short(exc)})"
        )
        limit = self.timeouts.give_up_after
        if count >= limit:
            down = (
                f"{what}, {count} times in a row: gcd gave up on the engine for this run "
                "(the rest is not attempted). Is dockerd stalled? Check `docker info` and the "
                "engine's log; the next run tries again"
            )
            with self._lock:  # the first of several threads to give up says why
                self.down = reason = self.down or down
            return EngineDownError(reason, timed_out=timed_out)
        return EngineNoAnswerError(
            f"{what} (strike {count} of {limit}). Is dockerd stalled? Check `docker info`",
            timed_out=timed_out,
        )


def _short(exc: object, limit: int = 200) -> str:
    text = redact_text(str(exc))
    return text if len(text) <= limit else text[:limit] + "…"


def describe_error(exc: object) -> str:
    """An exception's text as it may be shown: redacted and bounded."""
    return _short(exc, 500)
