"""The policy file's YAML → plain data, remembering where each value and key stood.

Only the node tree comes from PyYAML: a plain scalar's meaning is `gcd.yaml_scalars`' (the YAML
1.2 core schema, refusing what YAML 1.1 reads otherwise), quoted and block scalars are text, and
no tag but `!!str`, `!!map` and `!!seq` is taken, so nothing in the file changes meaning on its
way into a keep rule and nothing in it is ever constructed as a Python object.
"""

from __future__ import annotations

from typing import Any

import yaml

from gcd.config.scalars import Plain, Scalar, quoted, read_plain
from gcd.errors import PolicyProblem

FieldPath = tuple[str | int, ...]
Position = tuple[int, int]

_PLAIN = "tag:gcd.invalid,2026:plain"  # a plain scalar with no tag: read by gcd.yaml_scalars
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


class _Loader(yaml.SafeLoader):
    """Composes the node tree without YAML 1.1's implicit types. The composer asks `resolve`
    only for nodes without a specific tag: an untagged plain scalar gets `_PLAIN`, so that
    `Document` can tell it from a quoted one and from `!!str 0755` (emptying
    `yaml_implicit_resolvers` instead would tag all three `tag:yaml.org,2002:str`)."""

    def resolve(self, kind: type[yaml.Node], value: str, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return _SEQ if kind is yaml.SequenceNode else _MAP


def _position(node: yaml.Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _tag(tag: str) -> str:
    """A tag as the file spells it: `!!int`, `!foo`, `!<tag:example.com,2026:x>`."""
    if tag.startswith("tag:yaml.org,2002:"):
        return "!!" + tag.removeprefix("tag:yaml.org,2002:")
    return tag if tag.startswith("!") else f"!<{tag}>"


class Document:
    """Plain data from the YAML node tree, remembering where each value and key stood and how
    each plain scalar was written."""

    MAX_VALUES = 100_000  # aliases can multiply a small file into a huge tree

    def __init__(self, source: str) -> None:
        self.source = source
        self.values: dict[FieldPath, Position] = {}
        self.keys: dict[FieldPath, Position] = {}
        self.plain: dict[FieldPath, Plain] = {}  # to show found values as written
        self.refused: dict[FieldPath, Plain] = {}  # plain scalars YAML versions disagree on
        # Paths with a problem already: a schema error there would say the same thing again.
        self.settled: set[FieldPath] = set()
        self.problems: list[PolicyProblem] = []
        self._open: set[int] = set()  # collections being converted: a cycle means `&a [*a]`

    def problem(self, node: yaml.Node, path: FieldPath, message: str) -> None:
        line, column = _position(node)
        self.problems.append(PolicyProblem(self.source, line, column, dotted(path), message))
        self.settled.add(path)

    def convert(self, node: yaml.Node, path: FieldPath) -> Any:
        if len(self.values) >= self.MAX_VALUES:
            raise TooLarge(node)
        self.values[path] = _position(node)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if node.tag not in (_MAP, _SEQ):
            self.problem(node, path, f"unsupported tag {_tag(node.tag)}: remove it")
        if id(node) in self._open:
            self.problem(node, path, "a YAML alias refers to the collection that contains it")
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self._key(key_node, path)
                if key is None:
                    continue
                self.keys[(*path, key)] = _position(key_node)
                if key in result:
                    self.problem(key_node, (*path, key), "duplicate key")
                result[key] = self.convert(value_node, (*path, key))
            return result
        finally:
            self._open.discard(id(node))

    def _scalar(self, node: yaml.ScalarNode, path: FieldPath) -> Scalar:
        text = str(node.value)
        if node.tag == _PLAIN and node.style is None:
            plain = read_plain(text)
            self.plain[path] = plain
            if not plain.refused:
                return plain.value
            self.refused[path] = plain  # worded by `gcd.config`, which knows the field
            self.settled.add(path)
            return text
        # PyYAML gives `! "x"` (the non-specific tag) implicit plain resolution: the quotes
        # still make it text.
        if node.tag not in (_PLAIN, _STR):
            self.problem(node, path, f"unsupported tag {_tag(node.tag)}: remove it")
        return text  # quoted, block or `!!str`: the text as written

    def _key(self, node: yaml.Node, path: FieldPath) -> str | None:
        """A mapping key's text. No key of the schema, and no label key, is anything else."""
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, path, "keys are text, not a list or mapping")
            return None
        text = str(node.value)
        if node.tag == _PLAIN and node.style is None:
            plain = read_plain(text)
            if plain.refused or not isinstance(plain.value, str):
                self.problem(
                    node, (*path, text), f"keys are text: quote it: {quoted(text)} ({plain.why()})"
                )
        elif node.tag not in (_PLAIN, _STR):
            self.problem(node, (*path, text), f"unsupported tag {_tag(node.tag)}: remove it")
        return text


class TooLarge(Exception):
    def __init__(self, node: yaml.Node) -> None:
        self.node = node


def dotted(path: FieldPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def yaml_problem(exc: yaml.YAMLError, text: str, source: str) -> PolicyProblem:
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


def compose(text: str, document: Document) -> Any:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return None if node is None else document.convert(node, ())
    finally:
        loader.dispose()
