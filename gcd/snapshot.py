"""Engine JSON → the immutable `Snapshot`, parsed once, with a constant number of API calls:
`GET /info`, `GET /images/json`, `GET /containers/json?all=1`. Layer data comes from the
engine's own databases on disk (`store_accounting`), never from per-image inspects."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from gcd.engine import Engine
from gcd.model import (
    Container,
    ContainerState,
    Image,
    Reference,
    ReferenceError,
    Snapshot,
    parse_reference,
)
from gcd.state import State
from gcd.store_accounting import LayerStore

log = structlog.get_logger("gcd.snapshot")

_NONE_REFERENCES = frozenset({"<none>:<none>", "<none>@<none>"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SHARED_STORE = LayerStore()


def parse_created(seconds: Any) -> datetime | None:
    """`Created` in Unix seconds; 0001-01-01 is -62135596800, reproducible builds use 0."""
    if not isinstance(seconds, int | float):
        return None
    try:
        return _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return None


def parse_references(values: Any) -> tuple[Reference, ...]:
    references: list[Reference] = []
    for value in values or ():
        if not isinstance(value, str) or value in _NONE_REFERENCES:
            continue
        try:
            references.append(parse_reference(value))
        except ReferenceError:
            log.warning("reference_unparsed", reference=value)
    return tuple(sorted(set(references)))


def parse_container(raw: Mapping[str, Any]) -> Container | None:
    image_id = raw.get("ImageID")
    if not isinstance(image_id, str):
        return None
    names = raw.get("Names") or [raw["Id"][:12]]
    try:
        state = ContainerState(str(raw.get("State", "")).lower())
    except ValueError:
        state = ContainerState.CREATED  # unknown states still protect their image
    return Container(id=raw["Id"], name=str(names[0]).lstrip("/"), image_id=image_id, state=state)


def take_snapshot(
    engine: Engine, state: State, now: datetime, store: LayerStore | None = None
) -> Snapshot:
    """Read the engine once; record first sightings in `state` (the caller saves it)."""
    layer_store = store or _SHARED_STORE
    info = engine.info()
    raw_images = engine.list_images()
    raw_containers = engine.list_containers()
    image_root = layer_store.root_for(info)

    images: list[Image] = []
    layer_sizes: dict[str, int] = {}
    for raw in raw_images:
        image_id = str(raw["Id"])
        size = int(raw.get("Size") or 0)
        on_disk = layer_store.layers_of(image_root, image_id) if image_root else None
        if on_disk is not None:
            layers = on_disk.layers
            layer_sizes.update(zip(on_disk.layers, on_disk.sizes, strict=True))
        else:
            layers = (image_id,)
            layer_sizes[image_id] = size
        seen_at = state.first_seen(image_id)
        if seen_at is None:
            tagged = on_disk.last_tag_time if on_disk else None
            seen_at = tagged if tagged is not None and tagged <= now else now
            state.mark_seen(image_id, seen_at)
        images.append(
            Image(
                id=image_id,
                tags=parse_references(raw.get("RepoTags")),
                digests=parse_references(raw.get("RepoDigests")),
                created=parse_created(raw.get("Created")),
                seen_at=seen_at,
                size_bytes=size,
                layers=layers,
                labels={str(k): str(v) for k, v in (raw.get("Labels") or {}).items()},
                last_used=state.last_used(image_id),
            )
        )
    containers = tuple(c for c in map(parse_container, raw_containers) if c is not None)
    return Snapshot(now, tuple(images), containers, layer_sizes)
