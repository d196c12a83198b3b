"""Compose's variable interpolation, its `.env` file and its project names, as gcd reads them.

Text → *segments*: the known text between the parts gcd cannot know. A variable takes its
value from the `.env` file next to the Compose file, never from gcd's own environment (the
daemon's environment is not the deploying shell's: `gcd plan` and the daemon would disagree).
A variable that `.env` does not set is unset: `${VAR:-default}` and `${VAR-default}` give the
default; `${VAR}`, `$VAR` and `${VAR:?err}` leave a hole (Compose would substitute a blank or
refuse, so whoever deploys sets it elsewhere, and gcd cannot know to what), and a hole matches
any text. `$$` is a `$`. `${VAR:+alt}` and `${VAR+alt}` are read too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

Env = Mapping[str, str | None]
"""Variable → value; None: set, to a value gcd cannot know (it depends on an unset one)."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_NESTING = 10


class InterpolationError(ValueError):
    """The text is not valid interpolation syntax (Compose refuses it too)."""


@dataclass(frozen=True, slots=True)
class Interpolated:
    parts: tuple[str, ...]
    """Known text around the holes: one part = exact, ("a", "") = `a` then anything."""
    unknown: tuple[str, ...] = ()
    """The variables that left the holes."""

    @property
    def exact(self) -> str | None:
        return self.parts[0] if len(self.parts) == 1 else None


class _Builder:
    def __init__(self) -> None:
        self.parts: list[str] = [""]
        self.unknown: list[str] = []

    def text(self, text: str) -> None:
        self.parts[-1] += text

    def hole(self, variable: str) -> None:
        if variable not in self.unknown:
            self.unknown.append(variable)
        if len(self.parts) == 1 or self.parts[-1] != "":
            self.parts.append("")

    def add(self, other: Interpolated) -> None:
        self.text(other.parts[0])
        for part in other.parts[1:]:
            self.parts.append(part)
        for variable in other.unknown:
            if variable not in self.unknown:
                self.unknown.append(variable)

    def done(self) -> Interpolated:
        return Interpolated(tuple(self.parts), tuple(self.unknown))


def interpolate(text: str, env: Env, depth: int = 0) -> Interpolated:
    """Raises `InterpolationError` for `${`, `${}`, `${VAR?` left open or a bad name."""
    if depth > MAX_NESTING:
        raise InterpolationError(f"defaults nested more than {MAX_NESTING} deep")
    out = _Builder()
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.text(char)
            i += 1
            continue
        following = text[i + 1 : i + 2]
        if following == "$":
            out.text("$")
            i += 2
        elif following == "{":
            end = _closing(text, i + 2)
            _braced(text[i + 2 : end], env, depth, out)
            i = end + 1
        else:
            match = _NAME.match(text, i + 1)
            if match is None:
                out.text("$")  # Compose leaves a lone `$` as it is
                i += 1
                continue
            _value(match.group(), env, out)
            i = match.end()
    return out.done()


def _closing(text: str, start: int) -> int:
    """The `}` that closes the `${` before `start`, skipping nested `${...}`."""
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise InterpolationError("a ${ is not closed")


def _value(name: str, env: Env, out: _Builder) -> None:
    if name in env and env[name] is not None:
        out.text(str(env[name]))
    else:
        out.hole(name)


def _braced(body: str, env: Env, depth: int, out: _Builder) -> None:
    match = _NAME.match(body)
    if match is None:
        raise InterpolationError(f"${{{body[:40]}}} does not start with a variable name")
    name, rest = match.group(), body[match.end() :]
    if not rest:
        _value(name, env, out)
        return
    operator = rest[:2] if rest[:2] in (":-", ":?", ":+") else rest[:1]
    if operator not in (":-", ":?", ":+", "-", "?", "+"):
        raise InterpolationError(f"${{{body[:40]}}}: unknown operator after {name}")
    argument = rest[len(operator) :]
    is_set = name in env
    value = env.get(name)
    if value is None and is_set:  # set, to something gcd cannot know
        out.hole(name)
        return
    usable = is_set and (value != "" or ":" not in operator)
    if operator.endswith("-"):
        if usable:
            out.text(str(value))
        else:
            out.add(interpolate(argument, env, depth + 1))
    elif operator.endswith("?"):
        if usable:
            out.text(str(value))
        else:
            out.hole(name)  # Compose refuses to run: the deployer sets it elsewhere
    elif usable:  # `+`: the alternative when set
        out.add(interpolate(argument, env, depth + 1))


class DotenvError(ValueError):
    """A line of `.env` that Compose would refuse."""


def read_dotenv(text: str) -> dict[str, str | None]:
    """`KEY=VALUE` lines, `export ` allowed, `#` comments; single quotes literal, double
    quotes and bare values interpolated from the lines above. A value quoted over several
    lines is refused (fail closed: the file is reported and keeps every named image)."""
    env: dict[str, str | None] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or _NAME.fullmatch(key) is None:
            raise DotenvError(f".env line {number} is not KEY=VALUE")
        value = value.strip()
        if value[:1] == "'":
            if len(value) < 2 or not value.endswith("'"):
                raise DotenvError(f".env line {number}: the quote is not closed on its line")
            env[key] = value[1:-1]
            continue
        if value[:1] == '"':
            closing = value.find('"', 1)
            while closing > 0 and value[closing - 1] == "\\":
                closing = value.find('"', closing + 1)
            if closing < 0:
                raise DotenvError(f".env line {number}: the quote is not closed on its line")
            value = value[1:closing].replace('\\"', '"').replace("\\n", "\n")
        else:
            value = re.split(r"\s#", value, maxsplit=1)[0].rstrip()
        try:
            env[key] = interpolate(value, env).exact
        except InterpolationError as exc:
            raise DotenvError(f".env line {number}: {exc}") from None
    return env


def normalise_project_name(name: str) -> str:
    """Compose v2 (compose-go `NormalizeProjectName`): lower case, keep only `[a-z0-9_-]`,
    then drop leading `_` and `-`. Compose v1 kept the same characters."""
    kept = "".join(re.findall(r"[a-z0-9_-]", name.lower()))
    return kept.lstrip("_-")
