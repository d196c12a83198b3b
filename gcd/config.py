"""Policy file → validated, frozen `Policy`, or every problem at once with its position:
`policy.yaml:14:7: images.keep[2].newest: expected a whole number ≥ 1, got 'ten'`."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gcd.config_schema import KeepRuleModel, PolicyModel
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

    def __init__(self, source: str) -> None:
        self.source = source
        self.values: dict[FieldPath, Position] = {}
        self.keys: dict[FieldPath, Position] = {}
        self.problems: list[PolicyProblem] = []

    def convert(self, loader: yaml.SafeLoader, node: yaml.Node, path: FieldPath) -> Any:
        self.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(loader.construct_object(key_node, deep=True))
                self.keys[(*path, key)] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                if key in result:
                    line, column = self.keys[(*path, key)]
                    self.problems.append(
                        PolicyProblem(
                            self.source, line, column, dotted((*path, key)), "duplicate key"
                        )
                    )
                result[key] = self.convert(loader, value_node, (*path, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(loader, item, (*path, i)) for i, item in enumerate(node.value)]
        return loader.construct_object(node, deep=True)


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
    elif kind == "greater_than_equal":
        expected = f"a whole number ≥ {context.get('ge')}"
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
    elif kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    else:
        return str(error["msg"])
    return f"expected {expected}, got {given!r}"


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


def parse_policy(text: str, source: str) -> Policy:
    document = _Document(source)
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = {} if node is None else document.convert(loader, node, ())
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PolicyError(
            [PolicyProblem(source, line, column, "", f"invalid YAML: {exc.problem or exc}")]
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(
            [PolicyProblem(source, 1, 1, "", f"expected a mapping at the top, got {data!r}")]
        )
    try:
        model = PolicyModel.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(document.problems + _problems(exc, document)) from None
    if document.problems:
        raise PolicyError(document.problems)
    return _policy(model, source)


def load_policy(path: Path) -> Policy:
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyError(
            [PolicyProblem(str(path), 1, 1, "", f"cannot read the policy: {exc.strerror}")]
        ) from None
    return parse_policy(text, str(path))
