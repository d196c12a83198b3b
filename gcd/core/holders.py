"""Which containers hold an object (an image, a volume, a network), split into the ones that
stay and the ones removed earlier in the same run, which release what they held. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from gcd.core.records import Container

Holders = dict[str, list[str]]


def holders(
    containers: Iterable[Container],
    released: frozenset[str],
    uses: Callable[[Container], Iterable[str]],
) -> tuple[Holders, Holders]:
    """(staying, released): for each name `uses` gives of a container, the containers that
    use it, described as `container <name> (<state>)`; `released` holds container ids."""
    staying: Holders = defaultdict(list)
    freed: Holders = defaultdict(list)
    for container in containers:
        target = freed if container.id in released else staying
        for name in uses(container):
            target[name].append(f"container {container.name} ({container.state})")
    return staying, freed
