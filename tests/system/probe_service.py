"""Stand-in for `gcd daemon`, run under the shipped gcd.service's sandbox in a container.

Does what the daemon needs from that sandbox, with gcd's own modules and dependencies: loads
its compiled extensions (re2, pydantic-core, PyYAML: MemoryDenyWriteExecute=, the system call
filter), reaches the engine socket (DynamicUser + SupplementaryGroups=docker, ProtectSystem=),
writes the state directory, serves and scrapes metrics on loopback (RestrictAddressFamilies=,
IPAddressAllow=), feeds the watchdog from a thread, and speaks
sd_notify (READY, STATUS, RELOADING on SIGHUP, STOPPING on SIGTERM). With PROBE_WEDGE=1 it
stops feeding the watchdog after READY=1. Each step is one JSON line on stdout (the journal).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request
from pathlib import Path
from types import FrameType

import pydantic
import re2
import yaml
from prometheus_client import CollectorRegistry, Counter, start_http_server

from gcd.engine.client import Engine
from gcd.sdnotify import Notifier, watchdog_interval_seconds

STATE_DIR = Path(os.environ.get("STATE_DIRECTORY", "/var/lib/gcd"))


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}, default=str), flush=True)


def feed_watchdog(notifier: Notifier, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        notifier.watchdog()


def main() -> int:
    notifier = Notifier()
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            notifier.reloading(time.monotonic_ns() // 1000)
            emit("probe_reloaded")
            notifier.ready("reloaded")
        else:
            stop.set()

    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    assert re2.compile("app-.*").fullmatch("app-1")
    yaml.safe_load("a: 1")
    pydantic.TypeAdapter(int).validate_python(1)
    emit("probe_imports", uid=os.getuid(), groups=os.getgroups())

    engine = Engine()
    version = engine.version()
    emit("probe_engine", version=version.get("Version"), images=len(engine.list_images()))

    marker = STATE_DIR / "probe.json"
    marker.write_text(json.dumps({"pid": os.getpid()}))
    emit("probe_state_written", path=str(marker), mode=oct(marker.stat().st_mode & 0o777))

    registry = CollectorRegistry()
    Counter("gcd_probe", "probe counter", registry=registry).inc()
    server, _thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        scraped = "gcd_probe_total 1.0" in response.read().decode()
    emit("probe_metrics", url=url, scraped=scraped)

    wedged = os.environ.get("PROBE_WEDGE") == "1"
    interval = watchdog_interval_seconds()
    if interval is not None and not wedged:
        threading.Thread(target=feed_watchdog, args=(notifier, interval, stop), daemon=True).start()
    notifier.ready("probe ready")
    emit("probe_ready", watchdog_interval=interval, wedged=wedged)

    stop.wait()
    notifier.stopping()
    server.shutdown()
    emit("probe_stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
