"""An HTTP proxy on a unix socket in front of the suite's engine, for the moments between two
requests of gcd's: a test registers `before(match, action)`, and the proxy runs `action`
right before it forwards a request that `match(method, path)` accepts — the engine changes
exactly there, as another client on a busy host would change it. No production code knows
about it. Free of pytest, like the harness.

It also injects faults (`proxy.fault(match, Fault(...))`): latency, a reset before or after the
request reached the engine, an HTTP status of its own, a truncated or garbled body, a hang until
the fault is lifted. Faults can be added and lifted while a gcd process (a daemon) talks
through the proxy. Answers are read whole, except chunked ones (`GET /events`), which are
streamed on as they come unless a fault needs their body.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import socketserver
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
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


class FaultKind(Enum):
    LATENCY = "latency"
    """Wait `seconds`, then forward as usual."""
    RESET_BEFORE = "reset_before"
    """Close the connection without forwarding: the engine never saw the request."""
    RESET_AFTER = "reset_after"
    """Forward, let the engine answer, then close without a byte of the answer."""
    STATUS = "status"
    """Answer `status` with `body` (JSON) without forwarding."""
    TRUNCATE = "truncate"
    """Forward, then send the engine's headers with the full Content-Length but only the first
    half of its body, and close."""
    GARBLE = "garble"
    """Forward, then answer the engine's status with `body` instead of the engine's body."""
    HANG = "hang"
    """Hold the request, unforwarded, until the fault is lifted (then forward it), or until the
    proxy closes."""


_BODY_FAULTS = frozenset({FaultKind.RESET_AFTER, FaultKind.TRUNCATE, FaultKind.GARBLE})
"""Faults on the engine's answer: a chunked one (Podman chunks every answer) is read whole
for them rather than streamed, so that they apply on every engine."""


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    seconds: float = 0.0
    status: int = 500
    body: bytes = b'{"message": "injected by the test proxy"}'

    @classmethod
    def latency(cls, seconds: float) -> Fault:
        return cls(FaultKind.LATENCY, seconds=seconds)

    @classmethod
    def reset(cls, *, after_forwarding: bool = False) -> Fault:
        return cls(FaultKind.RESET_AFTER if after_forwarding else FaultKind.RESET_BEFORE)

    @classmethod
    def answer(cls, status: int, body: bytes | str = b'{"message": "injected"}') -> Fault:
        raw = body.encode() if isinstance(body, str) else body
        return cls(FaultKind.STATUS, status=status, body=raw)

    @classmethod
    def truncate(cls) -> Fault:
        return cls(FaultKind.TRUNCATE)

    @classmethod
    def garble(cls, body: bytes | str) -> Fault:
        return cls(FaultKind.GARBLE, body=body.encode() if isinstance(body, str) else body)

    @classmethod
    def hang(cls) -> Fault:
        return cls(FaultKind.HANG)


@dataclass
class ActiveFault:
    """A fault in force: `lift()` ends it (a hung request is then forwarded)."""

    match: Match
    fault: Fault
    times: int | None
    hits: int = 0
    lifted: threading.Event = field(default_factory=threading.Event)

    def lift(self) -> None:
        self.lifted.set()


class _Reset(Exception):
    """Close the client's connection without an answer."""


