"""A counting proxy between a client and the engine's unix socket: every HTTP request line
the client sends is counted by method and path (query left out), and every connection it
opens. Bytes pass unchanged both ways; nothing is parsed but the request lines, which in
HTTP/1.1 start the client's stream and follow each request's body (gcd and the docker CLI
send bodies only on a few POSTs, counted by Content-Length)."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Self

_REQUEST = re.compile(rb"^(GET|POST|DELETE|HEAD|PUT) (/[^ ?]*)(?:\?[^ ]*)? HTTP/1\.[01]\r\n")
_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)\r\n", re.IGNORECASE)


def _route(path: str) -> str:
    """`/v1.45/images/sha256:…/json` → `/images/{id}/json`: counts per kind of call."""
    parts = [p for p in path.split("/") if p]
    if parts and re.fullmatch(r"v\d+\.\d+", parts[0]):
        parts = parts[1:]
    if len(parts) >= 3 or (len(parts) == 2 and parts[1] not in ("json", "load", "prune", "create")):
        parts[1] = "{id}"
    return "/" + "/".join(parts)


class CountingProxy:
    """`with CountingProxy(engine_socket, listen) as proxy:` point clients at `proxy.host`;
    `proxy.take()` returns the counts so far and starts again from zero."""

    def __init__(self, upstream: str, listen: Path) -> None:
        self.upstream = upstream
        self.listen = listen
        self.counts: Counter[str] = Counter()
        self.connections = 0
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    @property
    def host(self) -> str:
        return f"unix://{self.listen}"

    def __enter__(self) -> Self:
        self.listen.unlink(missing_ok=True)
        self._server.bind(str(self.listen))
        self.listen.chmod(0o666)
        self._server.listen(256)
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(OSError):
            self._server.close()
        self.listen.unlink(missing_ok=True)

    def take(self) -> tuple[Counter[str], int]:
        with self._lock:
            counts, connections = self.counts, self.connections
            self.counts, self.connections = Counter(), 0
        return counts, connections

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _requests(self, source: socket.socket, target: socket.socket) -> None:
        """Client → engine: count each request line, skip its headers and body."""
        pending = b""
        body_left = 0
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
                pending += chunk
                while True:
                    if body_left:
                        taken = min(body_left, len(pending))
                        pending, body_left = pending[taken:], body_left - taken
                        if body_left:
                            break
                    end = pending.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head, pending = pending[: end + 4], pending[end + 4 :]
                    found = _REQUEST.match(head)
                    if found:
                        with self._lock:
                            self.counts[f"{found[1].decode()} {_route(found[2].decode())}"] += 1
                    length = _LENGTH.search(head)
                    body_left = int(length[1]) if length else 0
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (target, source):
                with contextlib.suppress(OSError):
                    end.close()
