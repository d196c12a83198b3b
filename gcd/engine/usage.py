"""Last use of images, from the engine's event stream.

Container `create` and `start` events name the reference the user typed, not the image id, so
the id is resolved through the container (`GET /containers/{id}/json` → `Image`), never by
resolving the name later (it may point elsewhere by then). Events are hints: the engine keeps
only its last 256 and drops them for slow readers, and the SDK's generator simply ends when
dockerd stops. So the stream reconnects with backoff and `since=`, and every cycle also
reconciles from the containers that exist.

Each use is reported with the state scope (engine and image store, identity.py) of the
connection its event came on, taken from `GET /info` at every (re)connection: switching the
image store restarts dockerd, which ends the stream.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from gcd.engine.api import EngineApi
from gcd.engine.identity import engine_scope
from gcd.engine.kinds.containers import SHARED_DETAILS
from gcd.errors import EngineError, EngineUnreachableError
from gcd.host.state import Scope

log = structlog.get_logger("gcd.usage")

USE_ACTIONS = ("create", "start")
MAX_BACKOFF_SECONDS = 30.0


def event_time(event: dict[str, Any]) -> datetime:
    nanos = event.get("timeNano")
    if isinstance(nanos, int):
        return datetime.fromtimestamp(nanos / 1e9, UTC)
    return datetime.fromtimestamp(int(event.get("time", 0)), UTC)


class UsageTracker:
    """Follows container events in a thread and reports (scope, image id, when) for each use."""

    def __init__(
        self,
        engine: EngineApi,
        on_use: Callable[[Scope, str, datetime], None],
        *,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.on_use = on_use
        self.on_reconnect = on_reconnect
        self._stop = threading.Event()
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self.last_event_seconds: int | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gcd-usage", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None and hasattr(stream, "close"):
            try:
                stream.close()
            except Exception as exc:  # closing a dead stream may fail any way
                log.debug("events_close_failed", error=str(exc))
        if self._thread is not None:
            self._thread.join(timeout)

    def handle(self, event: dict[str, Any], scope: Scope) -> None:
        if event.get("Type") != "container" or event.get("Action") not in USE_ACTIONS:
            return
        container_id = (event.get("Actor") or {}).get("ID") or event.get("id")
        if not container_id:
            return
        if event.get("Action") == "start":
            # Its exit time will change: the next snapshot inspects it again rather than
            # trusting the cached details (the executor re-checks `StartedAt` anyway).
            SHARED_DETAILS.forget(str(container_id))
        inspected = self.engine.inspect_container(str(container_id))
        if inspected is None:
            return  # already removed; the next snapshot reconciles
        image_id = inspected.get("Image")
        if isinstance(image_id, str) and image_id.startswith("sha256:"):
            self.on_use(scope, image_id, event_time(event))

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                self._stream = self.engine.events(
                    since=self.last_event_seconds,
                    type=["container"],
                    event=list(USE_ACTIONS),
                )
                # Asked once the stream is open, so that no event is missed meanwhile.
                scope = engine_scope(self.engine)
                self.connected.set()
                if self.last_event_seconds is None:
                    # Replay from here on the next reconnect, even if no event came before the
                    # stream broke: uses while disconnected are still in the engine's buffer.
                    self.last_event_seconds = int(time.time())
                backoff = 1.0
                for event in self._stream:
                    self.last_event_seconds = int(event_time(event).timestamp())
                    try:
                        self.handle(event, scope)
                    except EngineError as exc:
                        log.warning("usage_event_unresolved", error=str(exc))
            except (EngineUnreachableError, EngineError) as exc:
                log.warning("events_unavailable", error=str(exc), retry_seconds=backoff)
            except Exception as exc:  # a broken stream must never end tracking
                log.warning("events_stream_broken", error=str(exc), retry_seconds=backoff)
            self.connected.clear()
            if self._stop.is_set():
                break
            if self.on_reconnect is not None:
                self.on_reconnect()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
