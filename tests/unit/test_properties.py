"""Invariants of `evaluate`, checked by Hypothesis over generated snapshots."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gcd.core.evaluate import evaluate
from gcd.core.kinds.images import KeepRule, image_of
from gcd.core.records import Container, ContainerState, Image, Snapshot
from gcd.core.rules import RuleId
from tests.unit.builders import NOW, image, image_id, policy, rule

REPOS = ("app", "web", "alpine", "registry.example.com/team/svc")


@st.composite
def images(draw: st.DrawFn) -> Image:
    index = draw(st.integers(0, 10_000))
    tags = draw(
        st.lists(
            st.tuples(st.sampled_from(REPOS), st.integers(0, 5)).map(lambda t: f"{t[0]}:{t[1]}"),
            max_size=3,
            unique=True,
        )
    )
    age = timedelta(minutes=draw(st.integers(0, 60 * 24 * 30)))
    labels = draw(st.sampled_from([{}, {"gc.keep": "true"}, {"team": "x"}]))
    layers = tuple(draw(st.lists(st.sampled_from("abcdefgh"), max_size=4, unique=True)))
    return image(*tags, age=age, seed=f"img-{index}", labels=labels, layers=layers)


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    imgs = draw(st.lists(images(), max_size=12, unique_by=lambda i: i.id))
    used = draw(st.lists(st.sampled_from(imgs), max_size=4)) if imgs else []
    containers = tuple(
        Container(image_id(f"c{n}"), f"c{n}", i.id, draw(st.sampled_from(list(ContainerState))))
        for n, i in enumerate(used)
    )
    return Snapshot(NOW, tuple(imgs), containers, dict.fromkeys("abcdefgh", 10))


keep_rules = st.one_of(
    st.builds(lambda: rule(labels={"gc.keep": "true"})),
    st.sampled_from(["app:*", "alpine:*", "**/team/*:*", "web:1"]).map(
        lambda p: rule(references=(p,))
    ),
    st.integers(1, 3).map(lambda n: rule(newest=n)),
    st.integers(1, 20).map(lambda d: rule(younger_than=timedelta(days=d))),
)


@settings(max_examples=200, deadline=None)
@given(snapshots(), st.lists(keep_rules, max_size=4))
def test_an_image_in_use_is_never_planned_for_deletion(
    snap: Snapshot, rules: list[KeepRule]
) -> None:
    plan = evaluate(snap, policy(*rules), NOW)
    in_use = snap.images_in_use()
    assert not any(d.key.id in in_use for d in plan.deletions)


@settings(max_examples=200, deadline=None)
@given(snapshots(), st.lists(keep_rules, max_size=3), keep_rules)
def test_adding_a_keep_rule_never_deletes_more(
    snap: Snapshot, rules: list[KeepRule], extra: KeepRule
) -> None:
    before = {d.key.id for d in evaluate(snap, policy(*rules), NOW).deletions}
    after = {d.key.id for d in evaluate(snap, policy(*rules, extra), NOW).deletions}
    assert after <= before


@settings(max_examples=200, deadline=None)
@given(snapshots(), st.lists(keep_rules, max_size=3))
def test_a_pinned_reference_always_survives(snap: Snapshot, rules: list[KeepRule]) -> None:
    plan = evaluate(snap, policy(rule(references=("alpine:*",)), *rules), NOW)
    for decision in plan.deletions:
        assert not any(ref.path == "library/alpine" for ref in image_of(decision).tags)


@settings(max_examples=200, deadline=None)
@given(snapshots(), st.lists(keep_rules, max_size=3))
def test_evaluation_is_deterministic_whatever_the_input_order(
    snap: Snapshot, rules: list[KeepRule]
) -> None:
    reordered = Snapshot(snap.taken_at, snap.images[::-1], snap.containers, snap.unit_sizes)
    first = evaluate(snap, policy(*rules), NOW)
    second = evaluate(reordered, policy(*rules), NOW)
    assert first == second


@settings(max_examples=200, deadline=None)
@given(snapshots(), st.lists(keep_rules, max_size=3))
def test_every_object_gets_exactly_one_decision_with_a_rule(
    snap: Snapshot, rules: list[KeepRule]
) -> None:
    plan = evaluate(snap, policy(*rules), NOW)
    assert sorted(d.key for d in plan.decisions) == sorted(r.key for r in snap.records)
    assert all(isinstance(d.rule, RuleId) for d in plan.decisions)
    # Layers unique to one image are disjoint, and all of them go with the set.
    assert plan.freed_bytes >= sum(d.freed_bytes for d in plan.deletions)
