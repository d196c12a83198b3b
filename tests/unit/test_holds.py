"""Holds in the core (keep.hold on the image and its hold container, an expired hold deleted
and its image released in the same plan, never yielding to pressure, not counted in the delete
fraction), the `--for` range, the commands' parsing, the owner and the gauge."""

from __future__ import annotations

import argparse
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from gcd.arguments import build_parser
from gcd.core.budget import Pressure
from gcd.core.evaluate import evaluate
from gcd.core.holds import (
    EXPIRES_LABEL,
    HOLD_LABEL,
    OWNER_LABEL,
    REASON_LABEL,
    format_expiry,
    parse_expiry,
)
from gcd.core.plan import Plan
from gcd.core.records import Container, ContainerState, Image
from gcd.core.rules import RuleId
from gcd.engine import holds as engine_holds
from gcd.engine.kinds.containers import not_an_expired_hold
from gcd.holds_cli import hold_duration
from gcd.metrics.definitions import Metrics
from tests.unit.builders import NOW, container, containers_section, image, policy, snapshot


def hold(of: Image, expires_in: timedelta, name: str = "gcd-hold-x", **over: str) -> Container:
    labels = {
        HOLD_LABEL: "1",
        EXPIRES_LABEL: format_expiry(NOW + expires_in),
        REASON_LABEL: "stage 3",
        OWNER_LABEL: "ci@runner job=7",
        **over,
    }
    return container(of, name, ContainerState.CREATED, exited=None, labels=labels)


def rules(plan: Plan) -> dict[str, RuleId]:
    return {d.key.id: d.rule for d in plan.decisions}


APP = image("app:1")
OTHER = image("other:1")


@pytest.mark.parametrize("containers_managed", [False, True])
def test_an_unexpired_hold_keeps_its_image_and_itself(containers_managed: bool) -> None:
    held = hold(APP, timedelta(hours=2))
    pol = policy(containers=containers_section() if containers_managed else None)
    plan = evaluate(snapshot(APP, OTHER, containers=(held,)), pol, NOW)
    assert rules(plan) == {APP.id: RuleId.HOLD, held.id: RuleId.HOLD, OTHER.id: RuleId.UNKEPT}
    [on_image] = [d for d in plan.decisions if d.key.id == APP.id]
    assert on_image.detail.startswith("hold gcd-hold-x until ")
    assert "owner ci@runner job=7; reason 'stage 3'" in on_image.detail


def test_an_expired_hold_goes_first_and_releases_its_image_in_the_same_plan() -> None:
    held = hold(APP, -timedelta(seconds=1))
    plan = evaluate(snapshot(APP, OTHER, containers=(held,)), policy(), NOW)
    assert rules(plan) == {
        held.id: RuleId.HOLD_EXPIRED,
        APP.id: RuleId.UNKEPT,
        OTHER.id: RuleId.UNKEPT,
    }
    assert plan.deletions[0].key.id == held.id  # containers first: the image is free then
    [on_image] = [d for d in plan.decisions if d.key.id == APP.id]
    assert "released by container gcd-hold-x (created)" in on_image.detail


def test_two_holds_of_one_image_keep_it_until_the_last_expires() -> None:
    old, new = hold(APP, -timedelta(minutes=1), "a"), hold(APP, timedelta(hours=1), "b")
    plan = evaluate(snapshot(APP, containers=(old, new)), policy(), NOW)
    assert rules(plan) == {old.id: RuleId.HOLD_EXPIRED, new.id: RuleId.HOLD, APP.id: RuleId.HOLD}


def test_a_started_hold_container_is_no_hold() -> None:
    started = container(APP, "gcd-hold-y", ContainerState.EXITED, labels={HOLD_LABEL: "1"})
    plan = evaluate(snapshot(APP, containers=(started,)), policy(), NOW)
    assert rules(plan)[APP.id] is RuleId.IN_USE
    assert rules(plan)[started.id] is RuleId.UNMANAGED


def test_an_unreadable_expiry_keeps_the_hold() -> None:
    held = hold(APP, timedelta(0), **{EXPIRES_LABEL: "tomorrow"})
    plan = evaluate(snapshot(APP, containers=(held,)), policy(), NOW)
    assert rules(plan) == {held.id: RuleId.HOLD, APP.id: RuleId.HOLD}
    assert "an unreadable expiry" in plan.decisions[0].detail


