"""Policy file → validated, frozen `Policy`, or every problem at once with its position:
`policy.yaml:14:7: images.keep[2].newest: expected a whole number from 1 to 1000000, got "ten"`.

`gcd.config_yaml` reads the YAML (plain scalars by YAML 1.2 core rules, refusing what YAML 1.1
reads otherwise), `gcd.config_schema` validates, and this module words each problem: found values
as the file spells them (`1.10`, not the float 1.1), with the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gcd.config.compose import Limit
from gcd.config.convert import to_policy
from gcd.config.document import Document, FieldPath, compose, dotted, yaml_problem
from gcd.config.files import FileRefused, read_regular_file
from gcd.config.scalars import excerpt, quoted
from gcd.config.schema import PolicyModel, shown
from gcd.core.policy import Policy
from gcd.errors import PolicyError, PolicyProblem


def _known_keys(model: type[BaseModel], path: FieldPath) -> list[str]:
    """The keys the schema accepts at `path` (for "did you mean")."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        for candidate in (*getattr(annotation, "__args__", ()), annotation):
            inner = getattr(candidate, "__args__", (candidate,))
            found = next((c for c in (*inner, candidate) if _is_model(c)), None)
            if found is not None:
                current = found
                break
        else:
            return []
    return list(getattr(current, "model_fields", {}))


