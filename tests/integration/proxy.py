"""An HTTP proxy on a unix socket in front of the suite's engine, for the moments between two
requests of gcd's: a test registers `before(match, action)`, and the proxy runs `action`
right before it forwards a request that `match(method, path)` accepts — the engine changes
exactly there, as another client on a busy host would change it. No production code knows
about it. Free of pytest, like the harness.

Only what the executor and the snapshot send goes through: requests with or without a
`Content-Length` body, answers read whole (no event streams, no attach).
"""

from __future__ import annotations

import http.client
import socket
import socketserver
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Self

Match = Callable[[str, str], bool]
"""`(method, path with query)` → whether the hook applies."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str) -> None:
        super().__init__("localhost", timeout=120)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


@dataclass
class _Hook:
    match: Match
    action: Callable[[str, str], None]
    times: int | None
    """How many more matching requests it runs for; None: every one."""
    ran: int = 0


@dataclass
class EngineProxy:
    """`with EngineProxy(engine_socket) as proxy: Engine(proxy.host)`."""

    upstream: Path
    delay_seconds: float = 0.0
    """Held before every forwarded request that a `delay` match accepts."""
    delay: Match = field(default=lambda _m, _p: False)
    requests: list[tuple[str, str]] = field(default_factory=list)
    _hooks: list[_Hook] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gcd-proxy-", dir="/tmp"))
        self.socket = self.dir / "proxy.sock"
        self._server: socketserver.ThreadingUnixStreamServer | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def before(
        self, match: Match, action: Callable[[str, str], None], *, times: int | None = 1
    ) -> _Hook:
        """Run `action(method, path)` before forwarding each of the next `times` requests
        that `match` accepts."""
        hook = _Hook(match, action, times)
        with self._lock:
            self._hooks.append(hook)
        return hook

    def _due(self, method: str, path: str) -> list[_Hook]:
        with self._lock:
            self.requests.append((method, path))
            due = [
                h
                for h in self._hooks
                if (h.times is None or h.ran < h.times) and h.match(method, path)
            ]
            for hook in due:
                hook.ran += 1
            return due

    def __enter__(self) -> Self:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                for hook in proxy._due(self.command, self.path):
                    hook.action(self.command, self.path)
                if proxy.delay_seconds and proxy.delay(self.command, self.path):
                    time.sleep(proxy.delay_seconds)
                upstream = _UnixConnection(str(proxy.upstream))
                try:
                    headers = {
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() not in {"connection", "keep-alive"}
                    }
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    content = answer.read()
                finally:
                    upstream.close()
                self.send_response_only(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in {"transfer-encoding", "content-length", "connection"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_DELETE = do_PUT = do_HEAD = _forward

        self._server = socketserver.ThreadingUnixStreamServer(str(self.socket), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.socket.unlink(missing_ok=True)
        self.dir.rmdir()


def deleting(method: str, path: str) -> bool:
    """`DELETE /…/images/…`: any image delete or untag by name."""
    return method == "DELETE" and "/images/" in path
