"""Which image deletions may race in the engine's own parent walk, and so must not run
beside each other (the pooled executor, `gcd.engine.executor`).

Deleting an image the classic builder made (one with a `ParentId`) also deletes its untagged
parents, the previous steps' images, once their last child is gone (moby
`daemon/images/image_delete.go`, `imageDeleteHelper` with `prune`). Two such walks at once
can answer 404, 409 or 500 for a child they did delete — seen on 20.10, where the run then
counted one child's bytes as freed — or each leave the parents to the other, and a walk can
meet a parent that its own request is deleting.
"""

from __future__ import annotations

from dataclasses import dataclass

from gcd.core.plan import Decision
from gcd.core.records import Image

__all__ = ["Chain"]


@dataclass(frozen=True, slots=True)
class Chain:
    """Where an image sits in the engine's image store, as far as the snapshot tells."""

    parent: bool
    """Built by the classic builder on a previous step's image (the listing's `ParentId`)."""
    bottom: str | None
    """Its bottom layer, which every image of its chain has first; None when its layers are
    an estimate (unknown)."""

    @classmethod
    def of(cls, decision: Decision) -> Chain | None:
        image = decision.subject
        if not isinstance(image, Image):
            return None
        known = bool(image.layers) and image.layers[0] != image.id
        return cls(bool(image.parent), image.layers[0] if known else None)

    def races(self, other: Chain | None) -> bool:
        """Whether deleting both at once may race: only between images of one chain (the
        same bottom layer) when one of them has a parent; unknown layers could be any
        chain."""
        if other is None or not (self.parent or other.parent):
            return False
        return self.bottom is None or other.bottom is None or self.bottom == other.bottom