def _is_model(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def _found(given: Any, path: FieldPath, document: Document) -> str:
    """A found value as the file spells it: `1.10`, not the float 1.1 it was read as."""
    plain = document.plain.get(path)
    if plain is not None and plain.text and not isinstance(given, str):
        return plain.text
    return shown(given)


def _label_message(given: Any, path: FieldPath, document: Document) -> str:
    plain = document.plain.get(path)
    if given is None:
        alternative = f", or quote it: {quoted(plain.text)}" if plain and plain.text else ""
        return f'a label value is text: write "*" for any value{alternative}'
    if plain is not None:
        return f"a label value is text: quote it: {quoted(plain.text)} ({plain.why()})"
    return f"a label value is text, got {shown(given)}"


LABELLED_SECTIONS = ("images", "containers", "volumes")
"""The sections whose `keep[i].label` values are Docker label values: text only."""


def _is_label_value(path: FieldPath) -> bool:
    return (
        len(path) == 5 and path[0] in LABELLED_SECTIONS and path[1] == "keep" and path[3] == "label"
    )


_REQUIRED: dict[FieldPath, str] = {
    ("containers", "remove_exited_after"): (
        "required: how long a container must have been stopped before it goes, such as 2d "
        "(there is no default)"
    ),
    ("networks", "unused_for"): (
        "required: how long no container may have used a network before it goes, such as 1d "
        "(there is no default)"
    ),
}


def _message(error: ErrorDetails, path: FieldPath, document: Document) -> str:
    kind = error["type"]
    given = error.get("input")
    context: dict[str, Any] = dict(error.get("ctx") or {})
    if kind == "extra_forbidden":
        known = _known_keys(PolicyModel, path[:-1])
        import difflib  # noqa: PLC0415 (for a misspelt key only)

        close = difflib.get_close_matches(str(path[-1]), known, n=1)
        hint = f"; did you mean `{close[0]}`?" if close else f"; known keys: {', '.join(known)}"
        return f"unknown key{hint}"
    if kind == "missing":
        return _REQUIRED.get(path, "required")
    if kind == "gcd_field":
        return str(context["message"])
    if kind == "label_text":
        return _label_message(given, path, document)
    if kind == "gcd_expected":
        expected = str(context["expected"])
    elif kind in {"int_parsing", "int_type", "int_from_float"}:
        expected = "a whole number"
    elif kind == "literal_error":
        expected = str(context.get("expected"))
    elif kind == "dict_type":
        expected = "a mapping of key: value"
    elif kind == "list_type":
        expected = "a list"
    elif kind in {"string_type", "str_type"}:
        expected = "a string"
    elif kind == "model_type":
        expected = "a mapping"
    elif kind == "too_short":
        expected = _at_least_one(path)
    elif kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    else:
        return str(error["msg"])
    return f"expected {expected}, got {_found(given, path, document)}"


_NOUNS = {"images": "image", "containers": "container", "volumes": "volume"}


def _at_least_one(path: FieldPath) -> str:
    """What an empty list or mapping should have held, and why empty is refused."""
    field = str(path[-1]) if path else ""
    noun = _NOUNS.get(str(path[0]), "object") if path else "object"
    if path == ("volumes", "named"):
        return "at least one pattern (an empty list names no volume: leave named out)"
    if field == "label":
        return f"at least one `key: value` (an empty label rule would keep every {noun})"
    if field in {"reference", "name", "image"}:
        return f"at least one pattern (an empty {field} rule would keep every {noun})"
    return "at least one entry"


def _misspelt(errors: list[ErrorDetails]) -> set[FieldPath]:
    """Required keys that an unknown key beside them looks like a misspelling of: the "did
    you mean" on the unknown key says it all, "required" would only repeat it."""
    unknown = [tuple(e["loc"]) for e in errors if e["type"] == "extra_forbidden"]
    misspelt: set[FieldPath] = set()
    for error in errors:
        path: FieldPath = tuple(error["loc"])
        if error["type"] != "missing":
            continue
        for other in unknown:
            beside = len(other) == len(path) and other[:-1] == path[:-1]
            import difflib  # noqa: PLC0415 (for a misspelt key only)

            if beside and difflib.get_close_matches(str(path[-1]), [str(other[-1])], n=1):
                misspelt.add(path)
    return misspelt


def _problems(exc: ValidationError, document: Document) -> list[PolicyProblem]:
    problems = []
    errors = exc.errors()
    misspelt = _misspelt(errors)
    for error in errors:
        path: FieldPath = tuple(error["loc"])
        if error["type"] == "missing" and path in misspelt:
            continue
        if error["type"] == "gcd_field":
            path = (*path, str((error.get("ctx") or {})["field"]))
        if path in document.settled:
            continue
        if error["type"] == "extra_forbidden" and path in document.keys:
            line, column = document.keys[path]
        else:
            probe = path
            while probe and probe not in document.values:
                probe = probe[:-1]
            line, column = document.values.get(probe, (1, 1))
        problems.append(
            PolicyProblem(
                document.source, line, column, dotted(path), _message(error, path, document)
            )
        )
    return problems


def _refused(document: Document) -> list[PolicyProblem]:
    """The plain scalars YAML 1.1 and 1.2 read differently (or not in plain decimal)."""
    problems = []
    for path, plain in document.refused.items():
        line, column = document.values[path]
        if _is_label_value(path):  # labels are text: the only fix is quoting
            message = f"a label value is text: quote it: {quoted(plain.text)} ({plain.why()})"
        else:
            message = plain.message()
        problems.append(PolicyProblem(document.source, line, column, dotted(path), message))
    return problems


MAX_POLICY_BYTES = 1024 * 1024
"""A policy is a few kilobytes; 1 MiB leaves room for a generated one and keeps parsing it
well under a second. A larger file is refused before it is parsed."""
MAX_PROBLEMS = 100
"""Problems listed at most; the rest are counted (a generated file can have thousands)."""
_LONGEST_MESSAGE = 1000


def _bounded(problems: list[PolicyProblem], source: str) -> list[PolicyProblem]:
    """Sorted by position, each message and field cut to a bounded excerpt, at most
    `MAX_PROBLEMS` of them: a message must not echo a huge value or key."""
    ordered = sorted(problems, key=lambda p: (p.line, p.column))
    shown_problems = [
        PolicyProblem(
            p.file, p.line, p.column, excerpt(p.field, 200), excerpt(p.message, _LONGEST_MESSAGE)
        )
        for p in ordered[:MAX_PROBLEMS]
    ]
    if len(ordered) > MAX_PROBLEMS:
        first = ordered[MAX_PROBLEMS]
        shown_problems.append(
            PolicyProblem(
                source,
                first.line,
                first.column,
                "",
                f"and {len(ordered) - MAX_PROBLEMS} more problems from here on",
            )
        )
    return shown_problems


def parse_policy(text: str, source: str) -> Policy:
    """Validate a policy file's text; `source` names it in messages (usually its path).

    Raises PolicyError listing every problem (up to `MAX_PROBLEMS`), each as
    `file:line:col: field: message`. An empty document is a valid policy that deletes nothing.
    """
    try:
        return _parse(text, source)
    except PolicyError as exc:
        raise PolicyError(_bounded(exc.problems, source)) from None
    except RecursionError:  # bounded by `MAX_DEPTH`; this is the last line of defence
        raise PolicyError(
            [PolicyProblem(source, 1, 1, "", "nested too deeply to read: a policy is flat")]
        ) from None


def _parse(text: str, source: str) -> Policy:
    document = Document(source)
    try:
        data = compose(text, document)
    except yaml.YAMLError as exc:
        raise PolicyError([yaml_problem(exc, text, source)]) from None
    except Limit as exc:
        line, column = exc.mark.line + 1, exc.mark.column + 1
        raise PolicyError([PolicyProblem(source, line, column, "", exc.message)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        line, column = document.values.get((), (1, 1))
        raise PolicyError(
            [
                PolicyProblem(
                    source,
                    line,
                    column,
                    "",
                    "expected a mapping of settings (version, safety, images, containers, "
                    "volumes, build_cache, networks, schedule) at the top, "
                    f"got {shown(data)}",
                )
            ]
        )
    problems = [*document.problems, *_refused(document)]
    model = None
    try:
        model = PolicyModel.model_validate(data)
    except ValidationError as exc:
        problems += _problems(exc, document)
    if problems or model is None:
        raise PolicyError(problems)
    return to_policy(model, source)


def read_policy_file(path: Path) -> bytes:
    """The bytes of the policy file at `path`: a regular file of at most `MAX_POLICY_BYTES`,
    read without blocking on a FIFO or device (`gcd.config.files`). Raises PolicyError."""
    try:
        return read_regular_file(path, MAX_POLICY_BYTES, "policy")
    except FileRefused as exc:
        raise PolicyError([PolicyProblem(str(path), 1, 1, "", str(exc))]) from None


def load_policy(path: Path) -> Policy:
    """Read and validate the policy file at `path` (see `read_policy_file`, `parse_policy`)."""
    data = read_policy_file(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        raise PolicyError(
            [
                PolicyProblem(
                    str(path),
                    line,
                    column,
                    "",
                    f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the policy as UTF-8",
                )
            ]
        ) from None
    return parse_policy(text, str(path))