def test_a_hold_never_yields_to_pressure() -> None:
    held = hold(APP, timedelta(hours=1))
    pressure = Pressure(99, 100, 0, 0, high=0.8, low=0.5, critical=0.95)
    plan = evaluate(snapshot(APP, containers=(held,)), policy(), NOW, pressure)
    assert rules(plan) == {held.id: RuleId.HOLD, APP.id: RuleId.HOLD}


def test_expired_holds_do_not_count_in_the_containers_delete_fraction() -> None:
    expired = tuple(hold(APP, -timedelta(hours=1), f"h{i}") for i in range(3))
    kept = container(OTHER, "web", ContainerState.RUNNING)
    pol = policy(max_fraction=0.5, containers=containers_section())
    plan = evaluate(snapshot(APP, OTHER, containers=(*expired, kept)), pol, NOW)
    assert plan.refusal is None
    assert sum(d.rule is RuleId.HOLD_EXPIRED for d in plan.decisions) == 3


def test_expiry_labels_are_rfc3339_utc() -> None:
    assert format_expiry(NOW) == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert parse_expiry(format_expiry(NOW)) == NOW.replace(microsecond=0)
    assert parse_expiry("2026-12-01T17:00:00") is None  # no zone: not an instant
    assert parse_expiry("") is None


@pytest.mark.parametrize(
    ("text", "seconds"), [("1s", 1), ("90m", 5400), ("2h", 7200), ("30d", 2592000)]
)
def test_hold_durations_in_range(text: str, seconds: int) -> None:
    assert hold_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["0s", "31d", "5w", "2 hours", "-1h", ""])
def test_hold_durations_out_of_range_or_malformed(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        hold_duration(text)


def test_the_commands_parse() -> None:
    parser = build_parser()
    args = parser.parse_args(["hold", "app:1", "base:2", "--for", "2h", "--reason", "ci"])
    assert (args.references, args.duration, args.reason) == (
        ["app:1", "base:2"],
        timedelta(hours=2),
        "ci",
    )
    assert parser.parse_args(["release", "--all-mine"]).all_mine
    assert parser.parse_args(["release", "app:1"]).references == ["app:1"]
    assert parser.parse_args(["release", "app:1", "--any-owner"]).any_owner
    assert parser.parse_args(["holds", "--output", "json"]).output == "json"
    for wrong in (["hold", "app:1"], ["release"], ["release", "app:1", "--all-mine"]):
        with pytest.raises(SystemExit):
            parser.parse_args(wrong)


def test_the_owner_names_the_ci_job(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (engine_holds.OWNER_ENV, *engine_holds.JOB_ENVS):
        monkeypatch.delenv(name, raising=False)
    plain = engine_holds.owner()
    assert "@" in plain
    assert " job=" not in plain
    monkeypatch.setenv("CI_JOB_ID", "4711")
    assert engine_holds.owner() == f"{plain} job=4711"
    monkeypatch.setenv(engine_holds.OWNER_ENV, "team-a")
    assert engine_holds.owner() == "team-a"


def test_the_holds_gauge_counts_active_and_expired() -> None:
    holds = (hold(APP, timedelta(hours=1), "a"), hold(OTHER, -timedelta(hours=1), "b"))
    plan = evaluate(snapshot(APP, OTHER, containers=holds), policy(), NOW)
    registry = CollectorRegistry()
    Metrics(registry).record_plan(plan, {})
    assert registry.get_sample_value("gcd_holds", {"state": "active"}) == 1
    assert registry.get_sample_value("gcd_holds", {"state": "expired"}) == 1
    kept = {"kind": "image", "rule": "keep.hold"}
    assert registry.get_sample_value("gcd_kept", kept) == 1


def _inspected(
    labels: dict[str, str], status: str = "created", started: str = ""
) -> dict[str, object]:
    return {
        "Config": {"Labels": labels},
        "State": {"Status": status, "StartedAt": started or "0001-01-01T00:00:00Z"},
    }


def test_the_executor_removes_a_hold_only_if_the_fresh_record_is_still_an_expired_hold() -> None:
    past = {HOLD_LABEL: "1", EXPIRES_LABEL: "2000-01-01T00:00:00Z"}
    assert not_an_expired_hold(_inspected(past)) is None
    future = {**past, EXPIRES_LABEL: "2999-01-01T00:00:00Z"}
    assert "is not past" in str(not_an_expired_hold(_inspected(future)))
    assert "no longer labelled" in str(not_an_expired_hold(_inspected({})))
    started = _inspected(past, "exited", "2026-12-01T10:00:00Z")
    assert "was started" in str(not_an_expired_hold(started))
