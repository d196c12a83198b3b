"""The Compose files of `images.keep[i].compose`: globs → what their services name.

Read in every cycle (a stack deployed since the last one counts), with the bounds the policy
file has (`gcd.config.files`, `gcd.config.compose`): a Compose file is someone else's input.

gcd reads this subset of the Compose specification, no Compose library (Debian bookworm's and
PyPI's `docker-compose` is v1, unmaintained since 2021; v2 is a Go program; the younger Python
packages validate whole files against a schema, so a field newer than them would fail a file,
and they apply no bounds): `name:`, `services.<s>.image`, `services.<s>.build` (no `image:` →
the name Compose gives the build: `<project>-<service>:latest`, v2, and
`<project>_<service>:latest`, v1, both kept, for each project name gcd can see:
`COMPOSE_PROJECT_NAME` of `.env`, `name:`, and the directory's name, normalised), `<<` merge
keys of a service, `extends` within the same file; interpolation as `gcd.config.interpolate`
says. Profiles are ignored (every service counts). Not followed, so failing closed: `include:`,
`extends` of another file. What cannot be read keeps every image it could have named
(`gcd.core.compose`).
"""

from __future__ import annotations

import glob
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from gcd.config.compose import Limit
from gcd.config.document import Document, compose
from gcd.config.files import FileRefused, read_regular_file
from gcd.config.interpolate import (
    DotenvError,
    Env,
    Interpolated,
    InterpolationError,
    interpolate,
    normalise_project_name,
    read_dotenv,
)
from gcd.config.scalars import excerpt
from gcd.core.compose import ANY, ComposeFailure, ComposeImages, ComposeName
from gcd.core.policy import Policy
from gcd.core.references import InvalidReferenceError, parse_reference

MAX_COMPOSE_BYTES = 1 << 20
MAX_DOTENV_BYTES = 256 << 10
MAX_FILES = 1000
"""Files one compose rule reads per cycle; beyond, it fails closed."""
MAX_EXTENDS = 10
MAX_TEXT = 1024

# Document problems (duplicate key, a tag gcd does not take) that touch what gcd reads.
_RELEVANT = re.compile(r"^(|name|include|services(\.[^.]+(\.(image|build|extends|<<)(\..*)?)?)?)$")


@dataclass(frozen=True, slots=True)
class ComposeWarning:
    """A compose file that failed, or a glob that matched none: `gcd plan`'s warnings, shaped
    as `gcd.config.sites.Unmatched` is (no line or column: the place is the file)."""

    file: str
    field: str
    pattern: str
    message: str
    kind: str = "compose file"
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def compose_warnings(read: Iterable[tuple[int, ComposeImages]]) -> list[ComposeWarning]:
    warnings: list[ComposeWarning] = []
    for index, images in read:
        field = f"images.keep[{index}].compose"
        for failure in images.failures:
            warnings.append(
                ComposeWarning(
                    failure.file,
                    field,
                    "",
                    f"{failure.file}: {failure.reason}; keeping every image it could name",
                )
            )
        for pattern in images.unmatched_globs:
            warnings.append(
                ComposeWarning(pattern, field, pattern, f"{pattern!r} matches no file now")
            )
    return warnings


class _Failed(Exception):
    pass


def read_compose_rules(policy: Policy) -> Policy:
    """`policy` with every compose rule's `compose_images` read now."""
    if policy.images is None or not any(rule.compose for rule in policy.images.keep):
        return policy
    keep = tuple(
        replace(rule, compose_images=read_globs(rule.compose)) if rule.compose else rule
        for rule in policy.images.keep
    )
    return replace(policy, images=replace(policy.images, keep=keep))


