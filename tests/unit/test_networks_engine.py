"""Networks on the engine side: `read_networks` (records, used by any container in any state,
first sighting and last use in gcd's state) and `NetworkRemoval` through the executor on the
fake engine, which removes a network a stopped container is attached to, as Docker does. The
same on a real engine: tests/integration/test_build_cache_networks.py."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gcd.core.plan import Decision, Plan
from gcd.core.records import Container, ContainerState, Network
from gcd.core.rules import RuleId
from gcd.engine.api import RemoveStatus
from gcd.engine.executor import execute
from gcd.engine.kinds.networks import KIND, attached_networks, read_networks
from gcd.engine.outcomes import Outcome, OutcomeStatus
from gcd.host.state import Scope, State
from tests.unit.builders import NOW
from tests.unit.fake_engine import FakeEngine, FakeNetwork, timeout

SCOPE = Scope("fake", "graphdriver/overlay2 /var/lib/docker")


@pytest.fixture
def state(tmp_path: Path) -> State:
    return State.load(tmp_path, SCOPE)


def containers(engine: FakeEngine) -> tuple[Container, ...]:
    """The engine's containers as the snapshot makes them (by hand until it fills
    `networks`): attachments from `NetworkSettings.Networks`."""
    return tuple(
        Container(
            id=raw["Id"],
            name=raw["Names"][0].lstrip("/"),
            image_id=raw.get("ImageID", ""),
            state=ContainerState(raw["State"]),
            networks=attached_networks(raw),
        )
        for raw in engine.list_containers()
    )


def by_name(networks: tuple[Network, ...]) -> dict[str, Network]:
    return {n.name: n for n in networks}


def plan_for(*networks: Network) -> Plan:
    decisions = tuple(Decision(n, RuleId.UNUSED, "unused", timedelta(days=2), 0) for n in networks)
    return Plan(NOW, decisions, 0, 0)


def removal(engine: FakeEngine, state: State, network: FakeNetwork) -> Outcome:
    (record,) = (
        n for n in read_networks(engine, state, containers(engine), NOW) if n.id == network.id
    )
    (outcome,) = execute(plan_for(record), engine).outcomes
    return outcome


class TestReading:
    def test_records_builtins_and_a_user_network(self, state: State) -> None:
        engine = FakeEngine()
        engine.create_network("ci-net", labels={"team": "ci"})
        found = by_name(read_networks(engine, state, (), NOW))
        assert sorted(found) == ["bridge", "ci-net", "host", "none"]
        assert [n for n, r in found.items() if r.is_builtin] == ["bridge", "host", "none"]
        ci = found["ci-net"]
        assert (ci.driver, ci.scope, dict(ci.labels), ci.endpoints) == (
            "bridge",
            "local",
            {"team": "ci"},
            0,
        )
        assert (ci.seen_at, ci.last_used, ci.created) == (NOW, None, engine.clock)

    def test_a_never_started_container_counts_by_the_networks_name(self, state: State) -> None:
        engine = FakeEngine()
        network = engine.create_network("ci-net")
        created = engine.create_container(None, "job")
        engine.attach(created.id, network.id)
        (raw,) = engine.list_containers()
        assert raw["NetworkSettings"]["Networks"] == {"ci-net": {"NetworkID": "", "EndpointID": ""}}
        assert attached_networks(raw) == ("ci-net",)
        found = by_name(read_networks(engine, state, containers(engine), NOW))
        assert found["ci-net"].last_used == NOW

    def test_an_exited_container_counts_by_id(self, state: State) -> None:
        engine = FakeEngine()
        network = engine.create_network("ci-net")
        engine.create_network("ci-net-2")
        exited = engine.create_container(None, "job", state="exited")
        engine.attach(exited.id, network.id)
        assert attached_networks(engine.list_containers()[0]) == ("ci-net", network.id)
        found = by_name(read_networks(engine, state, containers(engine), NOW))
        assert (found["ci-net"].last_used, found["ci-net-2"].last_used) == (NOW, None)

    def test_first_sighting_stays_last_use_moves_and_gone_networks_are_forgotten(
        self, tmp_path: Path, state: State
    ) -> None:
        engine = FakeEngine()
        network = engine.create_network("ci-net")
        doomed = engine.create_network("gone-net")
        job = engine.create_container(None, "job", state="exited")
        engine.attach(job.id, network.id)
        read_networks(engine, state, containers(engine), NOW)
        state.save()
        engine.remove_container(job.id)
        del engine.networks[doomed.id]
        later = NOW + timedelta(days=3)
        again = State.load(tmp_path, SCOPE)
        found = by_name(read_networks(engine, again, containers(engine), later))
        assert (found["ci-net"].seen_at, found["ci-net"].last_used) == (NOW, NOW)
        assert "gone-net" not in found
        again.save()
        assert State.load(tmp_path, SCOPE).first_seen(doomed.id, kind=KIND) is None
        assert State.load(tmp_path, SCOPE).first_seen(network.id, kind=KIND) == NOW

    def test_podman_lists_its_own_default_network_as_a_builtin_bridge(self, state: State) -> None:
        found = by_name(read_networks(FakeEngine(podman=True), state, (), NOW))
        assert list(found) == ["bridge"]
        assert found["bridge"].is_builtin


class TestRemoval:
    def test_an_unused_network_is_removed_by_id(self, state: State) -> None:
        engine = FakeEngine()
        network = engine.create_network("ci-net")
        outcome = removal(engine, state, network)
        assert outcome.status is OutcomeStatus.REMOVED
        assert engine.sent("remove_network") == [(network.id,)]
        assert network.id not in engine.networks

    def test_a_stopped_container_attached_keeps_it_which_the_engine_would_not(
        self, state: State
    ) -> None:
        engine = FakeEngine()
        network = engine.create_network("ci-net")
        job = engine.create_container(None, "job", state="exited")
        engine.attach(job.id, network.id)
        (record,) = (n for n in read_networks(engine, state, (), NOW) if n.id == network.id)
        (outcome,) = execute(plan_for(record), engine).outcomes  # planned as if unused
        assert (outcome.status, outcome.detail) == (OutcomeStatus.SKIPPED_IN_USE, "attached: job")
        assert engine.sent("remove_network") == []
        # Why the guard is gcd's own: the engine removes it (Docker checks running endpoints).
        assert engine.remove_network(network.id).status is RemoveStatus.REMOVED

    def test_podman_refuses_for_a_stopped_container_too(self, state: State) -> None:
        engine = FakeEngine(podman=True)
        network = engine.create_network("ci-net")
        job = engine.create_container(None, "job", state="exited")
        engine.attach(job.id, network.id)
        result = engine.remove_network(network.id)
        assert result.status is RemoveStatus.CONFLICT
        assert result.message.endswith("network is being used")

    def test_a_running_endpoint_in_the_fresh_inspect_keeps_it(self, state: State) -> None:
        engine = FakeEngine()
        network = engine.create_network("ci-net")
        plan = plan_for(*(n for n in read_networks(engine, state, (), NOW) if n.id == network.id))
        job = engine.create_container(None, "job", state="running")
        engine.attach(job.id, network.id)
        (outcome,) = execute(plan, engine).outcomes
        assert (outcome.status, outcome.detail) == (OutcomeStatus.SKIPPED_IN_USE, "endpoints: job")

    def test_a_container_started_in_the_last_round_trip_is_the_engines_conflict(
        self, state: State
    ) -> None:
        engine = FakeEngine()
        network = engine.create_network("ci-net")

        def start_one() -> None:
            job = engine.create_container(None, "job", state="running")
            engine.attach(job.id, network.id)

        engine.before("remove_network", start_one)
        outcome = removal(engine, state, network)
        assert outcome.status is OutcomeStatus.CONFLICT
        assert outcome.detail == (
            f"error while removing network: network ci-net id {network.id} has active endpoints"
        )
        assert network.id in engine.networks

    def test_gone_before_is_already_gone(self, state: State) -> None:
        engine = FakeEngine()
        network = engine.create_network("ci-net")
        engine.before("inspect_network", lambda: engine.networks.pop(network.id))
        assert removal(engine, state, network).status is OutcomeStatus.ALREADY_GONE
        assert engine.sent("remove_network") == []

    @pytest.mark.parametrize("name", ["bridge", "host", "none"])
    def test_a_builtin_network_is_never_removed_even_if_planned(
        self, state: State, name: str
    ) -> None:
        engine = FakeEngine()
        (builtin,) = (n for n in engine.networks.values() if n.name == name)
        outcome = removal(engine, state, builtin)
        assert outcome.status is OutcomeStatus.SKIPPED_CHANGED
        assert "never removed" in outcome.detail
        assert engine.sent("remove_network") == []

    def test_a_swarm_network_is_never_removed_even_if_planned(self, state: State) -> None:
        engine = FakeEngine()
        overlay = engine.create_network("ingress-ish", driver="overlay")
        overlay.scope = "swarm"
        assert removal(engine, state, overlay).status is OutcomeStatus.SKIPPED_CHANGED
        assert overlay.id in engine.networks

    def test_a_timeout_whose_removal_happened_is_removed(self, state: State) -> None:
        engine = FakeEngine()
        network = engine.create_network("ci-net")
        engine.fail("remove_network", timeout(done=True))
        assert removal(engine, state, network).status is OutcomeStatus.REMOVED

    def test_a_timeout_that_left_it_is_a_timeout(self, state: State) -> None:
        engine = FakeEngine()
        network = engine.create_network("ci-net")
        engine.fail("remove_network", timeout())
        assert removal(engine, state, network).status is OutcomeStatus.TIMEOUT
