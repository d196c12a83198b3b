"""The engine's address: checked before any connection, and never shown with a secret in it.

A malformed address is a usage error (exit 2), not an unreachable engine (exit 3): retrying it
cannot help, so the daemon must not loop on it. The accepted forms are what gcd can actually
speak through the docker SDK without extra packages:

- `unix:///path/to/docker.sock` (also `unix://relative/path`, which the SDK reads as `/…`)
- `tcp://host:port` and its alias `http://host:port` (plain HTTP; the port is required)

`ssh://` needs paramiko, which gcd does not ship, and `https://`/TLS needs client
certificates gcd has no option for: both are refused with a hint (forward the socket with
`ssh -L`, or run gcd on the engine's host).

An address with a user name and password (`tcp://user:secret@host:2375`) is refused too —
the Engine API has no such login, and the SDK would reject it later with the whole URL in the
message. Every address gcd prints goes through `redact`, and every error text that may quote
one (urllib3 puts the URL in its messages) through `redact_text`.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from gcd.errors import UsageError

__all__ = ["ACCEPTED_FORMS", "DEFAULT_HOST", "parse_host", "redact", "redact_text"]

DEFAULT_HOST = "unix:///var/run/docker.sock"
ACCEPTED_FORMS = "unix:///path/to/docker.sock, tcp://host:port or http://host:port"

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s:]*):[^/@\s]*@")
"""`scheme://user:password@` anywhere in a text: the password is replaced."""
_MAX_SHOWN = 200


def redact(address: str) -> str:
    """`address` as it may be shown: a password becomes `***`, and an absurdly long address
    is cut (it is quoted in errors)."""
    shown = redact_text(address)
    return shown if len(shown) <= _MAX_SHOWN else shown[:_MAX_SHOWN] + "…"


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with every `scheme://user:password@` password replaced by `***`, and each of
    `secrets` (a password gcd has parsed) wherever else it appears (percent-decoded forms
    too: urllib3 sometimes quotes the host part alone)."""
    cleaned = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    for secret in secrets:
        if secret:
            cleaned = cleaned.replace(secret, "***")
    return cleaned


def _refuse(address: str, why: str) -> UsageError:
    return UsageError(
        f"--host/DOCKER_HOST {redact(address)!r}: {why}. Accepted forms: {ACCEPTED_FORMS}"
    )


def _split(address: str) -> SplitResult:
    try:
        parts = urlsplit(address)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise _refuse(address, f"not a valid address ({redact_text(str(exc))})") from None
    return parts


def parse_host(address: str | None, environment: str | None = None) -> str:
    """The engine address to use: `address` (`--host`) if given, else `environment`
    (`DOCKER_HOST`; empty means unset, as for the Docker CLI), else the local socket.
    Raises `UsageError` for anything gcd cannot connect to as written."""
    if address is None:
        address = environment or DEFAULT_HOST
    address = address.strip()
    if not address:
        raise _refuse(address, "empty")
    if "://" not in address:
        raise _refuse(address, "no scheme (a socket path is written unix:///path)")
    parts = _split(address)
    scheme = parts.scheme.lower()
    if parts.password is not None or "@" in parts.netloc:
        raise _refuse(
            address, "an engine address carries no user or password (the Engine API has none)"
        )
    if parts.query or parts.fragment:
        raise _refuse(address, "an engine address has no query or fragment")
    if scheme == "unix":
        path = parts.path if not parts.netloc else f"/{parts.netloc}{parts.path}"
        if path in ("", "/"):
            raise _refuse(address, "no socket path")
        return f"unix://{path}"
    if scheme in ("tcp", "http"):
        if not parts.hostname:
            raise _refuse(address, "no host name")
        if parts.port is None:
            raise _refuse(address, "no port (the Docker CLI's 2375 is not assumed)")
        if parts.path not in ("", "/"):
            raise _refuse(address, "a tcp address has no path")
        return f"tcp://{parts.netloc}"
    if scheme == "ssh":
        raise _refuse(
            address,
            "ssh needs paramiko, which gcd does not ship: forward the engine's socket "
            "(ssh -L /tmp/docker.sock:/var/run/docker.sock host) and use unix:///tmp/docker.sock",
        )
    if scheme == "https":
        raise _refuse(address, "TLS to the engine is not supported; run gcd on the engine's host")
    raise _refuse(address, f"unknown scheme {scheme[:20]!r}")