def read_globs(globs: tuple[str, ...]) -> ComposeImages:
    names: list[ComposeName] = []
    files: list[str] = []
    failures: list[ComposeFailure] = []
    unmatched: list[str] = []
    paths: dict[str, None] = {}  # in order, once each
    for pattern in globs:
        found = 0
        for path in itertools.islice(glob.iglob(pattern), MAX_FILES + 1):
            found += 1
            paths.setdefault(path)
        if not found:
            unmatched.append(pattern)
        if len(paths) > MAX_FILES:
            break
    if len(paths) > MAX_FILES:
        reason = f"the globs match more than {MAX_FILES} files"
        where = ", ".join(globs)
        return ComposeImages(
            (ComposeName(where, None, shape=ANY, why=reason),),
            (),
            (ComposeFailure(where, reason),),
            tuple(unmatched),
        )
    for path in sorted(paths):
        file_names, file_failures = read_file(Path(path))
        names.extend(file_names)
        failures.extend(file_failures)
        if not file_failures:
            files.append(path)
    return ComposeImages(tuple(names), tuple(files), tuple(failures), tuple(unmatched))


def read_file(path: Path) -> tuple[list[ComposeName], list[ComposeFailure]]:
    """The names one file's services give, and its failures (a whole-file one, or one per
    service whose image gcd cannot determine)."""
    try:
        data, env = _load(path)
        return _services(path, data, env)
    except _Failed as exc:
        reason = str(exc)
    except Exception as exc:  # a reader's bug fails this file closed, not the cycle
        reason = f"gcd could not read it ({type(exc).__name__}: {excerpt(str(exc), 200)})"
    return [ComposeName(str(path), None, shape=ANY, why=reason)], [
        ComposeFailure(str(path), reason)
    ]


def _load(path: Path) -> tuple[dict[str, Any], Env]:
    try:
        raw = read_regular_file(path, MAX_COMPOSE_BYTES, "Compose")
        text = raw.decode("utf-8")
    except FileRefused as exc:
        raise _Failed(str(exc)) from None
    except UnicodeDecodeError:
        raise _Failed("not UTF-8 text") from None
    document = Document(str(path))
    try:
        data = compose(text, document)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise _Failed(f"invalid YAML{where}") from None
    except Limit as exc:
        raise _Failed(f"beyond gcd's bounds: {exc.message.split(':')[0]}") from None
    for problem in document.problems:
        if problem.field.endswith(".<<") and "merge key" in problem.message:
            continue  # gcd's policy reader refuses YAML 1.1 merge keys; Compose uses them
        if _RELEVANT.match(problem.field):
            raise _Failed(f"{problem.field or 'top level'}: {problem.message}")
    if not isinstance(data, dict):
        raise _Failed("not a mapping of Compose keys")
    if "include" in data:
        raise _Failed("include: is not followed by gcd; name the images in this file instead")
    return data, _dotenv(path.parent / ".env")


def _dotenv(path: Path) -> Env:
    if not path.exists():
        return {}
    try:
        return read_dotenv(read_regular_file(path, MAX_DOTENV_BYTES, ".env").decode("utf-8"))
    except FileRefused as exc:
        raise _Failed(f"{path}: {exc}") from None
    except UnicodeDecodeError:
        raise _Failed(f"{path}: not UTF-8 text") from None
    except DotenvError as exc:
        raise _Failed(f"{path}: {exc}") from None


def _text(value: Any, env: Env, what: str) -> Interpolated:
    if not isinstance(value, str):
        raise _Failed(f"{what} is not text")
    if len(value) > MAX_TEXT:  # an image reference is at most 255 characters
        raise _Failed(f"{what} is longer than {MAX_TEXT} characters")
    try:
        return interpolate(value, env)
    except InterpolationError as exc:
        raise _Failed(f"{what}: {exc}") from None


