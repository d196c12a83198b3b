"""After a run's image deletions: the containers left without their image.

Docker resolves a create's image when the request arrives and registers the container only
once it is made, and does not serialise the two against an image delete. A container whose
create was in flight while gcd deleted its image is seen neither by the engine's own in-use
check (even a delete without `force` succeeds) nor by any container list gcd sends before the
create completes. The container keeps its own layers and still starts, but its image is gone
(found by the race load, `docs/reliability.md`). Nothing gcd sends can close that window, so
it is reported instead: once per run that removed images, the container list is read again
after the creates that could have been in flight have had time to finish, and every container
of an image gcd removed in the run is logged as `image_removed_under_container` (an error)
and counted (`gcd_images_removed_under_container_total`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from gcd.core.kind import short_id
from gcd.engine.api import EngineApi
from gcd.errors import EngineError, EngineUnreachableError

log = structlog.get_logger("gcd.executor")


@dataclass(frozen=True, slots=True)
class Orphan:
    """An image gcd removed in this run, and the containers created from it meanwhile."""

    image_id: str
    containers: tuple[str, ...]


def _name(container: Mapping[str, object]) -> str:
    names = container.get("Names")
    first = names[0] if isinstance(names, list) and names else str(container.get("Id", ""))[:12]
    return f"{str(first).lstrip('/')} ({container.get('State', 'unknown state')})"


def sweep(
    engine: EngineApi,
    removed_at: Mapping[str, float],
    stop: threading.Event | None = None,
) -> tuple[Orphan, ...] | None:
    """The containers of the images in `removed_at` (image id → `time.monotonic()` of its
    removal), listed once, `engine.timeouts.settle` (2 s) after the last removal: a create
    takes milliseconds, a few hundred under load, so one that began before the delete has
    finished by then. Paid once per run that removed images; a stop cuts the wait short.
    It is also the only container check after a forced delete of a multi-tag image (a
    container created in the round trip before it): one list per run, not one per image.
    None when the list failed: such containers may have gone unreported (the run stands; the
    caller counts it in `gcd_orphan_checks_failed_total`)."""
    if not removed_at:
        return ()
    wait = engine.timeouts.settle - (time.monotonic() - max(removed_at.values()))
    if wait > 0:
        if stop is None:
            time.sleep(wait)
        else:
            stop.wait(wait)
    try:
        containers = engine.list_containers()
    except (EngineError, EngineUnreachableError) as exc:
        log.warning(
            "orphan_check_failed",
            images=len(removed_at),
            error=str(exc),
            detail="a container created while gcd deleted its image would go unreported "
            "in this run; counted in gcd_orphan_checks_failed_total",
        )
        return None
    users: dict[str, set[str]] = {}
    for container in containers:
        image_id = container.get("ImageID")
        if isinstance(image_id, str) and image_id in removed_at:
            users.setdefault(image_id, set()).add(_name(container))
    orphans = []
    for image_id, names in sorted(users.items()):
        orphans.append(Orphan(image_id, tuple(sorted(names))))
        log.error(
            "image_removed_under_container",
            image=short_id(image_id),
            containers=sorted(names),
            detail="created while gcd deleted the image; it keeps its own layers and "
            "still starts, but its image is gone",
        )
    return tuple(orphans)
