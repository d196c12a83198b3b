"""Policy file → validated, frozen `Policy`, or every problem at once with its position:
`policy.yaml:14:7: images.keep[2].newest: expected a whole number ≥ 1, got 'ten'`."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gcd.config_schema import KeepRuleModel, PolicyModel, shown
from gcd.errors import PolicyError, PolicyProblem
from gcd.patterns import Pattern
from gcd.rules import (
    DanglingPolicy,
    DiskWatermarks,
    ImagePolicy,
    KeepRule,
    Policy,
    Safety,
    Schedule,
)

FieldPath = tuple[str | int, ...]
Position = tuple[int, int]


class _Document:
    """Plain data from the YAML node tree, remembering where each value and key stood."""

    MAX_VALUES = 100_000  # aliases can multiply a small file into a huge tree

    def __init__(self, source: str) -> None:
        self.source = source
        self.values: dict[FieldPath, Position] = {}
        self.keys: dict[FieldPath, Position] = {}
        self.problems: list[PolicyProblem] = []
        self._open: set[int] = set()  # collections being converted: a cycle means `&a [*a]`

    def problem(self, node: yaml.Node, path: FieldPath, message: str) -> None:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        self.problems.append(PolicyProblem(self.source, line, column, dotted(path), message))

    def convert(self, loader: yaml.SafeLoader, node: yaml.Node, path: FieldPath) -> Any:
        if len(self.values) >= self.MAX_VALUES:
            raise _TooLarge(node)
        self.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            return loader.construct_object(node, deep=True)
        if id(node) in self._open:
            self.problem(node, path, "a YAML alias refers to the collection that contains it")
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.convert(loader, item, (*path, i)) for i, item in enumerate(node.value)]
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(loader.construct_object(key_node, deep=True))
                self.keys[(*path, key)] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                if key in result:
                    self.problem(key_node, (*path, key), "duplicate key")
                result[key] = self.convert(loader, value_node, (*path, key))
            return result
        finally:
            self._open.discard(id(node))


class _TooLarge(Exception):
    def __init__(self, node: yaml.Node) -> None:
        self.node = node


def dotted(path: FieldPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


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


def _message(error: ErrorDetails, path: FieldPath) -> str:
    kind = error["type"]
    given = error.get("input")
    context: dict[str, Any] = dict(error.get("ctx") or {})
    if kind == "extra_forbidden":
        known = _known_keys(PolicyModel, path[:-1])
        close = difflib.get_close_matches(str(path[-1]), known, n=1)
        hint = f"; did you mean `{close[0]}`?" if close else f"; known keys: {', '.join(known)}"
        return f"unknown key{hint}"
    if kind == "missing":
        return "required"
    if kind in {"int_parsing", "int_type", "int_from_float"}:
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
        expected = _AT_LEAST_ONE.get(str(path[-1]) if path else "", "at least one entry")
    elif kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    else:
        return str(error["msg"])
    return f"expected {expected}, got {shown(given)}"


_AT_LEAST_ONE = {
    "label": "at least one `key: value` (an empty label rule would keep every image)",
    "reference": "at least one pattern (an empty reference rule would keep every image)",
}


def _problems(exc: ValidationError, document: _Document) -> list[PolicyProblem]:
    problems = []
    for error in exc.errors():
        path: FieldPath = tuple(error["loc"])
        if error["type"] == "extra_forbidden" and path in document.keys:
            line, column = document.keys[path]
        else:
            probe = path
            while probe and probe not in document.values:
                probe = probe[:-1]
            line, column = document.values.get(probe, (1, 1))
        problems.append(
            PolicyProblem(document.source, line, column, dotted(path), _message(error, path))
        )
    return problems


def _keep_rule(index: int, model: KeepRuleModel) -> KeepRule:
    return KeepRule(
        index=index,
        labels=dict(model.label or {}),
        references=tuple(Pattern.compile(p) for p in model.reference or ()),
        newest=model.newest,
        younger_than=model.younger_than,
        used_within=model.used_within,
    )


def _policy(model: PolicyModel, source: str) -> Policy:
    images = None
    if model.images is not None:
        images = ImagePolicy(
            keep=tuple(_keep_rule(i, rule) for i, rule in enumerate(model.images.keep)),
            dangling=DanglingPolicy(model.images.dangling.keep_within),
        )
    schedule = model.schedule
    disk = schedule.disk
    return Policy(
        version=model.version,
        safety=Safety(
            model.safety.min_age,
            model.safety.max_deletions_per_run,
            model.safety.max_delete_fraction,
        ),
        images=images,
        source=source,
        schedule=Schedule(
            every=schedule.every if schedule.cron else (schedule.every or Schedule().every),
            cron=schedule.cron,
            jitter=schedule.jitter,
            disk=DiskWatermarks(disk.path, disk.high, disk.low, disk.check_every) if disk else None,
        ),
    )


def _yaml_problem(exc: yaml.YAMLError, text: str, source: str) -> PolicyProblem:
    """Where the YAML reader or parser stopped, and why."""
    line, column, reason = 1, 1, str(exc).split("\n", 1)[0]
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            line, column = mark.line + 1, mark.column + 1
        reason = ": ".join(part for part in (exc.context, exc.problem) if part) or reason
    elif isinstance(exc, yaml.reader.ReaderError):
        before = text[: exc.position]
        line, column = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
    return PolicyProblem(source, line, column, "", f"invalid YAML: {reason}")


def _compose(text: str, document: _Document) -> Any:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        return None if node is None else document.convert(loader, node, ())
    finally:
        loader.dispose()


def parse_policy(text: str, source: str) -> Policy:
    """Validate a policy file's text; `source` names it in messages (usually its path).

    Raises PolicyError listing every problem, each as `file:line:col: field: message`.
    An empty document is a valid policy that deletes nothing.
    """
    document = _Document(source)
    try:
        data = _compose(text, document)
    except yaml.YAMLError as exc:
        raise PolicyError([_yaml_problem(exc, text, source)]) from None
    except _TooLarge as exc:
        document.problem(exc.node, (), f"more than {_Document.MAX_VALUES} values; check aliases")
        raise PolicyError(document.problems) from None
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
                    "expected a mapping of settings (version, safety, images) at the top, "
                    f"got {shown(data)}",
                )
            ]
        )
    problems = list(document.problems)
    model = None
    try:
        model = PolicyModel.model_validate(data)
    except ValidationError as exc:
        problems += _problems(exc, document)
    if problems or model is None:
        raise PolicyError(sorted(problems, key=lambda p: (p.line, p.column)))
    return _policy(model, source)


def load_policy(path: Path) -> Policy:
    """Read and validate the policy file at `path` (see `parse_policy`)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(
            [PolicyProblem(str(path), 1, 1, "", f"cannot read the policy: {exc.strerror}")]
        ) from None
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