def _projects(path: Path, data: dict[str, Any], env: Env) -> list[tuple[str, ...]]:
    """Every project name gcd can see, as shapes (a `name:` with an unset variable is one)."""
    candidates: list[tuple[str, ...]] = []
    from_env = env.get("COMPOSE_PROJECT_NAME")
    if from_env:
        candidates.append((normalise_project_name(from_env),))
    if "name" in data:
        name = _text(data["name"], env, "name")
        candidates.append(tuple(normalise_project_name(p) for p in name.parts))
    candidates.append((normalise_project_name(path.parent.name),))
    return [c for i, c in enumerate(candidates) if c not in candidates[:i] and any(c)]


def _merged(service: Any, where: str) -> dict[str, Any]:
    if not isinstance(service, dict):
        raise _Failed(f"{where} is not a mapping")
    merged: dict[str, Any] = {}
    sources = service.get("<<", [])
    for source in sources if isinstance(sources, list) else [sources]:
        if isinstance(source, dict):
            merged |= {k: v for k, v in source.items() if k != "<<"}
    return merged | {k: v for k, v in service.items() if k != "<<"}


def _effective(services: dict[str, Any], name: str) -> dict[str, Any]:
    """The service with `extends` of this file applied (image and build only)."""
    seen: list[str] = []
    current = _merged(services[name], f"service {name}")
    result = dict(current)
    while "extends" in current and "image" not in result:
        extends = current["extends"]
        if isinstance(extends, dict):
            if "file" in extends:
                raise _Failed(
                    f"service {name} extends another file, which gcd does not follow; give "
                    "it an image:"
                )
            extends = extends.get("service")
        if not isinstance(extends, str) or extends not in services:
            raise _Failed(f"service {name} extends a service this file does not have")
        if extends in seen or len(seen) >= MAX_EXTENDS:
            raise _Failed(f"service {name}: extends goes round in a circle or too deep")
        seen.append(extends)
        current = _merged(services[extends], f"service {extends}")
        result = current | result | {"extends": current.get("extends")}
        if result["extends"] is None:
            del result["extends"]
    return result


def _services(
    path: Path, data: dict[str, Any], env: Env
) -> tuple[list[ComposeName], list[ComposeFailure]]:
    services = data.get("services") or {}
    if not isinstance(services, dict):
        raise _Failed("services is not a mapping")
    projects = _projects(path, data, env)
    names: list[ComposeName] = []
    failures: list[ComposeFailure] = []
    for service_name in services:
        try:
            found = _service(path, services, service_name, env, projects)
            names.extend(found)
            # Known only in part: kept as any image it could be, and reported, so that the
            # operator can give the variable a value where gcd reads it (.env).
            failures.extend(
                ComposeFailure(str(path), f"service {service_name}: {name.why}")
                for name in found
                if name.reference is None
            )
        except _Failed as exc:
            reason = str(exc)
            names.append(ComposeName(str(path), service_name, shape=ANY, why=reason))
            failures.append(ComposeFailure(str(path), f"service {service_name}: {reason}"))
    return names, failures


def _service(
    path: Path,
    services: dict[str, Any],
    name: str,
    env: Env,
    projects: list[tuple[str, ...]],
) -> list[ComposeName]:
    service = _effective(services, name)
    if "image" in service:
        image = _text(service["image"], env, "image")
        texts = [image]
    elif "build" in service:
        texts = [
            Interpolated((*project[:-1], f"{project[-1]}{sep}{name}"))
            for project in projects
            for sep in ("-", "_")
        ]
    else:
        raise _Failed("neither image nor build")
    names = []
    for text in texts:
        if text.exact is None:
            unset = ", ".join(f"${{{v}}}" for v in text.unknown) or "a variable"
            names.append(
                ComposeName(
                    str(path),
                    name,
                    shape=text.parts,
                    why=f"{unset} has no value in .env",
                )
            )
            continue
        try:
            reference = parse_reference(text.exact)
        except InvalidReferenceError as exc:
            if "image" in service:
                raise _Failed(str(exc)) from None
            continue  # a default name Compose could not give either (an upper-case service)
        names.append(ComposeName(str(path), name, reference=reference))
    return names
