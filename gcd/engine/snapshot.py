"""Engine JSON → the immutable `Snapshot`, parsed once, with a constant number of API calls:
`GET /info`, `GET /images/json`, `GET /containers/json?all=1`.

Layers and their sizes come from the engine's own databases on disk when gcd can read them
(zero calls), else from two calls per image gcd has never seen, cached in its state
(`store_accounting` explains the sources and when bytes are an estimate).

Local age starts at `seen_at`: the first sighting recorded in the state; for an image without a
record, the engine's `LastTagTime` when a source gives one (`docker tag`, builds; loaded and
pulled images have none) and it is not in the future, else `now`. That start is recorded at
once, so it never moves afterwards; the caller saves the state. The state is bound to the
engine and store `GET /info` names (`identity.py`) before anything is read from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from gcd.core.records import Container, ContainerState, Image, Snapshot
from gcd.core.references import InvalidReferenceError, Reference, parse_reference
from gcd.engine.api import EngineApi
from gcd.engine.identity import engine_scope
from gcd.engine.layers import ImageLayers, LayerStore, is_containerd_store, layers_from_engine
from gcd.host.state import State

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
        except InvalidReferenceError:
            log.warning("reference_unparsed", reference=value)
    return tuple(sorted(set(references)))


_PODMAN_STATES = {
    "stopped": ContainerState.EXITED,
    "configured": ContainerState.CREATED,
    "initialized": ContainerState.CREATED,
    "stopping": ContainerState.RUNNING,
}
"""Podman's compatible API lists its own state names (an exited container is `stopped`)."""


def parse_container(raw: Mapping[str, Any]) -> Container | None:
    image_id = raw.get("ImageID")
    if not isinstance(image_id, str) or not image_id:
        # Every engine version sends ImageID; an image named only by reference cannot be
        # protected by id, so say so rather than guess.
        log.warning("container_without_image_id", container=raw.get("Id"), image=raw.get("Image"))
        return None
    names = raw.get("Names") or [raw["Id"][:12]]
    text = str(raw.get("State", "")).lower()
    try:
        state = _PODMAN_STATES.get(text) or ContainerState(text)
    except ValueError:
        state = ContainerState.CREATED  # unknown states still protect their image
    return Container(id=raw["Id"], name=str(names[0]).lstrip("/"), image_id=image_id, state=state)


def _layers(
    engine: EngineApi,
    state: State,
    store: LayerStore,
    *,
    image_root: Path | None,
    image_id: str,
    size: int,
    own_bytes: bool,
) -> ImageLayers:
    if image_root is not None:
        # Vanished since the listing (or unreadable): no per-image call in the hot path.
        return store.layers_of(image_root, image_id) or ImageLayers.estimate(image_id, size)
    cached = state.layers(image_id)
    if cached is not None:
        return ImageLayers.of_pairs(cached)
    fetched = layers_from_engine(engine, image_id, size, own_bytes=own_bytes)
    if fetched is None:
        return ImageLayers.estimate(image_id, size)
    state.record_layers(image_id, fetched.pairs())
    return fetched


def take_snapshot(
    engine: EngineApi, state: State, now: datetime, store: LayerStore | None = None
) -> Snapshot:
    """Read the engine once; record first sightings (and fetched layers) in `state`, which the
    caller saves."""
    layer_store = _SHARED_STORE if store is None else store
    info = engine.info()
    state.bind(engine_scope(engine, info))
    raw_images = engine.list_images()
    raw_containers = engine.list_containers()
    image_root = layer_store.root_for(info, engine.host)
    own_bytes = not is_containerd_store(info)

    images: list[Image] = []
    unit_sizes: dict[str, int] = {}
    estimated = 0
    for raw in raw_images:
        image_id = str(raw["Id"])
        size = int(raw.get("Size") or 0)
        found = _layers(
            engine,
            state,
            layer_store,
            image_root=image_root,
            image_id=image_id,
            size=size,
            own_bytes=own_bytes,
        )
        unit_sizes.update(found.pairs())
        estimated += found.layers == (image_id,)
        seen_at = state.first_seen(image_id)
        if seen_at is None:
            tagged = found.last_tag_time
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
                layers=found.layers,
                labels={str(k): str(v) for k, v in (raw.get("Labels") or {}).items()},
                last_used=state.last_used(image_id),
            )
        )
    layer_store.retain({image.id for image in images})
    containers = tuple(c for c in map(parse_container, raw_containers) if c is not None)
    log.debug(
        "snapshot_taken",
        images=len(images),
        containers=len(containers),
        layer_source="layerdb" if image_root else "engine_api",
        estimated_images=estimated,
    )
    return Snapshot(now, tuple(images), containers, unit_sizes)
