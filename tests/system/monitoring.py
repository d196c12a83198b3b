"""A real monitoring stack for the system tests: Prometheus, Alertmanager with a webhook
receiver written here, and node_exporter, each started directly on a loopback port with its
own config and data directory (Debian's packages; no systemd runs them here) and stopped by
pid. `fast_rules` makes a test copy of the shipped rules with short `for:` and windows; the
shipped rules themselves are unit-tested as they are (test_prometheus_rules.py)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy/prometheus/gcd.rules.yaml"
DASHBOARD = REPO / "deploy/grafana/gcd.json"
BINARIES = {
    "prometheus": "prometheus",
    "alertmanager": "prometheus-alertmanager",
    "node_exporter": "prometheus-node-exporter",
}
T = TypeVar("T")

# (pattern in the shipped rules, replacement): every one must match, so a change to the
# shipped rules that this copy no longer shortens fails here instead of slowing the test.
FAST = (
    (r"for: (5m|10m|15m|30m)", "for: 3s"),
    (r"3 \* 3600", "20"),
    (r"\[30m\]", "[15s]"),
    (r"\[1h\] offset 1h", "[8s] offset 8s"),
    (r"\[1h\]", "[8s]"),
)
FAST_FOR_SECONDS = 3.0


def missing_binaries() -> str | None:
    absent = [b for b in BINARIES.values() if shutil.which(b) is None]
    if absent:
        return f"{', '.join(absent)} missing: run scripts/bootstrap"
    return None


def fast_rules(text: str) -> str:
    for pattern, replacement in FAST:
        text, count = re.subn(pattern, replacement, text)
        assert count, f"the shipped rules no longer contain {pattern!r}: update FAST"
    return text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(what: str, probe: Callable[[], T | None], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = probe()
        except OSError:
            found = None
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.25)


def _get(url: str, timeout: float = 5.0) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:  # Prometheus says why a query is bad: keep it
        raise AssertionError(f"{url}: {exc.code} {exc.read().decode(errors='replace')}") from exc


@dataclass
class Process:
    name: str
    argv: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@dataclass
class Webhook:
    """Alertmanager's webhook receiver: every alert of every notification, in order."""

    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with hook.lock:
                    hook.received.extend(body["alerts"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def notified(self, alertname: str, instance: str, status: str) -> bool:
        with self.lock:
            return any(
                a["status"] == status
                and a["labels"].get("alertname") == alertname
                and a["labels"].get("instance") == instance
                for a in self.received
            )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Stack:
    directory: Path
    prometheus_port: int
    alertmanager_port: int
    webhook: Webhook
    processes: list[Process]

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}/api/v1"

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
        answer = _get(f"{self.api}/query?{urllib.parse.urlencode(params)}")
        assert answer["status"] == "success", answer
        return list(answer["data"]["result"])

    def values(self, expr: str, start: float, end: float) -> list[float]:
        """The first series of a range query at 1 s steps: its values in order."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "1"}
        answer = _get(f"{self.api}/query_range?{urllib.parse.urlencode(params)}")
        assert answer["status"] == "success", answer
        result = answer["data"]["result"]
        return [float(v) for _, v in result[0]["values"]] if result else []

    def alert_state(self, alertname: str, instance: str) -> str | None:
        for alert in _get(f"{self.api}/alerts")["data"]["alerts"]:
            labels = alert["labels"]
            if labels["alertname"] == alertname and labels.get("instance") == instance:
                return str(alert["state"])
        return None

    def alertmanager_has(self, alertname: str, instance: str) -> bool:
        alerts = _get(f"http://127.0.0.1:{self.alertmanager_port}/api/v2/alerts")
        return any(
            a["labels"].get("alertname") == alertname and a["labels"].get("instance") == instance
            for a in alerts
        )

    def wait_firing(self, alertname: str, instance: str, timeout: float) -> float:
        """Seconds until the alert fired in Prometheus and reached the webhook."""
        started = time.monotonic()

        def firing() -> bool:
            return self.alert_state(alertname, instance) == "firing"

        wait_until(f"{alertname} firing for {instance}", firing, timeout)
        fired = time.monotonic() - started
        wait_until(
            f"the webhook told of {alertname} firing for {instance}",
            lambda: self.webhook.notified(alertname, instance, "firing"),
            timeout,
        )
        return fired

    def wait_resolved(self, alertname: str, instance: str, timeout: float) -> float:
        started = time.monotonic()
        wait_until(
            f"{alertname} resolved for {instance}",
            lambda: self.alert_state(alertname, instance) is None,
            timeout,
        )
        resolved = time.monotonic() - started
        wait_until(
            f"the webhook told of {alertname} resolved for {instance}",
            lambda: self.webhook.notified(alertname, instance, "resolved"),
            timeout,
        )
        return resolved


def _ready(url: str) -> bool | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200 or None
    except OSError:
        return None


@contextmanager
def monitoring(
    gcd_targets: Sequence[str], node_targets: Sequence[tuple[int, Path, bool]], rules: str
) -> Iterator[Stack]:
    """Prometheus scraping `gcd_targets` (job gcd) and a node_exporter per (port, textfile
    directory, with the filesystem collector) (job node), every second, with `rules`, sending
    to an Alertmanager whose webhook is `Stack.webhook`."""
    directory = Path(tempfile.mkdtemp(prefix="gcd-monitoring-", dir="/tmp"))
    webhook = Webhook()
    prometheus_port, alertmanager_port = free_port(), free_port()
    processes: list[Process] = []
    (directory / "rules.yaml").write_text(rules)
    (directory / "alertmanager.yaml").write_text(
        yaml.safe_dump(
            {
                "route": {
                    "receiver": "hook",
                    "group_by": ["alertname", "instance"],
                    "group_wait": "0s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [
                    {
                        "name": "hook",
                        "webhook_configs": [
                            {"url": f"http://127.0.0.1:{webhook.port}/", "send_resolved": True}
                        ],
                    }
                ],
            }
        )
    )
    nodes = [f"127.0.0.1:{port}" for port, _, _ in node_targets]
    (directory / "prometheus.yaml").write_text(
        yaml.safe_dump(
            {
                "global": {
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "evaluation_interval": "1s",
                },
                "rule_files": [str(directory / "rules.yaml")],
                "alerting": {
                    "alertmanagers": [
                        {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}
                    ]
                },
                "scrape_configs": [
                    {"job_name": "gcd", "static_configs": [{"targets": list(gcd_targets)}]},
                    {"job_name": "node", "static_configs": [{"targets": nodes}]},
                ],
            }
        )
    )
    for port, textfiles, filesystem in node_targets:
        collectors = ["--collector.disable-defaults", "--collector.textfile"]
        collectors += ["--collector.filesystem"] if filesystem else []
        processes.append(
            Process(
                f"node_exporter-{port}",
                [
                    BINARIES["node_exporter"],
                    f"--web.listen-address=127.0.0.1:{port}",
                    f"--collector.textfile.directory={textfiles}",
                    *collectors,
                ],
                directory / f"node-{port}.log",
            )
        )
    processes.append(
        Process(
            "alertmanager",
            [
                BINARIES["alertmanager"],
                f"--config.file={directory / 'alertmanager.yaml'}",
                f"--storage.path={directory / 'alertmanager'}",
                f"--web.listen-address=127.0.0.1:{alertmanager_port}",
                "--cluster.listen-address=",
            ],
            directory / "alertmanager.log",
        )
    )
    processes.append(
        Process(
            "prometheus",
            [
                BINARIES["prometheus"],
                f"--config.file={directory / 'prometheus.yaml'}",
                f"--storage.tsdb.path={directory / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
                "--rules.alert.resend-delay=1s",
            ],
            directory / "prometheus.log",
        )
    )
    stack = Stack(directory, prometheus_port, alertmanager_port, webhook, processes)
    try:
        for process in processes:
            process.start()
        for url in (
            f"http://127.0.0.1:{prometheus_port}/-/ready",
            f"http://127.0.0.1:{alertmanager_port}/-/ready",
            *(f"http://{node}/metrics" for node in nodes),
        ):
            wait_until(url, lambda url=url: _ready(url), 60)  # type: ignore[misc]
        yield stack
    except BaseException:
        for process in processes:
            print(f"--- {process.name}\n{process.tail()}")
        raise
    finally:
        for process in reversed(processes):
            process.stop()
        webhook.close()
        shutil.rmtree(directory, ignore_errors=True)


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every query of the shipped dashboard."""
    board = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


def for_host(expr: str, instance: str) -> str:
    """A dashboard query as Grafana sends it with `instance` picked in the Host selector."""
    return (
        # Grafana escapes a picked value as a regex, inside a PromQL string: `\\.`
        expr.replace("$instance", re.escape(instance).replace("\\", "\\\\"))
        .replace("$__rate_interval", "10s")
        .replace("$__range", "1m")
    )


def documented_series() -> dict[str, str]:
    """Metric name → type, from the table in deploy/prometheus/README.md."""
    readme = (REPO / "deploy/prometheus/README.md").read_text()
    found = re.findall(r"^\| `((?:gcd|process)_\w+)` \| (\w+) \|", readme, re.MULTILINE)
    return dict(found)


def exposed_name(name: str, kind: str) -> str:
    """The table names counters with their `_total`; a histogram is there by its buckets."""
    return f"{name}_bucket" if kind == "histogram" else name
