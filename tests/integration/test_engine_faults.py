"""`gcd plan` and `gcd run --once` against a faulty engine: the fault proxy in front of the
suite's engine garbles answers, hangs requests, resets connections and answers 500. Each
time: no traceback, the documented exit code, nothing a rule keeps removed (checked on the
engine itself afterwards), and the run bounded in time.

Before (main at d099374): a garbled answer was a traceback and exit 1; a hung request held
gcd 60 s per object; a reset after a forwarded DELETE was `failed` for a removed image and
ended the run as "unreachable"; a malformed `--host` was "unreachable", exit 3."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import pytest

from gcd.engine.client import Engine
from gcd.engine.timeouts import TIMEOUTS_ENV
from tests.figures import Figure, record
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load
from tests.integration.proxy import EngineProxy, Fault, Match, deleting
from tests.integration.state_seed import engine_state

AREA = "engine faults"
POLICY = """\
version: 1
safety: {min_age: 1h, max_delete_fraction: 1}
images:
  keep:
    - reference: ["keep/*:*"]
"""
KEPT = ("keep/a:1", "keep/b:1")
DOOMED = ("doomed/a:1", "doomed/b:1", "doomed/c:1", "doomed/d:1")
FAST = "connect=2,probe=5,read=1,disk_usage=5,remove=1,prune=1,give_up_after=3"
"""Short bounds (GCD_ENGINE_TIMEOUTS), so that a hang costs a second, not a minute."""


@dataclass(frozen=True)
class Host:
    """The suite's engine with kept and doomed images, all older than `min_age` to gcd, and a
    created container of a kept image; the policy file and the state directory."""

    engine: PrivateEngine
    api: docker.APIClient
    policy: Path
    state: Path
    kept: tuple[str, ...]
    doomed: tuple[str, ...]
    container: str

    def gcd(self, host: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "gcd", "--host", host, "--state-dir", str(self.state)]
        return subprocess.run(
            [*command, "--log-format", "json", *args, "--policy", str(self.policy)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    def present(self) -> set[str]:
        return {str(i["Id"]) for i in self.api.images()}

    def container_present(self) -> bool:
        return any(c["Id"] == self.container for c in self.api.containers(all=True))

    @property
    def at_risk(self) -> int:
        """What the policy keeps: the kept images and the container (the policy has no
        containers section, so gcd must never touch it)."""
        return len(self.kept) + 1

    def wrongly_removed(self) -> int:
        """Kept objects gone, by the engine's own listing (not gcd's report)."""
        gone = sum(1 for i in self.kept if i not in self.present())
        return gone + (0 if self.container_present() else 1)


@pytest.fixture
def host(clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path) -> Host:
    specs = [image(layer(4_000, name), tags=(name,)) for name in (*KEPT, *DOOMED)]
    ids = load(api, *specs)
    kept, doomed = tuple(ids[: len(KEPT)]), tuple(ids[len(KEPT) :])
    created = api.create_container(
        kept[0], command=["true"], host_config=api.create_host_config(network_mode="none")
    )
    state_dir = tmp_path / "state"
    state = engine_state(api, state_dir)
    for image_id in ids:
        state.mark_seen(image_id, datetime.now(UTC) - timedelta(days=2))
    state.save()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return Host(clean_engine, api, policy, state_dir, kept, doomed, str(created["Id"]))


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TIMEOUTS_ENV, FAST)


def _no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    assert "Traceback" not in done.stdout


def _failures(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    return [e for e in lines if e.get("event") == "command_failed"]


def _get(path: str) -> Match:
    def match(method: str, requested: str) -> bool:
        route = requested.split("?", maxsplit=1)[0]
        return method == "GET" and route.endswith(path)

    return match


def _after_first(match: Match) -> Match:
    """`match`, from its second matching request on: the snapshot's own one passes."""
    seen = itertools.count()

    def later(method: str, path: str) -> bool:
        return match(method, path) and next(seen) > 0

    return later


