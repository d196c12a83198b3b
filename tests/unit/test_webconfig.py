"""The web-config file: the exporter-toolkit format, validated with every problem at once."""

from __future__ import annotations

import ssl
from pathlib import Path

import bcrypt
import pytest

from gcd.config.webconfig import ClientAuth, WebConfig, load_web_config, parse_web_config
from gcd.errors import ExitCode, UsageError, WebConfigError
from gcd.metrics.server import BasicAuth, parse_address

HASH = "$2b$04$" + "a" * 53
BASE = Path("/etc/gcd")


def parse(text: str) -> WebConfig:
    return parse_web_config(text, "web.yaml", BASE)


class TestValidConfigs:
    def test_an_empty_file_serves_plain_http_without_auth(self) -> None:
        config = parse("")
        assert config.tls is None
        assert config.basic_auth_users == {}

    def test_tls_paths_are_relative_to_the_file_and_tls12_is_the_minimum(self) -> None:
        config = parse("tls_server_config:\n  cert_file: a.crt\n  key_file: /abs/a.key\n")
        assert config.tls is not None
        assert config.tls.cert_file == BASE / "a.crt"
        assert config.tls.key_file == Path("/abs/a.key")
        assert config.tls.min_version is ssl.TLSVersion.TLSv1_2
        assert config.tls.client_auth is ClientAuth.NONE

    def test_client_certificates_with_a_ca(self) -> None:
        config = parse(
            "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n"
            "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n"
            "  min_version: TLS13\n  max_version: TLS13\n"
        )
        assert config.tls is not None
        assert config.tls.client_auth is ClientAuth.VERIFY_IF_GIVEN
        assert config.tls.client_ca_file == BASE / "ca.pem"
        assert config.tls.min_version is ssl.TLSVersion.TLSv1_3

    def test_basic_auth_users_keep_their_hashes(self) -> None:
        config = parse(f"basic_auth_users:\n  prom: {HASH}\n  grafana: '{HASH}'\n")
        assert config.basic_auth_users == {"prom": HASH.encode(), "grafana": HASH.encode()}


class TestInvalidConfigs:
    def test_the_error_exits_2(self) -> None:
        assert WebConfigError.exit_code is ExitCode.BAD_POLICY_OR_USAGE

    def test_every_problem_is_reported_at_once_with_the_file_name(self) -> None:
        with pytest.raises(WebConfigError) as error:
            parse(
                "tls_server_config:\n  cert_fil: a.crt\n  min_version: TLS9\n"
                "basic_auth_users:\n  prom: hunter2\n"
            )
        lines = str(error.value).splitlines()
        assert all(line.startswith("web.yaml: ") for line in lines)
        text = str(error.value)
        assert "cert_fil: unknown key; did you mean tls_server_config.cert_file?" in text
        assert "tls_server_config.cert_file: missing" in text
        assert "tls_server_config.key_file: missing" in text
        assert "min_version: expected one of TLS10, TLS11, TLS12, TLS13, got 'TLS9'" in text
        assert "basic_auth_users.prom: expected a bcrypt hash" in text
        assert "hunter2" not in text, "a password written by mistake must not be echoed"

    def test_unknown_top_level_key_suggests_the_right_one(self) -> None:
        with pytest.raises(WebConfigError, match="did you mean basic_auth_users"):
            parse(f"basic_auth_user:\n  prom: {HASH}\n")

    @pytest.mark.parametrize(
        "key",
        ["cipher_suites: []", "client_allowed_sans: [a]", "curve_preferences: []"],
    )
    def test_toolkit_options_gcd_does_not_implement_are_refused_not_ignored(self, key: str) -> None:
        with pytest.raises(WebConfigError, match="not supported by gcd"):
            parse(f"tls_server_config:\n  cert_file: a\n  key_file: b\n  {key}\n")

    def test_http_server_config_is_refused(self) -> None:
        with pytest.raises(WebConfigError, match="http_server_config: not supported"):
            parse("http_server_config:\n  http2: false\n")

    @pytest.mark.parametrize("kind", ["RequireAnyClientCert", "RequestClientCert"])
    def test_unverified_client_certificates_are_refused(self, kind: str) -> None:
        with pytest.raises(WebConfigError, match=f"{kind}.*RequireAndVerifyClientCert"):
            parse(
                "tls_server_config:\n  cert_file: a\n  key_file: b\n"
                f"  client_auth_type: {kind}\n  client_ca_file: ca\n"
            )

    def test_verifying_clients_needs_a_ca(self) -> None:
        with pytest.raises(WebConfigError, match="needs client_ca_file"):
            parse(
                "tls_server_config:\n  cert_file: a\n  key_file: b\n"
                "  client_auth_type: RequireAndVerifyClientCert\n"
            )

    def test_a_ca_without_a_client_policy_is_a_mistake(self) -> None:
        with pytest.raises(WebConfigError, match="client_ca_file: given without client_auth_type"):
            parse("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: ca\n")

    def test_max_below_min_version(self) -> None:
        with pytest.raises(WebConfigError, match="max_version: lower than min_version"):
            parse("tls_server_config:\n  cert_file: a\n  key_file: b\n  max_version: TLS11\n")

    @pytest.mark.parametrize("text", ["- a\n", "tls_server_config: [\n", "basic_auth_users: [a]\n"])
    def test_malformed_documents(self, text: str) -> None:
        with pytest.raises(WebConfigError, match=r"^web\.yaml: "):
            parse(text)

    def test_a_missing_file_says_which(self, tmp_path: Path) -> None:
        with pytest.raises(WebConfigError, match=r"absent\.yaml: cannot read"):
            load_web_config(tmp_path / "absent.yaml")


@pytest.fixture(scope="module")
def auth() -> BasicAuth:
    return BasicAuth({"prom": bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4))})


class TestBasicAuthHeader:
    @pytest.mark.parametrize(
        "header",
        [None, "", "Bearer abc", "Basic !!!", "Basic cHJvbQ==", "Basic cHJvbTp4"],
        ids=["none", "empty", "bearer", "not base64", "no colon", "wrong password"],
    )
    def test_refuses(self, auth: BasicAuth, header: str | None) -> None:
        assert auth.check(header) is False

    def test_accepts_the_right_password_in_any_scheme_case(self, auth: BasicAuth) -> None:
        assert auth.check("Basic cHJvbTpwdw==")
        assert auth.check("basic cHJvbTpwdw==")

    def test_no_users_means_no_authentication(self) -> None:
        assert BasicAuth({}).check(None)


class TestAddress:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("127.0.0.1:9795", ("127.0.0.1", 9795)),
            ("[::1]:9795", ("::1", 9795)),
            (":9795", ("", 9795)),
            ("localhost:0", ("localhost", 0)),
        ],
    )
    def test_parses(self, text: str, expected: tuple[str, int]) -> None:
        assert parse_address(text) == expected

    @pytest.mark.parametrize("text", ["9795", "host:", "host:http", "::1:9795", "h:70000"])
    def test_refuses_with_an_example(self, text: str) -> None:
        with pytest.raises(UsageError, match=r"expected HOST:PORT|brackets"):
            parse_address(text)
