"""No secret of a web-config file reaches an error message: a password typed where a bcrypt
hash belongs, as a string, a list, a user name, a line PyYAML would quote. Before: the
`basic_auth_users` string or list was echoed with `!r`, and a YAML error printed the line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gcd.config.webconfig import load_web_config, parse_web_config
from gcd.errors import WebConfigError
from tests.figures import Figure, record

SECRET = "Tr0ub4dor&3-horse-battery"
HASH_LIKE = "$2b$12$" + "Q" * 20 + SECRET  # looks like a hash, is not one, holds the secret

LEAKS = {
    "users as a string": f"basic_auth_users: 'alice:{SECRET}'\n",
    "users as a list": f"basic_auth_users: [alice, '{SECRET}']\n",
    "a plain password": f"basic_auth_users:\n  alice: '{SECRET}'\n",
    "an invalid hash": f"basic_auth_users:\n  alice: '{HASH_LIKE}'\n",
    "the password in the user name": (
        f"basic_auth_users:\n  'alice:{SECRET}': '$2b$04${'a' * 53}'\n"
    ),
    "a bad YAML line": f"basic_auth_users:\n  alice: {SECRET}: more\n",
    "a tab before the password": f"basic_auth_users:\n\talice: {SECRET}\n",
    "an unclosed quote": f'basic_auth_users:\n  alice: "{SECRET}\n',
    "tls as a string": f"tls_server_config: '{SECRET}'\n",
    "a secret in min_version": (
        f"tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: '{SECRET}'\n"
    ),
    "a secret in client_auth_type": (
        f"tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: '{SECRET}'\n"
    ),
    "a secret as a file path list": f"tls_server_config:\n  cert_file: ['{SECRET}']\n",
    "the whole file a secret": f"'{SECRET}'\n",
    "a secret at the top level": f"password: '{SECRET}'\n",
}


# Each start of the command costs about a second: the classes that reach output differently
# (a value, a list, PyYAML's quoted line, a hash check); the exception test covers all.
THROUGH_THE_COMMAND = ("users as a list", "a bad YAML line", "an invalid hash", "tls as a string")


def _fragments(secret: str) -> list[str]:
    """The secret and its distinctive parts: a message must not quote half of it either."""
    return [secret, *secret.split("-")[1:], secret[:12]]


@pytest.mark.parametrize("text", LEAKS.values(), ids=LEAKS.keys())
def test_the_exception_names_the_problem_but_not_the_secret(text: str) -> None:
    with pytest.raises(WebConfigError) as error:
        parse_web_config(text, "web.yaml", Path("/etc/gcd"))
    message = str(error.value)
    assert message.startswith("web.yaml")
    for fragment in _fragments(SECRET):
        assert fragment not in message, message
    assert SECRET not in repr(error.value.args)


def test_redaction_is_said(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match=r"basic_auth_users\.alice: .*\(redacted\)"):
        parse_web_config(LEAKS["a plain password"], "web.yaml", tmp_path)
    with pytest.raises(WebConfigError, match=r"entry 1 \(redacted\)"):
        parse_web_config(LEAKS["the password in the user name"], "web.yaml", tmp_path)


def test_a_bad_yaml_line_is_placed_by_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match=r"web\.yaml: not valid YAML at 2:"):
        parse_web_config(LEAKS["a bad YAML line"], "web.yaml", tmp_path)


def test_a_fifo_or_a_huge_web_config_is_refused_without_hanging(tmp_path: Path) -> None:
    import os  # noqa: PLC0415

    fifo = tmp_path / "web.yaml"
    os.mkfifo(fifo)
    with pytest.raises(WebConfigError, match="a FIFO"):
        load_web_config(fifo)
    big = tmp_path / "big.yaml"
    big.write_text("#" * 70_000)
    with pytest.raises(WebConfigError, match="at most 65536 bytes"):
        load_web_config(big)


def test_a_nested_web_config_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="nest"):
        parse_web_config("a: " + "[" * 5000 + "]" * 5000, "web.yaml", tmp_path)


def _daemon(tmp_path: Path, name: str) -> subprocess.Popen[str]:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\n")
    web = tmp_path / f"web-{len(name)}-{abs(hash(name))}.yaml"
    web.write_text(LEAKS[name])
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gcd",
            "--allow-insecure-permissions",
            "--log-format",
            "json",
            "daemon",
            "--policy",
            str(policy),
            "--state-dir",
            str(tmp_path / "state"),
            "--host",
            f"unix://{tmp_path}/no.sock",
            "--web-config",
            str(web),
            "--metrics-address",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_gcd_daemon_never_prints_the_secret(tmp_path: Path) -> None:
    """The real command, as an operator runs it: stderr and stdout searched (the starts run
    side by side: each costs a second or more)."""
    started = {name: _daemon(tmp_path, name) for name in THROUGH_THE_COMMAND}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=60)
        output = stdout + stderr
        assert process.returncode == 2, (name, output)
        assert "web-" in output, (name, output)
        assert "Traceback" not in output, (name, output)
        for fragment in _fragments(SECRET):
            assert fragment not in output, (name, output)
    record(
        Figure(area="secrets", scenario="web-config with passwords, gcd daemon", inputs=len(LEAKS))
    )
