"""The host of the kinds' end-to-end tests: the suite's engine with one base image, a policy
file holding every section, gcd's state directory, and plans and runs at `now`s counted from
a first plan at the real time (`Host`); the plan's decisions by name; what `GET /system/df`
says each kind holds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import pytest

from gcd.config.loader import load_policy
from gcd.core.kind import Kind
from gcd.core.plan import Decision, Plan
from gcd.core.policy import Policy
from gcd.core.rules import RuleId
from gcd.cycle import RunResult, plan_once, run_once
from gcd.engine.client import Engine
from gcd.engine.outcomes import OutcomeStatus
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, load, runnable_layer
from tests.integration.objects import make_container, remove_all

POLICY = """\
version: 1
safety: {min_age: 1s, max_delete_fraction: 1}
images:
  keep:
    - reference: ["e2e/base:*"]
containers:
  keep:
    - label: {gc.keep: "true"}
    - name: ["db-*"]
    - image: ["e2e/pinned:*"]
  remove_exited_after: 2d
  remove_services_named: ["ci-svc-*"]
volumes:
  keep:
    - label: {gc.keep: "true"}
  anonymous_unused_for: 7d
  named: ["ci-cache-*"]
  named_unused_for: 14d
build_cache:
  unused_for: 7d
  max_size: 20GB
networks:
  unused_for: 1d
"""
BASE = "e2e/base:1"
"""busybox; kept by `images.keep[0]`: every container below runs it unless said otherwise."""
STAY = {"gc.keep": "true"}
"""The label `containers.keep[0]` and `volumes.keep[0]` keep by."""
SLEEP = "exec sleep 100000"


class Host:
    """The test's engine, policy file and state directory; `t0` is the real time of the
    first plan, which every later `now` counts from."""

    def __init__(
        self,
        engine: PrivateEngine,
        api: docker.APIClient,
        facade: Engine,
        policy_file: Path,
        state_dir: Path,
    ) -> None:
        self.engine, self.api, self.facade = engine, api, facade
        self.policy_file, self.state_dir = policy_file, state_dir
        self._t0: datetime | None = None

    @property
    def t0(self) -> datetime:
        assert self._t0 is not None, "first_plan() first: it starts the clock"
        return self._t0

    @property
    def policy(self) -> Policy:
        return load_policy(self.policy_file)

    def first_plan(self) -> Plan:
        """At the real time, after every object is made: gcd's first sightings of images,
        volumes and networks, and the time later runs count from."""
        self._t0 = datetime.now(UTC)
        return plan_once(self.facade, self.policy, self.state_dir, now=self._t0).plan

    def plan(self, days: float) -> Plan:
        moment = self.t0 + timedelta(days=days)
        return plan_once(self.facade, self.policy, self.state_dir, now=moment).plan

    def run(self, days: float) -> RunResult:
        moment = self.t0 + timedelta(days=days)
        return run_once(self.facade, self.policy, self.state_dir, now=moment)

    def container(self, name: str, command: str = "true", **options: Any) -> str:
        return make_container(self.api, options.pop("image", BASE), command, name=name, **options)

    def stopped_service(self, name: str, **options: Any) -> str:
        """A service stopped by hand (`docker stop`): its restart policy does not restart it."""
        container_id = self.container(name, SLEEP, start=False, restart="unless-stopped", **options)
        self.api.start(container_id)
        self.api.stop(container_id, timeout=0)
        self.api.wait(container_id, timeout=60)
        return container_id


@pytest.fixture
def made_networks() -> list[str]:
    return []


@pytest.fixture
def host(
    clean_engine: PrivateEngine, api: docker.APIClient, made_networks: list[str], tmp_path: Path
) -> Iterator[Host]:
    """The engine with `e2e/base:1` alone (no containers, volumes, test networks), before and
    after; the policy above in a file, as `gcd check` and the command read it."""
    remove_all(api, made_networks)
    load(api, image(runnable_layer(), tags=(BASE,)))
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)
    facade = Engine(clean_engine.host)
    yield Host(clean_engine, api, facade, policy_file, tmp_path / "state")
    facade.close()
    remove_all(api, made_networks)


def of_kind(plan: Plan, kind: Kind) -> dict[str, Decision]:
    """The plan's decisions of `kind`, by name (anonymous volumes by their generated name)."""
    return {(d.subject.names or (d.key.id,))[0]: d for d in plan.decisions if d.key.kind is kind}


def decided(plan: Plan, kind: Kind) -> dict[str, tuple[RuleId, str]]:
    return {name: (d.rule, d.detail) for name, d in of_kind(plan, kind).items()}


def removed(result: RunResult, kind: Kind) -> set[str]:
    by_id = {d.key: (d.subject.names or (d.key.id,))[0] for d in result.plan.decisions}
    return {
        by_id[o.key]
        for o in result.report.outcomes
        if o.key.kind is kind and o.status is OutcomeStatus.REMOVED
    }


def df_bytes(api: docker.APIClient) -> dict[str, Any]:
    """What the engine's own `GET /system/df` says each kind holds."""
    df = api.df()
    return {
        "layers": int(df.get("LayersSize") or 0),
        "containers": {c["Id"]: int(c.get("SizeRw") or 0) for c in df.get("Containers") or ()},
        "volumes": {
            v["Name"]: int((v.get("UsageData") or {}).get("Size") or 0)
            for v in df.get("Volumes") or ()
        },
        "build_cache": {
            r["ID"]: int(r.get("Size") or 0) for r in df.get("BuildCache") or () if not r["Shared"]
        },
    }