@dataclass
class EngineProxy:
    """`with EngineProxy(engine_socket) as proxy: Engine(proxy.host)`."""

    upstream: Path
    delay_seconds: float = 0.0
    """Held before every forwarded request that a `delay` match accepts."""
    delay: Match = field(default=lambda _m, _p: False)
    requests: list[tuple[str, str]] = field(default_factory=list)
    connections: int = 0
    """How many client connections it accepted (a kept-alive one serves many requests)."""
    _hooks: list[_Hook] = field(default_factory=list)
    _faults: list[ActiveFault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closing: threading.Event = field(default_factory=threading.Event)

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

    def fault(self, match: Match, fault: Fault, *, times: int | None = None) -> ActiveFault:
        """Inject `fault` into each of the next `times` requests `match` accepts (None: every
        one, until lifted). The first fault in force that matches applies."""
        active = ActiveFault(match, fault, times)
        with self._lock:
            self._faults.append(active)
        return active

    def lift_faults(self) -> None:
        """End every fault; hung requests are forwarded now."""
        with self._lock:
            faults, self._faults = self._faults, []
        for active in faults:
            active.lift()

    def _fault_for(self, method: str, path: str) -> ActiveFault | None:
        with self._lock:
            for active in self._faults:
                if active.lifted.is_set() or (
                    active.times is not None and active.hits >= active.times
                ):
                    continue
                if active.match(method, path):
                    active.hits += 1
                    return active
        return None

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

            def setup(self) -> None:
                with proxy._lock:
                    proxy.connections += 1
                super().setup()

            def _forward(self) -> None:
                try:
                    self._serve()
                except (_Reset, BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                for hook in proxy._due(self.command, self.path):
                    hook.action(self.command, self.path)
                if proxy.delay_seconds and proxy.delay(self.command, self.path):
                    time.sleep(proxy.delay_seconds)
                active = proxy._fault_for(self.command, self.path)
                fault = active.fault if active else None
                if active is not None and fault is not None:
                    if fault.kind is FaultKind.LATENCY:
                        time.sleep(fault.seconds)
                    elif fault.kind is FaultKind.RESET_BEFORE:
                        raise _Reset
                    elif fault.kind is FaultKind.STATUS:
                        self._send(fault.status, "Injected", fault.body, [])
                        return
                    elif fault.kind is FaultKind.HANG:
                        while not (active.lifted.wait(0.2) or proxy._closing.is_set()):
                            pass
                        if proxy._closing.is_set():
                            raise _Reset
                upstream = _UnixConnection(str(proxy.upstream))
                try:
                    headers = {
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() not in {"connection", "keep-alive"}
                    }
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    if answer.chunked and (fault is None or fault.kind not in _BODY_FAULTS):
                        self._stream(answer)
                        return
                    content = answer.read()
                finally:
                    upstream.close()
                kept = [
                    (k, v)
                    for k, v in answer.getheaders()
                    if k.lower() not in {"transfer-encoding", "content-length", "connection"}
                ]
                if fault is not None and fault.kind is FaultKind.RESET_AFTER:
                    raise _Reset
                if fault is not None and fault.kind is FaultKind.TRUNCATE:
                    self.send_response_only(answer.status, answer.reason)
                    for key, value in kept:
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content[: len(content) // 2])
                    self.wfile.flush()
                    raise _Reset
                if fault is not None and fault.kind is FaultKind.GARBLE:
                    content = fault.body
                self._send(answer.status, answer.reason, content, kept)

            def _send(
                self, status: int, reason: str, content: bytes, headers: list[tuple[str, str]]
            ) -> None:
                self.send_response_only(status, reason)
                for key, value in headers:
                    self.send_header(key, value)
                if not any(k.lower() == "content-type" for k, _ in headers):
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def _stream(self, answer: http.client.HTTPResponse) -> None:
                """A chunked answer (an event stream, a long list): passed on chunk by chunk
                until either side closes. One the engine ended whole leaves the connection
                open, as the engine does (a client reuses it for its next request); one cut
                short closes it."""
                self.send_response_only(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in {"content-length", "connection"}:
                        self.send_header(key, value)
                self.end_headers()
                whole = False
                while not proxy._closing.is_set():
                    try:
                        data = answer.read1(65536)
                    except (OSError, http.client.HTTPException):
                        break
                    if not data:
                        whole = answer.isclosed()
                        break
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                self.close_connection = not whole
                with contextlib.suppress(OSError):
                    self.wfile.write(b"0\r\n\r\n")

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
        self._closing.set()
        self.lift_faults()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.socket.unlink(missing_ok=True)
        self.dir.rmdir()


def deleting(method: str, path: str) -> bool:
    """`DELETE /…/images/…`: any image delete or untag by name."""
    return method == "DELETE" and "/images/" in path
