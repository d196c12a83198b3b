"""The engine address is checked before any connection (a malformed one is a usage error,
exit 2, never "unreachable"), and no password is ever shown."""

from __future__ import annotations

import pytest

from gcd.engine.client import Engine
from gcd.engine.hosts import DEFAULT_HOST, parse_host, redact, redact_text
from gcd.errors import ExitCode, UsageError


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("unix:///var/run/docker.sock", "unix:///var/run/docker.sock"),
        ("unix://run/docker.sock", "unix:///run/docker.sock"),
        ("tcp://127.0.0.1:2375", "tcp://127.0.0.1:2375"),
        ("http://engine.example:2375", "tcp://engine.example:2375"),
        ("tcp://[::1]:2375", "tcp://[::1]:2375"),
        ("  tcp://h:1  ", "tcp://h:1"),
    ],
)
def test_the_accepted_forms(given: str, used: str) -> None:
    assert parse_host(given) == used


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("tcp://", "no host name"),
        ("tcp://127.0.0.1", "no port"),
        ("tcp://127.0.0.1:99999", "not a valid address"),
        ("tcp://127.0.0.1:x", "not a valid address"),
        ("tcp://h:1/path", "no path"),
        ("foo://bar", "unknown scheme"),
        ("/x.sock", "no scheme"),
        ("", "empty"),
        ("   ", "empty"),
        ("unix://", "no socket path"),
        ("ssh://host", "ssh needs paramiko"),
        ("https://h:2376", "TLS"),
        ("tcp://h:1?x=1", "no query"),
        ("tcp://user@h:1", "no user or password"),
    ],
)
def test_a_malformed_address_is_a_usage_error_naming_the_accepted_forms(
    given: str, why: str
) -> None:
    with pytest.raises(UsageError, match=why) as caught:
        parse_host(given)
    assert caught.value.exit_code is ExitCode.BAD_POLICY_OR_USAGE
    assert "unix:///path/to/docker.sock, tcp://host:port" in str(caught.value)


def test_the_environment_is_used_when_no_host_is_given_and_empty_means_unset() -> None:
    assert parse_host(None, "tcp://h:2") == "tcp://h:2"
    assert parse_host(None, "") == DEFAULT_HOST
    assert parse_host(None, None) == DEFAULT_HOST
    assert parse_host("tcp://a:1", "tcp://b:2") == "tcp://a:1"
    with pytest.raises(UsageError):
        parse_host(None, "tcp://")


@pytest.mark.parametrize(
    "given", ["tcp://user:s3cr3t@127.0.0.1:2375", "ssh://user:s3cr3t@host", "http://u:s3cr3t@h:1"]
)
def test_a_password_is_refused_and_never_quoted(given: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_host(given)
    assert "s3cr3t" not in str(caught.value)
    assert "user:***@" in str(caught.value) or "u:***@" in str(caught.value)


def test_engine_construction_checks_the_address_without_connecting() -> None:
    with pytest.raises(UsageError):
        Engine("tcp://")
    assert Engine("tcp://127.0.0.1:1").host == "tcp://127.0.0.1:1"


def test_redaction_of_any_text_quoting_an_address() -> None:
    text = "HTTPConnectionPool(host='h'): url tcp://me:pw@h:1/v1.41/info and http://a:b@c/"
    cleaned = redact_text(text, secrets=("pw",))
    assert "pw" not in cleaned
    assert ":b@" not in cleaned
    assert "tcp://me:***@h:1" in cleaned
    assert "http://a:***@c/" in cleaned
    assert redact("tcp://h:1") == "tcp://h:1"
    assert len(redact("unix://" + "x" * 1000)) < 210
