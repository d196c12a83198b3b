"""Which layers each image has and what they weigh, as the engine itself counts them.

On a graphdriver engine (overlay2 and friends) whose data root gcd can read — it runs as root
on the host — the image configs (`image/<driver>/imagedb`) give each image's diff ids, chain ids
follow from them, and `image/<driver>/layerdb/sha256/<chain>/size` holds the very sizes that
`/system/df` adds up to `LayersSize`: the plan's bytes then match Docker's accounting exactly.
Zero API calls; results are cached per image id, since ids are content addresses.

Elsewhere (the containerd image store, a remote engine, an unreadable root) each image is one
opaque unit of its listed `Size`: exact for images that share nothing, an overestimate for
shared layers. The README says so.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class ImageLayers:
    layers: tuple[str, ...]
    sizes: tuple[int, ...]
    last_tag_time: datetime | None


def parse_go_time(text: str) -> datetime | None:
    """Go's RFC 3339 with nanoseconds (`2026-11-29T04:00:00.123456789Z`) → aware UTC."""
    value = text.strip().replace("Z", "+00:00")
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", value)
    if match is None:
        return None
    head, fraction, zone = match.groups()
    try:
        parsed = datetime.fromisoformat(head + (fraction or "")[:7] + zone)
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.year <= 1:
        return None
    return parsed.astimezone(UTC)


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

    def __init__(self) -> None:
        self._cache: dict[str, ImageLayers] = {}

    def root_for(self, info: dict[str, Any]) -> Path | None:
        root = info.get("DockerRootDir")
        driver = info.get("Driver")
        if not root or not driver or is_containerd_store(info):
            return None
        image_root = Path(root) / "image" / str(driver)
        try:
            return image_root if (image_root / "layerdb").is_dir() else None
        except OSError:
            return None

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
