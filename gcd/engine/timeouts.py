"""How long gcd waits for the engine, per kind of request, and when a run gives up on it.

A stalled engine used to hold every request for the SDK's one 60 s timeout, image after image
(500 deletions ≈ 8 h). Each kind of request now has its own bound, sized to what the engine
really does for it (README, "When the engine fails"):

| request                                       | waits at most |
|-----------------------------------------------|---------------|
| connecting (any request)                      | 5 s           |
| `/_ping`, `/version`, `/info`                 | 10 s          |
| lists and inspects, image history             | 30 s          |
| `GET /system/df` (walks every layer, volume)  | 120 s         |
| `DELETE` of an image, container, volume, net  | 60 s          |
| `POST /build/prune` of one record             | 120 s         |

A bound is for the engine's silence (urllib3's read timeout): an answer that keeps coming is
not cut. `GET /events` is a stream and waits for its next event without bound (it is closed
when gcd stops).

The give-up rule: a request that gets no answer in time, or a removal whose connection is lost
after it was sent, is a *strike* for its kind of request (say `DELETE /images/{id}`); an
answer to that kind clears its strikes. At `give_up_after` (3) strikes in a row of one kind
the engine is marked *down* for the rest of the run: no further request is sent, the run
stops, the rest of its plan is `not_attempted`, and it exits 3 (engine unreachable). A read
the snapshot needs ends the run at its first strike (exit 3): there is no plan without it. A
refused connection, or a read whose connection is lost (dockerd stopped), ends the run at
once, as before.

After a run that removed images, gcd waits `settle` (2 s) and lists the containers once more
(`gcd.engine.orphans`).

`GCD_ENGINE_TIMEOUTS` overrides the values, e.g. `connect=1,read=2,remove=2,give_up_after=2`
(a test and tuning knob; the keys are the fields of `Timeouts`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any

from gcd.errors import UsageError

__all__ = ["TIMEOUTS_ENV", "Timeouts", "Wait"]

TIMEOUTS_ENV = "GCD_ENGINE_TIMEOUTS"
_MAX_SECONDS = 3600.0
_MAX_STRIKES = 100


class Wait(StrEnum):
    """The kinds of request, each with its own bound (a field of `Timeouts`)."""

    PROBE = "probe"
    READ = "read"
    DISK_USAGE = "disk_usage"
    REMOVE = "remove"
    PRUNE = "prune"


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 5.0
    probe: float = 10.0
    read: float = 30.0
    disk_usage: float = 120.0
    remove: float = 60.0
    prune: float = 120.0
    give_up_after: int = 3
    settle: float = 2.0
    """Not a timeout: how long after a run's last image deletion gcd lists the containers
    again, to find any whose create was in flight during a delete (`gcd.engine.orphans`)."""

    def seconds(self, wait: Wait) -> tuple[float, float]:
        """`(connect, read)` for requests' `timeout=`."""
        read: float = getattr(self, wait.value)
        return (self.connect, read)

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Timeouts:
        """The defaults, overridden by `GCD_ENGINE_TIMEOUTS`; a malformed value is a usage
        error (exit 2), not silently the default."""
        text = (os.environ if environ is None else environ).get(TIMEOUTS_ENV, "").strip()
        if not text:
            return cls()
        names = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for item in text.split(","):
            name, _, raw = item.partition("=")
            name = name.strip()
            if name not in names:
                raise UsageError(
                    f"{TIMEOUTS_ENV}: unknown key {name[:40]!r}; known: {', '.join(sorted(names))}"
                )
            values[name] = _number(name, raw.strip())
        return replace(cls(), **values)


def _number(name: str, raw: str) -> float | int:
    try:
        value = int(raw) if name == "give_up_after" else float(raw)
    except ValueError:
        raise UsageError(f"{TIMEOUTS_ENV}: {name}={raw[:40]!r} is not a number") from None
    limit = _MAX_STRIKES if name == "give_up_after" else _MAX_SECONDS
    if not 0 < value <= limit:
        raise UsageError(f"{TIMEOUTS_ENV}: {name} must be above 0 and at most {limit:g}")
    return value
