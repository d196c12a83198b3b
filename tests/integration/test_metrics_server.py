"""The metrics endpoint over real HTTP on loopback: plain, TLS, client certificates, basic auth.

Certificates are made per test session with the `openssl` command line; `promtool check
metrics` lints a real scrape when promtool is installed (scripts/test installs it).
"""

from __future__ import annotations

import base64
import http.client
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
from prometheus_client import CollectorRegistry

from gcd.config.webconfig import load_web_config
from gcd.errors import UsageError, WebConfigError
from gcd.metrics.definitions import Metrics
from gcd.metrics.server import MetricsServer

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command line")

PASSWORD = b"correct horse battery staple"


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *map(str, args)], cwd=cwd, check=True, capture_output=True)


def _key_and_csr(name: str, subject: str, cwd: Path) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=cwd)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=cwd)


def _self_signed(name: str, subject: str, cwd: Path, *extra: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "2", "-subj", subject, "-keyout", f"{name}.key", "-out", f"{name}.crt",
        *extra, cwd=cwd,
    )  # fmt: skip


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A server certificate for 127.0.0.1, a CA with one client, and a stranger client."""
    d = tmp_path_factory.mktemp("pki")
    _self_signed("server", "/CN=127.0.0.1", d, "-addext", "subjectAltName=IP:127.0.0.1")
    _self_signed("ca", "/CN=gcd test CA", d)
    _key_and_csr("client", "/CN=prometheus", d)
    _openssl(
        "x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "client.crt", cwd=d,
    )  # fmt: skip
    _self_signed("stranger", "/CN=stranger", d)
    return Pki(
        d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key",
        d / "stranger.crt", d / "stranger.key",
    )  # fmt: skip


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Metrics(registry)
    return registry


def _serve(registry: CollectorRegistry, config_text: str | None, where: Path) -> MetricsServer:
    config = None
    if config_text is not None:
        path = where / "web.yaml"
        path.write_text(config_text)
        config = load_web_config(path)
    return MetricsServer(registry, "127.0.0.1:0", config)


@pytest.fixture
def running() -> Iterator[list[MetricsServer]]:
    servers: list[MetricsServer] = []
    yield servers
    for server in servers:
        server.stop()


def _start(servers: list[MetricsServer], server: MetricsServer) -> MetricsServer:
    server.start()
    servers.append(server)
    return server


def _get(
    server: MetricsServer,
    path: str = "/metrics",
    *,
    context: ssl.SSLContext | None = None,
    auth: tuple[str, bytes] | None = None,
) -> tuple[int, str]:
    connection: http.client.HTTPConnection
    if context is None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    else:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", server.port, timeout=10, context=context
        )
    headers = {}
    if auth is not None:
        token = base64.b64encode(auth[0].encode() + b":" + auth[1]).decode()
        headers["Authorization"] = f"Basic {token}"
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def _client_context(pki: Pki, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki.server_cert)
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


class TestPlainHttp:
    def test_a_scrape_returns_gcd_metrics(
        self, registry: CollectorRegistry, running: list[MetricsServer], tmp_path: Path
    ) -> None:
        server = _start(running, _serve(registry, None, tmp_path))
        status, body = _get(server)
        assert status == 200
        assert "gcd_build_info{" in body
        assert "# TYPE gcd_reclaimed_bytes_total counter" in body
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"

    def test_other_paths_are_not_found_and_root_points_to_metrics(
        self, registry: CollectorRegistry, running: list[MetricsServer], tmp_path: Path
    ) -> None:
        server = _start(running, _serve(registry, None, tmp_path))
        assert _get(server, "/nothing")[0] == 404
        status, body = _get(server, "/")
        assert status == 200
        assert "/metrics" in body

    def test_a_busy_port_is_a_usage_error_naming_the_address(
        self, registry: CollectorRegistry, running: list[MetricsServer], tmp_path: Path
    ) -> None:
        first = _start(running, _serve(registry, None, tmp_path))
        second = MetricsServer(registry, f"127.0.0.1:{first.port}")
        with pytest.raises(UsageError, match=f"127.0.0.1:{first.port}.*--metrics-address"):
            second.start()

    def test_stop_closes_the_port(self, registry: CollectorRegistry, tmp_path: Path) -> None:
        server = _serve(registry, None, tmp_path)
        server.start()
        port = server.port
        server.stop()
        with pytest.raises(ConnectionRefusedError):
            http.client.HTTPConnection("127.0.0.1", port, timeout=5).connect()

    @pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
    def test_promtool_finds_nothing_to_lint_in_a_scrape(
        self, registry: CollectorRegistry, running: list[MetricsServer], tmp_path: Path
    ) -> None:
        server = _start(running, _serve(registry, None, tmp_path))
        _, body = _get(server)
        lint = subprocess.run(
            ["promtool", "check", "metrics"],
            check=False,
            input=body,
            capture_output=True,
            text=True,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
        assert lint.stdout + lint.stderr == ""


class TestBasicAuth:
    @pytest.fixture
    def server(
        self, registry: CollectorRegistry, running: list[MetricsServer], tmp_path: Path
    ) -> MetricsServer:
        hashed = bcrypt.hashpw(PASSWORD, bcrypt.gensalt(rounds=4)).decode()
        return _start(running, _serve(registry, f"basic_auth_users:\n  prom: {hashed}\n", tmp_path))

    def test_the_right_credentials_get_the_metrics(self, server: MetricsServer) -> None:
        status, body = _get(server, auth=("prom", PASSWORD))
        assert status == 200
        assert "gcd_build_info" in body

    def test_the_right_credentials_work_again_from_the_cache(self, server: MetricsServer) -> None:
        assert _get(server, auth=("prom", PASSWORD))[0] == 200
        assert _get(server, auth=("prom", PASSWORD))[0] == 200

    @pytest.mark.parametrize(
        "auth",
        [None, ("prom", b"wrong"), ("nobody", PASSWORD), ("prom", PASSWORD + b"x"), ("", b"")],
        ids=["no credentials", "wrong password", "unknown user", "longer password", "empty"],
    )
    def test_anything_else_is_unauthorized(
        self, server: MetricsServer, auth: tuple[str, bytes] | None
    ) -> None:
        status, body = _get(server, auth=auth)
        assert status == 401
        assert "gcd_" not in body

    def test_a_wrong_password_after_a_right_one_is_still_refused(
        self, server: MetricsServer
    ) -> None:
        assert _get(server, auth=("prom", PASSWORD))[0] == 200
        assert _get(server, auth=("prom", b"wrong"))[0] == 401

    def test_a_password_longer_than_bcrypt_accepts_is_refused_not_crashed(
        self, server: MetricsServer
    ) -> None:
        assert _get(server, auth=("prom", b"x" * 100))[0] == 401


class TestTls:
    def test_a_scrape_over_tls_verifies_the_server(
        self, registry: CollectorRegistry, running: list[MetricsServer], tmp_path: Path, pki: Pki
    ) -> None:
        config = (
            f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        )
        server = _start(running, _serve(registry, config, tmp_path))
        status, body = _get(server, context=_client_context(pki))
        assert status == 200
        assert "gcd_build_info" in body
        assert server.url.startswith("https://")

    def test_plain_http_to_a_tls_port_gets_no_metrics(
        self, registry: CollectorRegistry, running: list[MetricsServer], tmp_path: Path, pki: Pki
    ) -> None:
        config = (
            f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        )
        server = _start(running, _serve(registry, config, tmp_path))
        with pytest.raises((http.client.HTTPException, OSError)):
            _get(server)
        assert _get(server, context=_client_context(pki))[0] == 200  # still serving

    def test_tls_and_basic_auth_together(
        self, registry: CollectorRegistry, running: list[MetricsServer], tmp_path: Path, pki: Pki
    ) -> None:
        hashed = bcrypt.hashpw(PASSWORD, bcrypt.gensalt(rounds=4)).decode()
        config = (
            f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
            f"basic_auth_users:\n  prom: '{hashed}'\n"
        )
        server = _start(running, _serve(registry, config, tmp_path))
        assert _get(server, context=_client_context(pki), auth=("prom", PASSWORD))[0] == 200
        assert _get(server, context=_client_context(pki), auth=("prom", b"no"))[0] == 401
        assert _get(server, context=_client_context(pki))[0] == 401

    def test_min_version_tls13_refuses_a_tls12_client(
        self, registry: CollectorRegistry, running: list[MetricsServer], tmp_path: Path, pki: Pki
    ) -> None:
        config = (
            f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
            "  min_version: TLS13\n"
        )
        server = _start(running, _serve(registry, config, tmp_path))
        old = _client_context(pki)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(ssl.SSLError):
            _get(server, context=old)
        assert _get(server, context=_client_context(pki))[0] == 200

    def test_relative_paths_are_relative_to_the_web_config(
        self, registry: CollectorRegistry, running: list[MetricsServer], tmp_path: Path, pki: Pki
    ) -> None:
        for path in (pki.server_cert, pki.server_key):
            shutil.copy(path, tmp_path / path.name)
        config = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        server = _start(running, _serve(registry, config, tmp_path))
        assert _get(server, context=_client_context(pki))[0] == 200

    def test_a_missing_certificate_is_a_web_config_error(self, tmp_path: Path, pki: Pki) -> None:
        path = tmp_path / "web.yaml"
        path.write_text(
            f"tls_server_config:\n  cert_file: nope.crt\n  key_file: {pki.server_key}\n"
        )
        with pytest.raises(WebConfigError, match=r"nope\.crt"):
            load_web_config(path)


class TestClientCertificates:
    @pytest.fixture
    def server(
        self, registry: CollectorRegistry, running: list[MetricsServer], tmp_path: Path, pki: Pki
    ) -> MetricsServer:
        config = (
            f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
            f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.ca_cert}\n"
        )
        return _start(running, _serve(registry, config, tmp_path))

    def test_a_client_certificate_from_the_ca_is_accepted(
        self, server: MetricsServer, pki: Pki
    ) -> None:
        context = _client_context(pki, pki.client_cert, pki.client_key)
        assert _get(server, context=context)[0] == 200

    @pytest.mark.parametrize("who", ["none", "stranger"])
    def test_no_or_a_foreign_client_certificate_is_refused(
        self, server: MetricsServer, pki: Pki, who: str
    ) -> None:
        if who == "none":
            context = _client_context(pki)
        else:
            context = _client_context(pki, pki.stranger_cert, pki.stranger_key)
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            _get(server, context=context)
