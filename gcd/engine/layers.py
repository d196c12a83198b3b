"""Which layers each image has and what they weigh, as the engine itself counts them.

Three sources, best first; layer keys are chain ids, so every source agrees on what is shared:

1. The graphdriver's own databases (overlay2 and friends), when the engine is local and gcd can
   read its data root (as root): the image configs (`image/<driver>/imagedb`) give each image's
   diff ids, chain ids follow, and `image/<driver>/layerdb/sha256/<chain>/size` holds the very
   sizes `/system/df` adds up to `LayersSize`, so the plan's bytes match Docker's exactly. Zero
   API calls; cached per image id, since ids are content addresses.
2. The Engine API, when the data root is out of reach (the shipped units run as an unprivileged
   user): `GET /images/{id}/json` (`RootFS.Layers`) and `GET /images/{id}/history`, whose
   non-empty entries carry each layer's size as Docker counts it. At most two calls per image
   *never seen before*, often one (gcd.engine.first_sight: on a graphdriver engine the listed
   `Size` is the sum of the layers, so one unknown layer is a subtraction), a few at a time;
   the caller caches the result in gcd's state, keyed by image id.
3. An estimate: the image as one opaque unit of its listed `Size`, keyed by its id. Used when
   the history cannot be matched to the layers (empty-layer entries mixed with zero-byte layers),
   on an image that vanished mid-snapshot, and for the containerd image store's odd entries.
   Exact for images that share nothing, an overcount for shared layers.

On the containerd image store (detected from `GET /info`) source 1 does not exist and source 2
is exact too, in the store's own unit: the history gives each layer's snapshot usage (4 KiB
blocks, directories included), snapshots are keyed by chain id, and `LayersSize` is the sum of
all snapshots. What it does not count, and gcd neither, are the content store's blobs
(compressed layers, manifests, configs), freed too when no other image shares them; the
filesystem's own count (`statvfs`) shows them. On Podman the history gives each layer's
uncompressed tar size, as Podman counts it, plus each image's manifest and config
(gcd.engine.first_sight's own bytes). docs/engines.md has the matrix.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gcd.engine.times import parse_go_time


@dataclass(frozen=True, slots=True)
class ImageLayers:
    """An image's layer keys, bottom first, with their bytes; `last_tag_time` is the engine's
    `Metadata.LastTagTime` where the source has it."""

    layers: tuple[str, ...]
    sizes: tuple[int, ...]
    last_tag_time: datetime | None = None

    @classmethod
    def estimate(cls, image_id: str, size_bytes: int) -> ImageLayers:
        return cls((image_id,), (size_bytes,))

    @classmethod
    def of_pairs(cls, pairs: tuple[tuple[str, int], ...]) -> ImageLayers:
        return cls(tuple(key for key, _ in pairs), tuple(size for _, size in pairs))

    def pairs(self) -> tuple[tuple[str, int], ...]:
        return tuple(zip(self.layers, self.sizes, strict=True))


def chain_ids(diff_ids: list[str]) -> list[str]:
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            digest = hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest()
            chains.append(f"sha256:{digest}")
    return chains


def is_containerd_store(info: dict[str, Any]) -> bool:
    status = info.get("DriverStatus") or []
    return any(
        isinstance(pair, list) and len(pair) == 2 and "snapshotter" in str(pair[1])
        for pair in status
    )


class LayerStore:
    """Reads the graphdriver's image and layer databases under `DockerRootDir`."""

    def __init__(self, *, use_disk: bool = True) -> None:
        self.use_disk = use_disk
        self._cache: dict[str, ImageLayers] = {}

    def root_for(self, info: dict[str, Any], host: str) -> Path | None:
        """The image root to read, or None when it is not this host's or not readable."""
        root = info.get("DockerRootDir")
        driver = info.get("Driver")
        local = host.startswith("unix://") or "://" not in host
        if not (self.use_disk and local and root and driver) or is_containerd_store(info):
            return None
        image_root = Path(root) / "image" / str(driver)
        try:
            readable = (image_root / "layerdb" / "sha256").is_dir() and os.access(
                image_root / "imagedb" / "content" / "sha256", os.R_OK | os.X_OK
            )
        except OSError:
            return None
        return image_root if readable else None

    def layers_of(self, image_root: Path, image_id: str) -> ImageLayers | None:
        cached = self._cache.get(image_id)
        if cached is not None:
            return cached
        digest = image_id.removeprefix("sha256:")
        try:
            config = json.loads((image_root / "imagedb/content/sha256" / digest).read_bytes())
            chains = chain_ids(list(config["rootfs"]["diff_ids"]))
            sizes = tuple(
                int(
                    (image_root / "layerdb/sha256" / c.removeprefix("sha256:") / "size").read_text()
                )
                for c in chains
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        tagged = image_root / "imagedb/metadata/sha256" / digest / "lastUpdated"
        try:
            last_tag_time = parse_go_time(tagged.read_text())
        except OSError:
            last_tag_time = None
        result = ImageLayers(tuple(chains), sizes, last_tag_time)
        self._cache[image_id] = result
        return result

    @property
    def cached_images(self) -> int:
        return len(self._cache)

    def retain(self, image_ids: set[str]) -> None:
        """Forget images that are gone, so a long-running daemon's cache stays bounded."""
        for image_id in self._cache.keys() - image_ids:
            del self._cache[image_id]


def sizes_from_history(history: list[dict[str, Any]], count: int) -> tuple[int, ...] | None:
    """Layer sizes, bottom first, from `/history` (newest first), or None when ambiguous.

    The API does not say which entries are empty layers (`ENV`, `CMD`…). Either there are as
    many entries as layers, or the non-zero entries are exactly the layers; otherwise a
    zero-byte layer hides among empty entries and its position is unknown.
    """
    entries = [e.get("Size") for e in reversed(history)]
    sizes = [s for s in entries if type(s) is int and s >= 0]
    if len(sizes) != len(entries):
        return None
    if len(sizes) == count:
        return tuple(sizes)
    positive = tuple(s for s in sizes if s > 0)
    return positive if len(positive) == count else None
