"""Which keep patterns of a policy match nothing on the engine now: `gcd plan`'s warnings.

`gcd check` refuses a pattern that can match nothing that can exist (`gcd.core.patterns.
never_matches`); a pattern that could match but matches no current object is often a typo
(`registry.example.com/tema/**:*`) that only the engine's objects reveal, and it is not an error
(the image may simply not be built yet). Each is said with its file, line and column, which are
read again from the policy file: the `Policy` records carry no positions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from gcd.config.compose import Limit
from gcd.config.document import Document, FieldPath, compose, dotted
from gcd.config.files import FileRefused, read_regular_file
from gcd.config.loader import MAX_POLICY_BYTES
from gcd.core.patterns import NamePattern, Pattern
from gcd.core.policy import Policy
from gcd.core.records import Snapshot
from gcd.core.references import InvalidReferenceError, Reference, parse_reference


@dataclass(frozen=True, slots=True)
class Unmatched:
    """A pattern that matches no current object of its kind."""

    file: str
    line: int
    column: int
    field: str
    pattern: str
    kind: str  # "image", "container image", "container", "volume"

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.line}:{self.column}: {self.field}: {self.pattern!r} matches no "
            f"{self.kind} on the engine now"
        )


def _container_references(snapshot: Snapshot) -> list[Reference]:
    references = []
    for container in snapshot.containers:
        try:
            reference = parse_reference(container.image)
        except InvalidReferenceError:
            continue
        if reference.tag is None and reference.digest is None:
            reference = replace(reference, tag="latest")
        references.append(reference)
    return references


_Check = tuple[FieldPath, str, str, Callable[[], bool]]


def _checks(policy: Policy, snapshot: Snapshot) -> Iterable[_Check]:
    """(path, pattern, kind, matches-something) for every keep and selection pattern."""
    references = [ref for image in snapshot.images for ref in image.references]
    used = _container_references(snapshot)
    containers = [c.name for c in snapshot.containers]
    volumes = [v.name for v in snapshot.volumes]

    def refs(pattern: Pattern, among: list[Reference]) -> Callable[[], bool]:
        return lambda: any(pattern.matches(ref) for ref in among)

    def names(pattern: NamePattern, among: list[str]) -> Callable[[], bool]:
        return lambda: any(pattern.matches(name) for name in among)

    if policy.images is not None:
        for rule in policy.images.keep:
            for j, ref in enumerate(rule.references):
                path = ("images", "keep", rule.index, "reference", j)
                yield path, ref.text, "image", refs(ref, references)
    if policy.containers is not None:
        for c_rule in policy.containers.keep:
            for j, name in enumerate(c_rule.names):
                path = ("containers", "keep", c_rule.index, "name", j)
                yield path, name.text, "container", names(name, containers)
            for j, ref in enumerate(c_rule.images):
                path = ("containers", "keep", c_rule.index, "image", j)
                yield path, ref.text, "container image", refs(ref, used)
    if policy.volumes is not None:
        for v_rule in policy.volumes.keep:
            for j, name in enumerate(v_rule.names):
                path = ("volumes", "keep", v_rule.index, "name", j)
                yield path, name.text, "volume", names(name, volumes)


def unmatched_patterns(policy: Policy, snapshot: Snapshot) -> list[Unmatched]:
    """The keep patterns that match no object of the snapshot, placed in the policy file
    (`policy.source`); at 1:1 when the file cannot be read again."""
    positions = _positions(Path(policy.source))
    found = []
    for path, text, kind, matches in _checks(policy, snapshot):
        if matches():
            continue
        line, column = _place(positions, path)
        found.append(Unmatched(policy.source, line, column, dotted(path), text, kind))
    return found


def _place(positions: dict[FieldPath, tuple[int, int]], path: FieldPath) -> tuple[int, int]:
    if path in positions:
        return positions[path]
    single = path[:-1]  # `reference: "alpine:*"`, one string rather than a list
    return positions.get(single, (1, 1))


def _positions(path: Path) -> dict[FieldPath, tuple[int, int]]:
    try:
        text = read_regular_file(path, MAX_POLICY_BYTES, "policy").decode("utf-8-sig")
        document = Document(str(path))
        compose(text, document)
    except (FileRefused, UnicodeDecodeError, Limit, yaml.YAMLError):
        return {}  # changed since it was loaded: positions are a courtesy
    return document.values
