"""Is the engine reachable? `GET /_ping` with a short timeout, outside the engine client.

Reachability is a property of the connection, not of the answer: any HTTP answer (200, a
500 of a sick engine) means the engine is there; no connection, a reset or no answer within
the timeout means it is not. The engine client cannot say this by itself (its first request
negotiates the API version, and it reports some HTTP errors as unreachability), so this
speaks plain HTTP over the same socket, with its own connection, from any thread.
"""

from __future__ import annotations

import http.client
import socket
from typing import Protocol
from urllib.parse import urlsplit

from gcd.errors import EngineError, EngineUnreachableError


class Pingable(Protocol):
    """What `engine_answers` needs of gcd.engine.client.Engine (which this must not import)."""

    @property
    def host(self) -> str: ...

    def ping(self) -> object: ...


PING_PATH = "/_ping"
DEFAULT_TCP_PORT = 2375


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _connection(host: str, timeout: float) -> http.client.HTTPConnection | None:
    if host.startswith("unix://"):
        return _UnixConnection(host[len("unix://") :], timeout)
    url = urlsplit(host)
    if url.scheme in ("tcp", "http") and url.hostname:
        return http.client.HTTPConnection(
            url.hostname, url.port or DEFAULT_TCP_PORT, timeout=timeout
        )
    return None


def engine_reachable(host: str, timeout: float) -> bool | None:
    """True: the engine at `host` gave an HTTP answer to `GET /_ping`, whatever its status.
    False: no connection, or no complete status line within `timeout` seconds (per socket
    operation). None: `host` is not a plain unix or tcp address (ssh://, https://), which
    this probe does not speak; the caller falls back to the engine client's own ping."""
    connection = _connection(host, timeout)
    if connection is None:
        return None
    try:
        connection.request("GET", PING_PATH, headers={"Connection": "close"})
        response = connection.getresponse()
    except (OSError, http.client.HTTPException):
        connection.close()
        return False
    try:
        response.read(1024)  # a status line came: the body does not change the answer
    except (OSError, http.client.HTTPException):
        pass
    finally:
        connection.close()
    return True


def engine_answers(engine: Pingable, timeout: float) -> bool:
    """`engine_reachable` for `engine`'s host; for a host it does not speak (ssh://,
    https://), the client's own ping decides: any answer but unreachability is up."""
    up = engine_reachable(engine.host, timeout)
    if up is not None:
        return up
    try:
        engine.ping()
    except EngineUnreachableError:
        return False
    except EngineError:
        return True
    return True
