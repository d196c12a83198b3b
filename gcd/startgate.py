"""The first cycle after a start waits until Prometheus could have scraped the zeros.

`increase()` and `rate()` count an increment only between two samples of a series: a counter
that is 1 in the first sample Prometheus takes counts nothing. The daemon exports every series
at 0 from its start, but its first cycle used to run ~30 ms later, before any scrape: the
first safety abort, failure or freed byte after a start was invisible to the alerts and the
dashboard. So the first cycle (and the first disk-pressure check) waits until /metrics has
been served once, or `wait_seconds` have passed (nobody scrapes: run anyway). Later cycles do
not wait: every series then has a sample. Waiting for the scrape itself, rather than a fixed
delay, costs nothing on a scraped host: the wait ends at the first scrape, however frequent.
"""

from __future__ import annotations

import threading
import time

import structlog

log = structlog.get_logger("gcd.daemon")

__all__ = ["StartGate"]


class StartGate:
    def __init__(
        self, scraped: threading.Event | None, wait_seconds: float, stop: threading.Event
    ) -> None:
        self._scraped = scraped
        self._wait = wait_seconds if scraped is not None else 0.0
        self._deadline = time.monotonic() + self._wait
        self._stop = stop
        self._open = threading.Event()
        if self._wait <= 0:
            self._open.set()

    def is_open(self) -> bool:
        """True once /metrics was served or the wait is over; never blocks."""
        if self._open.is_set():
            return True
        assert self._scraped is not None
        if self._scraped.is_set():
            self._opened("scraped")
        elif time.monotonic() >= self._deadline:
            self._opened("not_scraped")
        return self._open.is_set()

    def wait(self) -> bool:
        """Until the gate opens (True) or the daemon stops (False)."""
        while not self.is_open():
            if self._stop.wait(0.1):
                return False
        return not self._stop.is_set()

    def _opened(self, reason: str) -> None:
        if not self._open.is_set():
            self._open.set()
            log.info("first_cycle_released", reason=reason, waited_at_most_s=self._wait)