def _outcomes(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    document = json.loads(done.stdout)
    return {str(o["id"]): str(o["status"]) for o in document["outcomes"]}


GARBLED = [
    ("/containers/json", '{"message": "x"}', "valid list"),
    ("/containers/json", "null", "valid list"),
    ("/containers/json", '[{"Id": "c", "Names": "not a list"}]', "Names"),
    ("/images/json", '[{"Id": "sha256:1", "Size": "big"}]', "Size"),
    ("/images/json", '[{"Size": 1}]', "entry 1: Id: missing"),
    ("/images/json", '{"Id": "sha256:1"}', "valid list"),
    ("/info", "[]", "valid dictionary"),
    ("/volumes", '{"Volumes": [{"Name": 3}]}', "Name"),
    ("/networks", '{"Id": "n"}', "valid list"),
    ("/version", "[1]", "valid dictionary"),
    ("/images/json", '[{"Id": ', "could not be read"),
]


@pytest.mark.parametrize(("path", "body", "said"), GARBLED)
def test_a_garbled_answer_is_an_engine_error_and_nothing_is_removed(
    host: Host, path: str, body: str, said: str
) -> None:
    before = host.present()
    with EngineProxy(host.engine.socket) as proxy:
        # Answered by the proxy itself: the engine streams some answers chunked (`/info`),
        # which the proxy passes through as they come rather than garble.
        proxy.fault(_get(path), Fault.answer(200, body))
        for command in (("plan",), ("run", "--once")):
            done = host.gcd(proxy.host, *command)
            _no_traceback(done)
            assert done.returncode == 1, done.stderr
            (failure,) = _failures(done)
            assert failure["type"] == "EngineError"
            assert f"GET {path}" in failure["error"]
            assert said in failure["error"]
            assert host.present() == before
    assert host.wrongly_removed() == 0
    record(
        Figure(
            area=AREA,
            scenario=f"garbled GET {path}: {body[:24]}",
            at_risk=host.at_risk,
            wrongly_removed=host.wrongly_removed(),
            faults=2,
            inputs=2,
        )
    )


@pytest.mark.core
def test_a_truncated_answer_is_an_engine_error(host: Host) -> None:
    with EngineProxy(host.engine.socket) as proxy:
        proxy.fault(_get("/images/json"), Fault.truncate())
        done = host.gcd(proxy.host, "run", "--once")
    _no_traceback(done)
    assert done.returncode == 1, done.stderr
    (failure,) = _failures(done)
    assert "GET /images/json: the engine's answer could not be read" in failure["error"]
    assert set(host.doomed) <= host.present()
    assert host.wrongly_removed() == 0
    record(
        Figure(
            area=AREA,
            scenario="truncated GET /images/json",
            at_risk=host.at_risk,
            wrongly_removed=host.wrongly_removed(),
            faults=1,
            inputs=1,
        )
    )


NOT_FOUND = '{"message": "content digest sha256:5bdc: not found"}'
"""What the containerd store answered a listing while a daemon's cycle deleted an image."""


@pytest.mark.core
def test_a_listing_that_answers_404_in_a_race_is_sent_again(host: Host) -> None:
    with EngineProxy(host.engine.socket) as proxy:
        proxy.fault(_get("/images/json"), Fault.answer(404, NOT_FOUND), times=2)
        done = host.gcd(proxy.host, "plan", "-o", "json")
        proxy.fault(_get("/images/json"), Fault.answer(404, NOT_FOUND), times=4)
        refused = host.gcd(proxy.host, "plan")
    _no_traceback(done)
    assert done.returncode == 0, done.stderr
    retried = [line for line in done.stderr.splitlines() if "engine_listing_retried" in line]
    assert len(retried) == 2
    assert json.loads(done.stdout)["document"] == "plan"
    assert refused.returncode == 1, refused.stderr  # a listing that keeps failing is an error
    (failure,) = _failures(refused)
    assert failure["error"].startswith("GET /images/json failed: content digest"), failure
    assert host.wrongly_removed() == 0
    record(
        Figure(
            area=AREA,
            scenario="GET /images/json answers 404 (containerd store race), retried",
            at_risk=host.at_risk,
            wrongly_removed=host.wrongly_removed(),
            faults=6,
            inputs=2,
        )
    )


def test_garbled_inspects_fail_each_object_and_the_run_goes_on(host: Host) -> None:
    """The executor's re-inspect answers `[1]`: each doomed image is `failed`, none is
    deleted, the run reaches its end (exit 1: some failed), and the kept stay."""
    with EngineProxy(host.engine.socket) as proxy:
        inspect = lambda m, p: m == "GET" and "/images/sha256:" in p  # noqa: E731
        proxy.fault(inspect, Fault.answer(200, "[1]"))
        done = host.gcd(proxy.host, "run", "--once", "-o", "json")
    _no_traceback(done)
    assert done.returncode == 1, done.stderr
    assert set(_outcomes(done).values()) == {"failed"}
    assert set(host.doomed) <= host.present()
    assert host.wrongly_removed() == 0
    record(
        Figure(
            area=AREA,
            scenario="garbled image inspects during a run",
            at_risk=host.at_risk,
            wrongly_removed=host.wrongly_removed(),
            faults=len(host.doomed),
            inputs=len(host.doomed),
        )
    )


@pytest.mark.core
def test_a_listing_hung_in_the_snapshot_ends_the_run_within_its_bound(
    host: Host, fast: None
) -> None:
    with EngineProxy(host.engine.socket) as proxy:
        proxy.fault(_get("/containers/json"), Fault.hang())
        started = time.monotonic()
        done = host.gcd(proxy.host, "run", "--once")
        elapsed = time.monotonic() - started
    _no_traceback(done)
    assert done.returncode == 3, done.stderr
    (failure,) = _failures(done)
    assert failure["type"] == "EngineNoAnswerError"
    assert "GET /containers/json got no answer within 1 s" in failure["error"]
    assert elapsed < 15
    assert set(host.doomed) <= host.present()
    assert host.wrongly_removed() == 0
    record(
        Figure(
            area=AREA,
            scenario="GET /containers/json hangs in the snapshot",
            at_risk=host.at_risk,
            wrongly_removed=host.wrongly_removed(),
            faults=1,
        )
    )


def test_a_container_listing_hung_after_the_deletions_costs_one_timeout(
    host: Host, fast: None
) -> None:
    """The executor lists no containers before a single-tag delete (the engine's own 409
    guards it); the run's one later listing is the sweep for images removed under a container.
    Hung, it costs one read timeout and a warning, not the run: the deletions stand."""
    with EngineProxy(host.engine.socket) as proxy:
        proxy.fault(_after_first(_get("/containers/json")), Fault.hang())
        started = time.monotonic()
        done = host.gcd(proxy.host, "run", "--once", "-o", "json")
        elapsed = time.monotonic() - started
    _no_traceback(done)
    assert done.returncode == 0, done.stderr
    assert sorted(_outcomes(done).values()) == ["removed"] * len(host.doomed)
    assert "orphan_check_failed" in done.stderr
    assert elapsed < 20
    assert not set(host.doomed) & host.present()
    assert host.wrongly_removed() == 0
    record(
        Figure(
            area=AREA,
            scenario="GET /containers/json hangs after the deletions",
            at_risk=host.at_risk,
            wrongly_removed=host.wrongly_removed(),
            faults=1,
        )
    )


@pytest.mark.core
def test_hung_deletes_are_re_inspected_and_the_run_gives_up_after_three(
    host: Host, fast: None
) -> None:
    with EngineProxy(host.engine.socket) as proxy:
        proxy.fault(deleting, Fault.hang())
        started = time.monotonic()
        done = host.gcd(proxy.host, "run", "--once", "-o", "json")
        elapsed = time.monotonic() - started
        sent = [path for method, path in proxy.requests if method == "DELETE"]
    # The proxy closed without forwarding the hung requests: nothing was deleted.
    _no_traceback(done)
    assert done.returncode == 3, done.stderr
    ordered = [o["status"] for o in json.loads(done.stdout)["outcomes"]]
    # The four doomed images are deleted at once (Engine.removal_workers), so all four DELETEs
    # are in flight before the first strike and each hangs. A timeout that comes while the
    # engine still has strikes left is re-inspected (`timeout`: still there); the third strike
    # marks it down, and every deletion whose timeout comes then is `failed`, with no
    # re-inspect and no further request: never a fifth DELETE, never a retry.
    assert len(DOOMED) == Engine.removal_workers
    assert 3 <= len(sent) <= Engine.removal_workers, sent
    assert set(ordered) <= {"timeout", "failed"}, ordered
    assert "failed" in ordered, ordered
    assert ordered.count("timeout") <= 2, ordered  # give_up_after=3: the third is not re-read
    assert elapsed < 20
    assert set(host.doomed) <= host.present()
    assert host.wrongly_removed() == 0
    record(
        Figure(
            area=AREA,
            scenario="DELETE hangs: 3 strikes, then not attempted",
            at_risk=host.at_risk,
            wrongly_removed=host.wrongly_removed(),
            faults=3,
        )
    )


@pytest.mark.core
def test_a_reset_after_a_forwarded_delete_is_re_inspected_as_removed(host: Host) -> None:
    with EngineProxy(host.engine.socket) as proxy:
        proxy.fault(deleting, Fault.reset(after_forwarding=True), times=1)
        done = host.gcd(proxy.host, "run", "--once", "-o", "json")
    _no_traceback(done)
    assert done.returncode == 0, done.stderr
    outcomes = _outcomes(done)
    assert set(outcomes.values()) == {"removed"}, outcomes
    details = [o["detail"] for o in json.loads(done.stdout)["outcomes"]]
    (lost,) = [d for d in details if "re-inspected" in d]  # the one whose answer was lost
    assert "lost its connection" in lost
    assert not set(host.doomed) & host.present()
    assert host.wrongly_removed() == 0
    record(
        Figure(
            area=AREA,
            scenario="connection reset after a DELETE reached the engine",
            at_risk=host.at_risk,
            wrongly_removed=host.wrongly_removed(),
            faults=1,
            removed=len(outcomes),
        )
    )


@pytest.mark.core
def test_a_500_on_a_delete_fails_that_image_only_and_nothing_is_forced(host: Host) -> None:
    with EngineProxy(host.engine.socket) as proxy:
        proxy.fault(deleting, Fault.answer(500, '{"message": "injected"}'), times=1)
        done = host.gcd(proxy.host, "run", "--once", "-o", "json")
        deletes = [path for method, path in proxy.requests if method == "DELETE"]
    _no_traceback(done)
    assert done.returncode == 1, done.stderr
    assert sorted(_outcomes(done).values()) == ["failed", "removed", "removed", "removed"]
    assert not any("force=True" in path or "force=1" in path for path in deletes)
    assert len(host.present() & set(host.doomed)) == 1
    assert host.wrongly_removed() == 0
    record(
        Figure(
            area=AREA,
            scenario="HTTP 500 on one DELETE",
            at_risk=host.at_risk,
            wrongly_removed=host.wrongly_removed(),
            faults=1,
            removed=3,
        )
    )


SECRET = "s3cr3t"


def _closed_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


BAD_HOSTS = ["tcp://", "tcp://127.0.0.1", "foo://bar", "/x.sock", ""]


def test_malformed_hosts_and_credentials_are_usage_errors_that_never_echo_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    state = tmp_path / "state"
    with_secret = f"tcp://user:{SECRET}@127.0.0.1:{_closed_port()}"
    tried = 0
    cases = [(a, ["plan"]) for a in [*BAD_HOSTS, f"ssh://user:{SECRET}@host"]]
    cases += [
        (with_secret, ["plan"]),
        (with_secret, ["run", "--once"]),
        ("tcp://", ["run", "--once"]),
    ]
    for address, command in cases:
        base = [sys.executable, "-m", "gcd", "--host", address, "--state-dir", str(state)]
        done = subprocess.run(
            [*base, *command, "--policy", str(policy)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        tried += 1
        _no_traceback(done)
        assert done.returncode == 2, (address, done.stderr)
        assert "Accepted forms" in done.stderr
        assert SECRET not in done.stderr + done.stdout
    monkeypatch.setenv("DOCKER_HOST", with_secret)
    done = subprocess.run(
        [sys.executable, "-m", "gcd", "--state-dir", str(state), "plan", "--policy", str(policy)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert SECRET not in done.stderr + done.stdout
    record(Figure(area=AREA, scenario="malformed --host / DOCKER_HOST", inputs=tried + 1))


@pytest.mark.parametrize("address", ["tcp://", f"tcp://user:{SECRET}@127.0.0.1:1"])
def test_the_daemon_refuses_a_malformed_host_at_once(tmp_path: Path, address: str) -> None:
    """Before: "engine unreachable", retried forever, the password in every retry's log."""
    from tests.integration.daemon_process import DaemonProcess  # noqa: PLC0415

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    with DaemonProcess(address, policy, tmp_path / "state") as daemon:
        daemon.wait_for("command_failed", timeout=20)
        code = daemon.process.wait(20)
    assert code == 2
    assert SECRET not in "".join(daemon.raw)
    record(
        Figure(
            area=AREA,
            scenario="daemon, --host " + ("with a password" if SECRET in address else address),
            inputs=1,
        )
    )
