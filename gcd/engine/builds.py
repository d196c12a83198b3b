"""Which containers the classic builder made for a Dockerfile step (the busy gate's input).

Seen on the real engine (20.10 and 26.1, `docker build` without BuildKit): for each `RUN`
the builder creates a container whose `Config.Image` is the previous step's image *id*
(`sha256:<64 hex>`, where a user's `docker run` names a reference), with a generated name, no
labels, and `Config.Healthcheck.Test == ["NONE"]` (the builder switches health checks off for
`RUN`); for `COPY`/`ADD` the container is only created, and its command is the builder's
comment `/bin/sh -c #(nop) COPY ...`. It is removed once the step is committed. So a
container is a build step when it was created within `safety.quiet_for`, from an image id,
and either runs `#(nop)` or has its health check set to `NONE`; the last needs an inspect,
made only for the few young containers created from an image id. An inspect that fails
counts as a build step: the gate then only defers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from gcd.core.records import Container
from gcd.engine.api import EngineApi
from gcd.errors import EngineDownError, EngineError, EngineNoAnswerError

log = structlog.get_logger("gcd.snapshot")

_IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
NOP = "#(nop) "


def _health_off(record: Mapping[str, Any]) -> bool:
    config = record.get("Config")
    health = config.get("Healthcheck") if isinstance(config, dict) else None
    return isinstance(health, dict) and health.get("Test") == ["NONE"]


def mark_build_steps(
    engine: EngineApi,
    containers: Sequence[Container],
    raw_containers: Sequence[Mapping[str, Any]],
    now: datetime,
    quiet_for: timedelta,
) -> tuple[Container, ...]:
    """`containers` with `build_step` set on the classic builder's step containers."""
    commands = {str(raw.get("Id")): str(raw.get("Command") or "") for raw in raw_containers}
    marked: list[Container] = []
    for container in containers:
        young = container.created is not None and now - container.created <= quiet_for
        if not young or not _IMAGE_ID.fullmatch(container.image):
            marked.append(container)
            continue
        step = NOP in commands.get(container.id, "")
        if not step:
            try:
                record = engine.inspect_container(container.id)
            except EngineDownError:
                raise
            except (EngineError, EngineNoAnswerError) as exc:
                log.warning("build_step_inspect_failed", container=container.name, error=str(exc))
                record, step = None, True
            step = step or (record is not None and _health_off(record))
        marked.append(replace(container, build_step=True) if step else container)
    return tuple(marked)
