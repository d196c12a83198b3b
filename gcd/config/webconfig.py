"""The metrics endpoint's web-config file, in the format Prometheus exporters share.

The same file that node_exporter and friends take with `--web.config.file`
(prometheus/exporter-toolkit)::

    tls_server_config:
      cert_file: server.crt          # relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # optional, with client_ca_file
      client_ca_file: clients.pem
      min_version: TLS12             # default TLS12; TLS10 TLS11 TLS12 TLS13
      max_version: TLS13             # optional
    basic_auth_users:
      prometheus: $2b$12$...         # bcrypt hash: htpasswd -nBC 12 "" | tr -d ':\\n'

The toolkit rejects keys it does not know; so does gcd, and it also rejects the toolkit's
options it does not implement (cipher suites, curves, allowed SANs, HTTP headers) rather than
silently serve with weaker settings than the file asks for. All problems are reported at once.

The file holds secrets (password hashes; by mistake, passwords), so no message quotes a value
from it: a wrong value is described by its type ("got a string"), a YAML error by its line and
column and PyYAML's reason without the snippet of the line it would quote, and the file is read
as the policy is (a regular file, at most `MAX_WEB_CONFIG_BYTES`, nesting and nodes bounded).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from gcd.config.compose import Limit, compose_node
from gcd.config.files import FileRefused, read_regular_file
from gcd.config.scalars import excerpt
from gcd.errors import WebConfigError

__all__ = ["ClientAuth", "TlsServerConfig", "WebConfig", "load_web_config", "parse_web_config"]


class ClientAuth(StrEnum):
    """The client certificate policies gcd can enforce (Go's names, as the toolkit uses)."""

    NONE = "NoClientCert"
    VERIFY_IF_GIVEN = "VerifyClientCertIfGiven"
    REQUIRE_AND_VERIFY = "RequireAndVerifyClientCert"


_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
_TOP_KEYS = ("tls_server_config", "basic_auth_users")
_TLS_KEYS = (
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
)
_UNSUPPORTED = {
    "http_server_config": "HTTP/2 and custom headers are not implemented by gcd's server",
    "tls_server_config.cipher_suites": "gcd uses OpenSSL's default cipher suites",
    "tls_server_config.curve_preferences": "gcd uses OpenSSL's default curves",
    "tls_server_config.prefer_server_cipher_suites": "gcd uses OpenSSL's default order",
    "tls_server_config.client_allowed_sans": "gcd cannot restrict client certificate SANs",
    "tls_server_config.cert": "give the certificate as a file with cert_file",
    "tls_server_config.key": "give the key as a file with key_file",
}
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")
MAX_WEB_CONFIG_BYTES = 64 * 1024
"""A web-config is a few lines; certificates and keys are separate files."""


def _kind(value: Any) -> str:
    """What a value is, never what it says: the web-config holds secrets."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "no value" if value is None else "a value of another type"


_SETTING_NAME = re.compile(r"[A-Za-z0-9]{1,32}")


def _setting(value: Any) -> str:
    """A setting's value (`'TLS9'`) when it looks like a setting name, else only its type."""
    if isinstance(value, str) and _SETTING_NAME.fullmatch(value):
        return repr(value)
    return _kind(value)


@dataclass(frozen=True, slots=True)
class TlsServerConfig:
    cert_file: Path
    key_file: Path
    client_auth: ClientAuth = ClientAuth.NONE
    client_ca_file: Path | None = None
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion | None = None

    def ssl_context(self, source: str = "web-config") -> ssl.SSLContext:
        """A server context with the certificate, key and client policy loaded.

        Raises WebConfigError naming the file that cannot be used."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = self.min_version
        if self.max_version is not None:
            context.maximum_version = self.max_version
        try:
            context.load_cert_chain(certfile=self.cert_file, keyfile=self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(
                f"{source}: tls_server_config: cannot load the certificate {self.cert_file} "
                f"with the key {self.key_file}: {exc}. Check that both files exist, are "
                "readable by gcd, are PEM, and that the key belongs to the certificate"
            ) from exc
        if self.client_auth is not ClientAuth.NONE:
            assert self.client_ca_file is not None
            try:
                context.load_verify_locations(cafile=self.client_ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise WebConfigError(
                    f"{source}: tls_server_config.client_ca_file: cannot load "
                    f"{self.client_ca_file}: {exc}. Give a readable PEM file of CA certificates"
                ) from exc
            context.verify_mode = (
                ssl.CERT_REQUIRED
                if self.client_auth is ClientAuth.REQUIRE_AND_VERIFY
                else ssl.CERT_OPTIONAL
            )
        return context


@dataclass(frozen=True, slots=True)
class WebConfig:
    """A validated web-config. The empty config serves plain HTTP without authentication."""

    source: str = "<none>"
    tls: TlsServerConfig | None = None
    basic_auth_users: Mapping[str, bytes] = field(default_factory=dict)
    """User name → bcrypt hash."""


def load_web_config(path: Path) -> WebConfig:
    """Read and validate a web-config file, including loading its TLS files once."""
    try:
        text = read_regular_file(path, MAX_WEB_CONFIG_BYTES, "web-config").decode("utf-8")
    except FileRefused as exc:
        raise WebConfigError(
            f"{path}: {exc}. Check the path given for the metrics web-config"
        ) from None
    except UnicodeDecodeError:
        raise WebConfigError(f"{path}: the web-config file is not UTF-8 text") from None
    config = parse_web_config(text, str(path), path.parent)
    if config.tls is not None:
        config.tls.ssl_context(config.source)
    return config


def parse_web_config(text: str, source: str, base: Path) -> WebConfig:
    """Validate web-config YAML; relative file names are taken relative to `base`."""
    try:
        compose_node(text)  # bounded: nesting, nodes; then safe_load cannot run away
        document: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{source}: {_yaml_reason(exc)}") from None
    except Limit as exc:
        where = f"{exc.mark.line + 1}:{exc.mark.column + 1}"
        raise WebConfigError(f"{source}:{where}: {exc.message}") from None
    if document is None:
        return WebConfig(source)
    if not isinstance(document, dict):
        raise WebConfigError(
            f"{source}: expected a mapping with tls_server_config and/or basic_auth_users, "
            f"got {_kind(document)}"
        )
    problems: list[str] = []
    _check_keys(document, _TOP_KEYS, "", problems)
    tls = None
    if document.get("tls_server_config") is not None:
        tls = _parse_tls(document["tls_server_config"], base, problems)
    users = _parse_users(document.get("basic_auth_users"), problems)
    if problems:
        raise WebConfigError("\n".join(f"{source}: {problem}" for problem in problems))
    return WebConfig(source, tls, users)


def _yaml_reason(exc: yaml.YAMLError) -> str:
    """`not valid YAML at 3:7: mapping values are not allowed here`, without the line's text
    that `str(exc)` would quote (it may be a password)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at {mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        reason = ": ".join(part for part in (exc.context, exc.problem) if part)
        return f"not valid YAML{where}: {excerpt(reason or 'unreadable', 100)}"
    if isinstance(exc, yaml.reader.ReaderError):
        return "not valid YAML: a character YAML does not allow (a control character?)"
    return "not valid YAML"


def _check_keys(
    section: Mapping[Any, Any], allowed: tuple[str, ...], prefix: str, problems: list[str]
) -> None:
    for key in section:
        name = f"{prefix}{excerpt(str(key), 60)}"
        if key in allowed:
            continue
        if name in _UNSUPPORTED:
            problems.append(f"{name}: not supported by gcd ({_UNSUPPORTED[name]}); remove it")
            continue
        hint = get_close_matches(str(key)[:100], allowed, n=1)
        suggestion = f"; did you mean {prefix}{hint[0]}?" if hint else ""
        problems.append(f"{name}: unknown key{suggestion} (allowed: {', '.join(allowed)})")


def _path(
    section: Mapping[Any, Any], key: str, base: Path, problems: list[str], *, required: bool
) -> Path | None:
    value = section.get(key)
    if value is None or value == "":
        if required:
            problems.append(f"tls_server_config.{key}: missing; give the path of a PEM file")
        return None
    if not isinstance(value, str):
        problems.append(f"tls_server_config.{key}: expected a file path, got {_kind(value)}")
        return None
    return base / Path(value).expanduser()


def _version(section: Mapping[Any, Any], key: str, problems: list[str]) -> ssl.TLSVersion | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or value not in _TLS_VERSIONS:
        problems.append(
            f"tls_server_config.{key}: expected one of {', '.join(_TLS_VERSIONS)}, got "
            f"{_setting(value)}"
        )
        return None
    return _TLS_VERSIONS[value]


def _client_auth(section: Mapping[Any, Any], problems: list[str]) -> ClientAuth | None:
    value = section.get("client_auth_type")
    if value is None or value == "":
        return ClientAuth.NONE
    if not isinstance(value, str):
        problems.append(
            "tls_server_config.client_auth_type: expected one of "
            f"{', '.join(c.value for c in ClientAuth)}, got {_kind(value)}"
        )
        return None
    if value in _UNVERIFIED_CLIENT_AUTH:
        problems.append(
            f"tls_server_config.client_auth_type: {value} (a client certificate without "
            "verification) is not supported by gcd; use RequireAndVerifyClientCert or "
            "VerifyClientCertIfGiven with client_ca_file"
        )
        return None
    try:
        return ClientAuth(value)
    except ValueError:
        problems.append(
            "tls_server_config.client_auth_type: expected one of "
            f"{', '.join(c.value for c in ClientAuth)}, got {_setting(value)}"
        )
        return None


def _parse_tls(section: Any, base: Path, problems: list[str]) -> TlsServerConfig | None:
    if not isinstance(section, dict):
        problems.append(f"tls_server_config: expected a mapping, got {_kind(section)}")
        return None
    before = len(problems)
    _check_keys(section, _TLS_KEYS, "tls_server_config.", problems)
    cert = _path(section, "cert_file", base, problems, required=True)
    key = _path(section, "key_file", base, problems, required=True)
    ca = _path(section, "client_ca_file", base, problems, required=False)
    client_auth = _client_auth(section, problems)
    min_version = _version(section, "min_version", problems) or ssl.TLSVersion.TLSv1_2
    max_version = _version(section, "max_version", problems)
    if client_auth is not None and client_auth is not ClientAuth.NONE and ca is None:
        problems.append(
            f"tls_server_config.client_auth_type: {client_auth} needs client_ca_file, the CA "
            "certificates that client certificates are verified against"
        )
    if client_auth is ClientAuth.NONE and ca is not None:
        problems.append(
            "tls_server_config.client_ca_file: given without client_auth_type; set "
            "client_auth_type to RequireAndVerifyClientCert (or VerifyClientCertIfGiven)"
        )
    if max_version is not None and max_version < min_version:
        problems.append("tls_server_config.max_version: lower than min_version")
    if len(problems) > before or cert is None or key is None or client_auth is None:
        return None
    return TlsServerConfig(cert, key, client_auth, ca, min_version, max_version)


def _parse_users(section: Any, problems: list[str]) -> dict[str, bytes]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        problems.append(
            "basic_auth_users: expected a mapping of user: bcrypt hash, got "
            f"{_kind(section)} (its value is not shown: it may hold a password)"
        )
        return {}
    users: dict[str, bytes] = {}
    for number, (user, hashed) in enumerate(section.items(), 1):
        if not isinstance(user, str) or not user or ":" in user:
            # `alice:secret: …` is a password typed into the name: the name is not shown.
            problems.append(
                f"basic_auth_users: the user name of entry {number} (redacted) is invalid: a "
                "user name is a non-empty string without ':'"
            )
            continue
        if not isinstance(hashed, str) or not _BCRYPT_HASH.match(hashed):
            problems.append(
                f"basic_auth_users.{excerpt(user, 60)}: expected a bcrypt hash ($2b$…, 60 "
                "characters); the value (redacted) is not one: is it a password? Make one "
                "with `htpasswd -nBC 12 \"\" | tr -d ':\\n'` or "
                '`python3 -c \'import bcrypt; print(bcrypt.hashpw(b"PASSWORD", '
                "bcrypt.gensalt()).decode())'`"
            )
            continue
        users[user] = hashed.encode("ascii")
    return users
