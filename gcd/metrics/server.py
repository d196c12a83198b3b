"""Serve a metrics registry over HTTP(S), with the optional TLS and basic auth of a web-config.

`prometheus_client.make_wsgi_app(registry)` behind a small threading WSGI server: each
connection is handled on its own thread, and under TLS the handshake happens on that thread
too, so a slow or broken client never blocks the accept loop. The default address is
loopback: exposing the endpoint is a decision the operator makes with `--metrics-address`.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import bcrypt
import structlog
from prometheus_client import CollectorRegistry, make_wsgi_app

from gcd.config.webconfig import WebConfig
from gcd.errors import UsageError

__all__ = ["DEFAULT_ADDRESS", "DEFAULT_PORT", "BasicAuth", "MetricsServer", "parse_address"]

DEFAULT_PORT = 9795
DEFAULT_ADDRESS = f"127.0.0.1:{DEFAULT_PORT}"
CONNECTION_TIMEOUT_SECONDS = 30.0

log = structlog.get_logger("gcd.metrics_server")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `[IPv6]:PORT` or `:PORT` → (host, port); host "" for `:PORT`: every
    interface, IPv6 and IPv4 (`MetricsServer.start`)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(
            f"--metrics-address: expected HOST:PORT such as {DEFAULT_ADDRESS} or [::1]:"
            f"{DEFAULT_PORT}, got {text!r}"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise UsageError(
            f"--metrics-address: put an IPv6 address in brackets, as in [{host}]:{port_text}"
        )
    return host, int(port_text)


class BasicAuth:
    """Checks `Authorization: Basic` against bcrypt hashes.

    bcrypt is slow on purpose, so credentials that once verified are remembered (as a digest,
    never in clear) and a scrape every 15 s costs one hash comparison, not one bcrypt run.
    Unknown users are checked against a dummy hash so timing does not reveal which users exist.
    """

    _DUMMY = bcrypt.hashpw(b"gcd: no such user", bcrypt.gensalt(rounds=4))

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def check(self, header: str | None) -> bool:
        if not self._users:
            return True
        credentials = _basic_credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        hashed = self._users.get(user)
        key = hashlib.sha256(b"\0".join((user.encode(), password, hashed or b""))).digest()
        with self._lock:
            if key in self._verified:
                return True
        try:
            ok = bcrypt.checkpw(password, hashed or self._DUMMY) and hashed is not None
        except ValueError:  # bcrypt ≥ 5 refuses passwords longer than 72 bytes
            ok = False
        if ok:
            with self._lock:
                self._verified.add(key)
        return ok


def _basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


def _application(registry: CollectorRegistry, auth: BasicAuth) -> WsgiApp:
    metrics: WsgiApp = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not auth.check(environ.get("HTTP_AUTHORIZATION")):
            start_response(
                "401 Unauthorized",
                [
                    ("WWW-Authenticate", 'Basic realm="gcd", charset="UTF-8"'),
                    ("Content-Type", "text/plain; charset=utf-8"),
                ],
            )
            return [b"Unauthorized\n"]
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"gcd: Docker garbage collection. Metrics are at /metrics\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"Not found. Metrics are at /metrics\n"]

    return app


def _noting_scrapes(app: WsgiApp, scraped: threading.Event) -> WsgiApp:
    def noting(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, *args: Any) -> Any:
            if status.startswith("200") and environ.get("PATH_INFO") == "/metrics":
                scraped.set()
            return start_response(status, *args)

        return app(environ, start)

    return noting


class _ErrorsToLog:
    """wsgiref's stderr for an application error: its traceback, written line by line and
    flushed at the end, becomes one `metrics_app_failed` event instead of raw lines."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        text, self._parts = "".join(self._parts).rstrip(), []
        if text:
            log.error("metrics_app_failed", detail=text)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """One line per scrape would drown the journal; failures are logged by the server."""

    def get_stderr(self) -> Any:
        return _ErrorsToLog()


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self, address: tuple[str, int], family: int, ssl_context: ssl.SSLContext | None
    ) -> None:
        self.address_family = socket.AddressFamily(family)
        self.ssl_context = ssl_context
        super().__init__(address, _QuietHandler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            # `:PORT`: one socket for IPv6 and IPv4 (mapped), whatever net.ipv6.bindv6only says
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Runs on the connection's own thread: the TLS handshake happens here too."""
        connection: socket.socket = request
        connection.settimeout(CONNECTION_TIMEOUT_SECONDS)
        if self.ssl_context is None:
            super().finish_request(connection, client_address)
            return
        try:
            tls = self.ssl_context.wrap_socket(connection, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("metrics_tls_handshake_failed", client=str(client_address), error=str(exc))
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("metrics_request_failed", client=str(client_address), exc_info=True)


class MetricsServer:
    """Serves `registry` at `/metrics` on `address` (HOST:PORT) until `stop()`.

    Port 0 binds a free port; `port` tells which, once started."""

    def __init__(
        self,
        registry: CollectorRegistry,
        address: str = DEFAULT_ADDRESS,
        web_config: WebConfig | None = None,
    ) -> None:
        self._host, self._requested_port = parse_address(address)
        self._config = web_config or WebConfig()
        self._context = (
            self._config.tls.ssl_context(self._config.source) if self._config.tls else None
        )
        self._app = _application(registry, BasicAuth(self._config.basic_auth_users))
        self.scraped = threading.Event()
        """Set once /metrics has been served (gcd.startgate: the first cycle waits for it)."""
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the metrics server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self._context is not None else "http"
        bound = str(self._server.server_address[0]) if self._server else self._host
        host = f"[{bound}]" if ":" in bound else bound
        return f"{scheme}://{host}:{self.port}/metrics"

    def start(self) -> None:
        """Bind and serve on a daemon thread. Raises UsageError when the address is unusable."""
        if self._server is not None:
            return
        try:
            server = self._bind()
        except OSError as exc:
            raise UsageError(
                f"cannot serve metrics on {self._host}:{self._requested_port}: "
                f"{exc.strerror or exc}. Choose a free local address with --metrics-address"
            ) from exc
        server.set_app(_noting_scrapes(self._app, self.scraped))
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="gcd-metrics"
        )
        self._thread.daemon = True
        self._thread.start()
        log.info(
            "metrics_serving",
            url=self.url,
            tls=self._context is not None,
            basic_auth=bool(self._config.basic_auth_users),
        )

    def _bind(self) -> _Server:
        port = self._requested_port
        if not self._host:  # `:PORT`: dual-stack, or IPv4 alone on a host without IPv6
            try:
                return _Server(("::", port), socket.AF_INET6, self._context)
            except OSError as exc:
                if exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                    raise
            return _Server(("0.0.0.0", port), socket.AF_INET, self._context)
        family = socket.getaddrinfo(
            self._host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0][0]
        return _Server((self._host, port), family, self._context)

    def stop(self) -> None:
        """Stop accepting and close the socket. Requests in flight finish on their threads."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.server_close()
        thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
