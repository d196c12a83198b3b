"""The daemon's buffer of image uses seen in the event stream, written to the state in batches.

The event reader must never block (the engine drops events for slow readers), so uses are
buffered here and written by `flush` (before each cycle, every 30 s, and at exit).
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

import structlog

from gcd.errors import GcdError
from gcd.host.state import Scope, State

log = structlog.get_logger("gcd.uses")


class UseBuffer:
    def __init__(self, state_dir: Path, state_lock: threading.Lock) -> None:
        self.state_dir = state_dir
        self.state_lock = state_lock
        self.pending: dict[tuple[Scope, str], datetime] = {}
        self._lock = threading.Lock()

    def record(self, scope: Scope, image_id: str, when: datetime) -> None:
        with self._lock:
            previous = self.pending.get((scope, image_id))
            self.pending[scope, image_id] = max(previous, when) if previous else when
        log.debug("image_used", image=image_id[7:19], at=when.isoformat())

    def flush(self, *, lock_timeout: float | None = None) -> None:
        """Write the buffered uses. With `lock_timeout`, a cycle holding the state lock longer
        (stuck in a request at shutdown) is not waited for: each write is its own SQLite
        transaction and a use is a MAX upsert, so writing beside the cycle loses nothing."""
        with self._lock:
            uses, self.pending = self.pending, {}
        if not uses:
            return
        locked = self.state_lock.acquire(timeout=-1 if lock_timeout is None else lock_timeout)
        try:
            for scope in sorted({scope for scope, _ in uses}):
                state = State.load(self.state_dir, scope)
                for (of, image_id), when in uses.items():
                    if of == scope:
                        state.mark_used(image_id, when)
                state.save()
        except GcdError:
            # Kept for the next flush: writing a use twice changes nothing (MAX).
            with self._lock:
                for key, when in uses.items():
                    newer = self.pending.get(key)
                    self.pending[key] = max(newer, when) if newer else when
            raise
        finally:
            if locked:
                self.state_lock.release()

    def flush_quietly(self, lock_timeout: float | None = None) -> None:
        try:
            self.flush(lock_timeout=lock_timeout)
        except GcdError as exc:
            log.warning("usage_flush_failed", error=str(exc))
