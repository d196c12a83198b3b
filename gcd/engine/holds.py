"""Holds on the engine (`gcd hold`, `gcd release`, `gcd holds`): what a CI job with nothing
but the Docker socket can do. No state directory, no lock, no policy (gcd.core.holds).

Holding resolves the reference once, now, to the image id: the hold protects that image even
if the tag moves later. A second hold of the same image adds another hold container (each
with its own expiry and owner; the image stays held until the last one expires or is
released), so two jobs holding one base image never shorten each other's hold.
"""

from __future__ import annotations

import getpass
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from gcd.core.holds import (
    EXPIRES_LABEL,
    HOLD_LABEL,
    NAME_PREFIX,
    OWNER_LABEL,
    REASON_LABEL,
    REFERENCE_LABEL,
    Hold,
    format_expiry,
    holds_of,
)
from gcd.core.kind import short_id
from gcd.engine.api import RemoveStatus
from gcd.engine.client import Engine
from gcd.engine.kinds.containers import parse_container
from gcd.errors import EngineError, UsageError

OWNER_ENV = "GCD_HOLD_OWNER"
JOB_ENVS = ("CI_JOB_ID", "GITHUB_RUN_ID", "BUILD_TAG")
"""The CI job a hold comes from, when the environment names one (GitLab, GitHub Actions,
Jenkins): added to the owner, so that `--all-mine` releases this job's holds only."""
FALLBACK_COMMAND = ["gcd-hold"]
"""The command of a hold container whose image has none: the engine wants one to create a
container, and a container that is never started never runs it."""
MAX_REASON = 200


def owner() -> str:
    """`$GCD_HOLD_OWNER`, else `user@host`, with ` job=<id>` when a CI job id is set."""
    given = os.environ.get(OWNER_ENV, "").strip()
    if given:
        return given
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for this uid (a container's user)
        user = f"uid{os.getuid()}"
    text = f"{user}@{socket.gethostname()}"
    job = next((os.environ[e] for e in JOB_ENVS if os.environ.get(e)), None)
    return f"{text} job={job}" if job else text


def _command(image: Mapping[str, Any]) -> list[str] | None:
    config = image.get("Config") if isinstance(image.get("Config"), dict) else {}
    assert isinstance(config, dict)
    return None if config.get("Cmd") or config.get("Entrypoint") else FALLBACK_COMMAND


def place(engine: Engine, reference: str, duration: timedelta, reason: str, now: datetime) -> Hold:
    """Hold the image `reference` names now, for `duration`. A missing image is a
    `UsageError` (exit 2): there is nothing to protect, and a job that goes on would pull or
    build it unprotected."""
    if len(reason) > MAX_REASON:
        raise UsageError(f"--reason: at most {MAX_REASON} characters, got {len(reason)}")
    image = engine.inspect_image(reference)
    if image is None or not isinstance(image.get("Id"), str):
        raise UsageError(
            f"cannot hold {reference}: no such image on this engine; pull or build it first"
        )
    image_id = str(image["Id"])
    expires = now + duration
    who = owner()
    labels = {
        HOLD_LABEL: "1",
        EXPIRES_LABEL: format_expiry(expires),
        REASON_LABEL: reason,
        OWNER_LABEL: who,
        REFERENCE_LABEL: reference,
    }
    name = f"{NAME_PREFIX}{short_id(image_id)}-{secrets.token_hex(4)}"
    created = engine.create_container(image_id, name=name, labels=labels, command=_command(image))
    return Hold(
        container_id=str(created["Id"]),
        name=name,
        image_id=image_id,
        expires=expires.replace(microsecond=0),
        reason=reason,
        owner=who,
        reference=reference,
        started=False,
    )


def current(engine: Engine) -> tuple[Hold, ...]:
    """Every hold on the engine (never-started hold containers), soonest expiry first."""
    containers = [c for c in map(parse_container, engine.list_containers()) if c is not None]
    far = datetime.max.replace(tzinfo=UTC)
    return tuple(sorted(holds_of(containers), key=lambda h: (h.expires or far, h.name)))


def matches(hold: Hold, reference: str, image_id: str | None) -> bool:
    """A hold `gcd release REF` ends: of the image REF names now, or placed under REF (its
    tag may have moved since), or whose container is REF."""
    return (
        hold.image_id == image_id
        or hold.reference == reference
        or reference in (hold.name, hold.container_id)
        or (len(reference) >= 12 and hold.container_id.startswith(reference))
    )


def release(engine: Engine, holds: Sequence[Hold]) -> list[str]:
    """Remove the hold containers, without force (a started one is no hold and answers 409);
    the names of those released. A failure is an `EngineError` naming the hold."""
    released: list[str] = []
    for hold in holds:
        result = engine.remove_container(hold.container_id)
        if result.status not in (RemoveStatus.REMOVED, RemoveStatus.NOT_FOUND):
            raise EngineError(f"releasing {hold.name} failed: {result.message}")
        released.append(hold.name)
    return released


def resolve(engine: Engine, reference: str) -> str | None:
    """The image id `reference` names now, or None."""
    image = engine.inspect_image(reference)
    return str(image["Id"]) if image is not None and isinstance(image.get("Id"), str) else None
