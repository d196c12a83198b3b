"""The policy file's YAML → plain data, remembering where each value and key stood.

Only the node tree comes from PyYAML: a plain scalar's meaning is `gcd.yaml_scalars`' (the YAML
1.2 core schema, refusing what YAML 1.1 reads otherwise), quoted and block scalars are text, and
no tag but `!!str`, `!!map` and `!!seq` is taken, so nothing in the file changes meaning on its
way into a keep rule and nothing in it is ever constructed as a Python object.
"""

from __future__ import annotations

from typing import Any

import yaml

from gcd.config.compose import COUNTS_BYTES, MAP, MAX_DEPTH, PLAIN, SEQ, STR, Limit, compose_node
from gcd.config.scalars import Plain, Scalar, excerpt, quoted, read_plain
from gcd.errors import PolicyProblem

FieldPath = tuple[str | int, ...]
Position = tuple[int, int]

_PLAIN, _STR, _MAP, _SEQ = PLAIN, STR, MAP, SEQ


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

    MAX_VALUES = 10_000
    """Values and keys converted, aliases expanded: a 300-byte file of aliases of aliases
    names billions (`compose` bounds the nodes, this what they expand to)."""

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
        self._count = 0

    def problem(self, node: yaml.Node, path: FieldPath, message: str) -> None:
        line, column = _position(node)
        self.problems.append(PolicyProblem(self.source, line, column, dotted(path), message))
        self.settled.add(path)

    def _counted(self, node: yaml.Node) -> None:
        self._count += 1
        if self._count > self.MAX_VALUES:
            raise Limit(
                node.start_mark,
                f"more than {self.MAX_VALUES} values and keys (counting what aliases repeat): "
                "a policy is small; check aliases",
            )

    def convert(self, node: yaml.Node, path: FieldPath, depth: int = 0) -> Any:
        self._counted(node)
        if depth > MAX_DEPTH:  # aliases of nested collections inside nested collections
            raise Limit(
                node.start_mark,
                f"nested deeper than {MAX_DEPTH} levels once aliases are expanded",
            )
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
                return [
                    self.convert(item, (*path, i), depth + 1) for i, item in enumerate(node.value)
                ]
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                self._counted(key_node)
                key = self._key(key_node, path)
                if key is None:
                    continue
                self.keys[(*path, key)] = _position(key_node)
                if key in result:
                    self.problem(key_node, (*path, key), "duplicate key")
                result[key] = self.convert(value_node, (*path, key), depth + 1)
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


def dotted(path: FieldPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = excerpt(part)  # a key can be a megabyte
            text += f".{key}" if text else key
    return text


def yaml_problem(exc: yaml.YAMLError, text: str, source: str) -> PolicyProblem:
    """Where the YAML reader or parser stopped, and why: the reason only, never the snippet
    of the file PyYAML would quote, and cut to an excerpt (an alias name can be a megabyte)."""
    line, column, reason = 1, 1, str(exc).split("\n", 1)[0]
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            line, column = mark.line + 1, mark.column + 1
        reason = ": ".join(part for part in (exc.context, exc.problem) if part) or reason
    elif isinstance(exc, yaml.reader.ReaderError):
        line, column = _reader_position(exc, text)
    return PolicyProblem(source, line, column, "", f"invalid YAML: {excerpt(reason, 200)}")


def _reader_position(exc: yaml.reader.ReaderError, text: str) -> Position:
    """LibYAML counts a reader error's position in bytes of UTF-8, PyYAML in characters."""
    offset = exc.position
    if COUNTS_BYTES:
        offset = len(
            text.encode("utf-8", "surrogatepass")[: exc.position].decode("utf-8", "replace")
        )
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def compose(text: str, document: Document) -> Any:
    """The document's plain data. Raises `yaml.YAMLError` or `Limit`."""
    node = compose_node(text)
    return None if node is None else document.convert(node, ())
