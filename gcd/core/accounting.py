"""Storage units: the bytes that go when every user of a unit is gone. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from gcd.core.records import Image, Snapshot


@dataclass(frozen=True, slots=True)
class LayerAccount:
    """Counts which images use each layer, so freed bytes count shared layers once."""

    users: Counter[str]
    sizes: dict[str, int]

    @classmethod
    def of(cls, snapshot: Snapshot) -> LayerAccount:
        users: Counter[str] = Counter()
        for image in snapshot.images:
            users.update(set(image.layers))
        return cls(users, dict(snapshot.layer_sizes))

    def freed_by(self, images: Iterable[Image]) -> int:
        """Bytes of the layers used by these images and by no other image."""
        removed: Counter[str] = Counter()
        for image in images:
            removed.update(set(image.layers))
        return sum(
            self.sizes.get(layer, 0)
            for layer, count in removed.items()
            if count >= self.users[layer]
        )
