"""Engine JSON → the immutable `Snapshot`, parsed once, with a constant number of API calls
(plus one inspect per stopped container gcd has not seen stopped before): `GET /info`,
`GET /images/json`, `GET /containers/json?all=1`, `GET /volumes` and one `GET /system/df`.

Layers and their sizes come from the engine's own databases on disk when gcd can read them
(zero calls), else from two calls per image gcd has never seen, cached in its state
(`store_accounting` explains the sources and when bytes are an estimate).

Local age starts at `seen_at`: the first sighting recorded in the state; for an image without a
record, the engine's record of its arrival (`gcd.engine.arrivals`), else `safety.unknown_age`.
That start is recorded at once, so it never moves afterwards; the caller saves the state. The
state is bound to the engine and store `GET /info` names (`identity.py`) before anything is
read from it.

Containers and volumes: `gcd.engine.kinds.containers` and `gcd.engine.kinds.volumes` say how
they are read. Their bytes (a container's writable layer `SizeRw`, a volume's `UsageData.Size`)
exist only in `GET /system/df`, which walks every container layer and volume directory: it is
called at most once per snapshot (`read_disk_usage`), and its `BuildCache` list is the build
cache's source too. When it fails (20.10 refuses a second concurrent one) the snapshot goes on
with those sizes 0, logs `system_df_failed` at warning, and says so in `snapshot_taken`
(`sizes_known=false`): the plan's bytes for containers and volumes are then 0, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from gcd.core.ages import AgeStart, UnknownAge
from gcd.core.records import Image, Snapshot
from gcd.core.references import InvalidReferenceError, Reference, parse_reference
from gcd.engine.api import EngineApi
from gcd.engine.arrivals import age_start
from gcd.engine.builds import mark_build_steps
from gcd.engine.first_sight import prefetch
from gcd.engine.identity import engine_scope
from gcd.engine.kinds.build_cache import read_build_cache
from gcd.engine.kinds.build_cache import unit_sizes as build_cache_sizes
from gcd.engine.kinds.containers import SHARED_DETAILS, DetailsCache, read_containers
from gcd.engine.kinds.networks import read_networks
from gcd.engine.kinds.volumes import read_volumes, volume_sizes
from gcd.engine.layers import ImageLayers, LayerStore, is_containerd_store
from gcd.engine.times import parse_created
from gcd.errors import EngineDownError, EngineError, EngineNoAnswerError
from gcd.host.state import State

log = structlog.get_logger("gcd.snapshot")

_NONE_REFERENCES = frozenset({"<none>:<none>", "<none>@<none>"})
_SHARED_STORE = LayerStore()


@dataclass(slots=True)
class _ParsedLists:
    """`RepoTags`/`RepoDigests` lists parsed by the last snapshot and by this one: a warm
    cycle lists the same ones again (~7,000 parses at 1,000 images). Each snapshot keeps only
    the lists it saw (`turn`), so what left the host is forgotten; a list with a reference
    that does not parse is never kept, so its warning is logged every time."""

    last: dict[tuple[str, ...], tuple[Reference, ...]] = field(default_factory=dict)
    now: dict[tuple[str, ...], tuple[Reference, ...]] = field(default_factory=dict)

    def turn(self) -> None:
        self.last, self.now = self.now, {}

    def parse(self, values: Any) -> tuple[Reference, ...]:
        if not values:
            return ()
        key = tuple(values) if all(isinstance(value, str) for value in values) else None
        if key is not None:
            known = self.now.get(key)
            if known is None:
                known = self.last.get(key)
            if known is not None:
                self.now[key] = known
                return known
        references: list[Reference] = []
        unparsed = False
        for value in values:
            if not isinstance(value, str) or value in _NONE_REFERENCES:
                continue
            try:
                references.append(parse_reference(value))
            except InvalidReferenceError:
                unparsed = True
                log.warning("reference_unparsed", reference=value)
        parsed = tuple(sorted(set(references)))
        if key is not None and not unparsed:
            self.now[key] = parsed
        return parsed


_PARSED = _ParsedLists()


def parse_references(values: Any) -> tuple[Reference, ...]:
    return _PARSED.parse(values)


@dataclass(frozen=True, slots=True)
class DiskUsage:
    """One `GET /system/df`, read once per snapshot: the bytes only it knows."""

    known: bool
    """False: the call failed; every size below is absent (0)."""
    raw: Mapping[str, Any] = field(default_factory=dict)
    """The whole answer (its `BuildCache` list is the build cache's source)."""
    container_sizes: Mapping[str, int] = field(default_factory=dict)
    """`SizeRw` by container id."""
    volume_sizes: Mapping[str, int] = field(default_factory=dict)
    """`UsageData.Size` by volume name; -1 is 0."""


def read_disk_usage(engine: EngineApi) -> DiskUsage:
    """`GET /system/df` without the images' part (gcd has the layers already); a failure is
    logged and gives `known=False` rather than ending the snapshot. An unreachable engine
    still raises."""
    try:
        raw = engine.system_df(images=False)
    except EngineDownError:
        raise
    except (EngineError, EngineNoAnswerError) as exc:
        # 20.10 on a full disk fails the whole df writing BuildKit's metadata; the
        # containers' own sizes still come from their listing, which is what a full disk
        # needs most (engine-facts.md §0.11: containers can still be removed).
        log.warning(
            "system_df_failed",
            error=str(exc),
            detail="volume and build-cache sizes are unknown this cycle: counted as 0 bytes",
        )
        try:
            listed = engine.list_containers(sizes=True)
        except EngineDownError:
            raise
        except (EngineError, EngineNoAnswerError) as again:
            log.warning("container_sizes_failed", error=str(again))
            return DiskUsage(known=False)
        return DiskUsage(known=False, container_sizes=_sizes_rw(listed))
    return DiskUsage(True, raw, _sizes_rw(raw.get("Containers") or ()), volume_sizes(raw))


def _sizes_rw(containers: Any) -> dict[str, int]:
    return {
        str(c["Id"]): max(int(c.get("SizeRw") or 0), 0)
        for c in containers
        if isinstance(c, dict) and c.get("Id")
    }


def _layers(
    state: State,
    store: LayerStore,
    *,
    image_root: Path | None,
    image_id: str,
    size: int,
    fetched: dict[str, ImageLayers | None],
) -> ImageLayers:
    cached = state.layers(image_id)
    if image_root is not None:
        # Image ids are content addresses: layers read from the layer store once are kept in
        # the state, so a warm one-shot run reads no file per image (~30,000 at 5,000
        # images). A cached estimate (the image as one unit, from the API path when the
        # history was ambiguous) is read again from the store, which is exact.
        if cached is not None and all(key != image_id for key, _ in cached):
            return ImageLayers.of_pairs(cached)
        found = store.layers_of(image_root, image_id)
        if found is None:  # vanished since the listing (or unreadable): no per-image call
            return ImageLayers.estimate(image_id, size)
        state.record_layers(image_id, found.pairs())
        return found
    if cached is not None:
        return ImageLayers.of_pairs(cached)
    found = fetched.get(image_id)  # gcd.engine.first_sight's, None for one gone since the list
    if found is None:
        return ImageLayers.estimate(image_id, size)
    state.record_layers(image_id, found.pairs())
    return found


def take_snapshot(
    engine: EngineApi,
    state: State,
    now: datetime,
    store: LayerStore | None = None,
    *,
    details: DetailsCache | None = None,
    inspect_containers: bool = True,
    quiet_for: timedelta = timedelta(0),
    unknown_age: UnknownAge = UnknownAge.FIRST_SEEN,
) -> Snapshot:
    """Read the engine once; record first sightings (and fetched layers, and volume uses) in
    `state`, which the caller saves. `details` caches containers' inspects (the process's
    own cache by default)."""
    layer_store = _SHARED_STORE if store is None else store
    info = engine.info()
    state.bind(engine_scope(engine, info))
    raw_images = engine.list_images()
    raw_containers = engine.list_containers()
    raw_volumes = engine.list_volumes()
    usage = read_disk_usage(engine)
    image_root = layer_store.root_for(info, engine.host)
    own_bytes = not is_containerd_store(info)
    fetched = {} if image_root else prefetch(engine, state, raw_images, own_bytes=own_bytes)

    images: list[Image] = []
    _PARSED.turn()
    unit_sizes: dict[str, int] = {}
    estimated = 0
    for raw in raw_images:
        image_id = str(raw["Id"])
        size = int(raw.get("Size") or 0)
        found = _layers(
            state,
            layer_store,
            image_root=image_root,
            image_id=image_id,
            size=size,
            fetched=fetched,
        )
        unit_sizes.update(found.pairs())
        estimated += found.layers == (image_id,)
        created = parse_created(raw.get("Created"))
        seen_at, age_from = state.first_seen(image_id), AgeStart.RECORDED
        if seen_at is None:  # gcd.engine.arrivals: the engine's record of its arrival
            seen_at, age_from = age_start(
                found,
                image_id=image_id,
                image_root=image_root,
                containerd_store=not own_bytes,
                created=created,
                now=now,
                unknown_age=unknown_age,
            )
            state.mark_seen(image_id, seen_at)
        images.append(
            Image(
                id=image_id,
                tags=parse_references(raw.get("RepoTags")),
                digests=parse_references(raw.get("RepoDigests")),
                created=created,
                seen_at=seen_at,
                size_bytes=size,
                layers=found.layers,
                labels={str(k): str(v) for k, v in (raw.get("Labels") or {}).items()},
                last_used=state.last_used(image_id),
                age_from=age_from,
                parent=raw.get("ParentId") or "",
            )
        )
    layer_store.retain({image.id for image in images})
    containers = read_containers(
        engine,
        raw_containers,
        usage.container_sizes,
        SHARED_DETAILS if details is None else details,
        inspect=inspect_containers,
    )
    if quiet_for > timedelta(0):  # the busy gate's classic-build steps (gcd.engine.builds)
        containers = mark_build_steps(engine, containers, raw_containers, now, quiet_for)
    for container in containers:
        unit_sizes.update(dict.fromkeys(container.units, container.size_rw_bytes))
    volumes = read_volumes(raw_volumes, containers, usage.volume_sizes, state, now)
    for volume in volumes:
        unit_sizes.update(dict.fromkeys(volume.units, volume.size_bytes))
    build_cache = read_build_cache(usage.raw)
    unit_sizes.update(build_cache_sizes(build_cache))
    networks = read_networks(engine, state, containers, now)
    log.debug(
        "snapshot_taken",
        images=len(images),
        containers=len(containers),
        volumes=len(volumes),
        build_cache=len(build_cache),
        networks=len(networks),
        layer_source="layerdb" if image_root else "engine_api",
        estimated_images=estimated,
        sizes_known=usage.known,
    )
    return Snapshot(
        now,
        tuple(images),
        containers,
        unit_sizes,
        volumes=volumes,
        build_cache=build_cache,
        networks=networks,
    )
