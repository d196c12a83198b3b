"""YAML text → one node tree, within bounds a hostile file cannot talk its way past.

PyYAML's own composer recurses once per nesting level (10,000 `[` are a RecursionError) and is
pure Python (a 1 MiB file takes seconds). Here LibYAML's parser (PyYAML's C binding, when it is
built; else PyYAML's Python parser, the same events) yields the events and a loop builds the
nodes: no recursion, at most `MAX_DEPTH` open collections and `MAX_NODES` events, so the work
is bounded before anything is converted. Aliases stay references to the one node composed
(`Document` bounds what they expand to), and tags are resolved as `Document` expects: an
untagged plain scalar gets `PLAIN`, so that it can be told from a quoted one and from
`!!str 0755`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import yaml

PLAIN = "tag:gcd.invalid,2026:plain"  # a plain scalar with no tag: read by gcd.config.scalars
STR = "tag:yaml.org,2002:str"
MAP = "tag:yaml.org,2002:map"
SEQ = "tag:yaml.org,2002:seq"

MAX_DEPTH = 64
"""Collections open at once. A policy nests about 6 deep; 64 leaves room for any layout."""
MAX_NODES = 10_000
"""YAML events (scalars, aliases, each collection's start and end), keys included: a policy
has hundreds; the largest accepted file parses in about a tenth of a second."""

_Parser: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
COUNTS_BYTES = _Parser is not yaml.SafeLoader
"""LibYAML's reader errors give a position in bytes, PyYAML's in characters."""


class _Events(Protocol):
    """The event API both parsers share (PyYAML's stubs leave it untyped)."""

    def check_event(self, *choices: type[yaml.Event]) -> bool: ...
    def get_event(self) -> Any: ...
    def dispose(self) -> None: ...


class Limit(Exception):
    """The document is beyond a bound; `mark` is where it went past it."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


@dataclass(slots=True)
class _Open:
    node: yaml.SequenceNode | yaml.MappingNode
    key: yaml.Node | None = None
    pairs: list[tuple[yaml.Node, yaml.Node]] = field(default_factory=list)


def _tag(event: Any, kind: type[yaml.Node]) -> str:
    tag = getattr(event, "tag", None)
    if tag is not None and tag != "!":
        return str(tag)
    if kind is yaml.ScalarNode:
        implicit = getattr(event, "implicit", (False, False))
        return PLAIN if implicit[0] else STR
    return SEQ if kind is yaml.SequenceNode else MAP


def _node(event: Any) -> yaml.Node:
    start: Any = event.start_mark  # LibYAML's marks are its own type, alike in all we use
    end: Any = event.end_mark
    if isinstance(event, yaml.ScalarEvent):
        style = event.style or None  # LibYAML says '' for plain, PyYAML None
        return yaml.ScalarNode(_tag(event, yaml.ScalarNode), event.value, start, end, style)
    if isinstance(event, yaml.SequenceStartEvent):
        return yaml.SequenceNode(_tag(event, yaml.SequenceNode), [], start, None, event.flow_style)
    assert isinstance(event, yaml.MappingStartEvent)
    return yaml.MappingNode(_tag(event, yaml.MappingNode), [], start, None, event.flow_style)


def compose_node(text: str) -> yaml.Node | None:
    """The single document's root node, None for an empty stream. Raises `yaml.YAMLError`
    for what YAML refuses and `Limit` past a bound."""
    parser = cast(_Events, _Parser(text))
    try:
        parser.get_event()  # StreamStart
        if parser.check_event(yaml.StreamEndEvent):
            return None
        parser.get_event()  # DocumentStart
        root = _compose(parser)
        parser.get_event()  # DocumentEnd
        if not parser.check_event(yaml.StreamEndEvent):
            event = parser.get_event()
            raise yaml.composer.ComposerError(
                "expected a single document in the stream",
                None,
                "but found another document",
                event.start_mark,
            )
        return root
    finally:
        parser.dispose()


def _compose(parser: _Events) -> yaml.Node:
    anchors: dict[str, yaml.Node] = {}
    stack: list[_Open] = []
    events = 0
    while True:
        event: Any = parser.get_event()
        mark: Any = event.start_mark
        events += 1
        if events > MAX_NODES:
            raise Limit(mark, f"more than {MAX_NODES} YAML nodes: a policy is small")
        node: yaml.Node
        if isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            done = stack.pop()
            done.node.end_mark = event.end_mark
            if isinstance(done.node, yaml.MappingNode):
                done.node.value = done.pairs
            node = done.node
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchors:
                raise yaml.composer.ComposerError(
                    None, None, f"found undefined alias {event.anchor!r}", mark
                )
            node = anchors[event.anchor]
        else:
            assert isinstance(event, yaml.NodeEvent)
            node = _node(event)
            if event.anchor is not None:
                if event.anchor in anchors:
                    raise yaml.composer.ComposerError(
                        None, None, f"found duplicate anchor {event.anchor!r}", mark
                    )
                anchors[event.anchor] = node  # before its children: `&a [*a]` is a cycle
            if isinstance(node, yaml.SequenceNode | yaml.MappingNode):
                if len(stack) >= MAX_DEPTH:
                    raise Limit(
                        mark,
                        f"nested deeper than {MAX_DEPTH} levels: a policy needs about 6",
                    )
                stack.append(_Open(node))
                continue
        if not stack:
            return node
        parent = stack[-1]
        if isinstance(parent.node, yaml.SequenceNode):
            parent.node.value.append(node)
        elif parent.key is None:
            parent.key = node
        else:
            parent.pairs.append((parent.key, node))
            parent.key = None
