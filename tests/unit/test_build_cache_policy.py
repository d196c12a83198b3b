"""The `build_cache:` section on hand-built snapshots: guards, age, size, and parents."""

from __future__ import annotations

from datetime import timedelta

from gcd.core.evaluate import evaluate
from gcd.core.kinds.build_cache import BuildCachePolicy
from gcd.core.plan import Plan
from gcd.core.records import BuildCacheRecord
from gcd.core.rules import RuleId
from tests.unit.builders import NOW, cache_record, days, no_busy_gate, policy, snapshot

UNUSED_7D = BuildCachePolicy(unused_for=days(7))


def plan_of(*records: BuildCacheRecord, section: BuildCachePolicy = UNUSED_7D) -> Plan:
    # Records in use here test the kind's own rules, not the busy gate (test_busy.py).
    chosen = no_busy_gate(policy(images=False, build_cache=section))
    return evaluate(snapshot(build_cache=records), chosen, NOW)


def rules(plan: Plan) -> dict[str, RuleId]:
    return {d.key.id: d.rule for d in plan.decisions}


def rule_of(record: BuildCacheRecord, section: BuildCachePolicy = UNUSED_7D) -> RuleId:
    return rules(plan_of(record, section=section))[record.id]


class TestGuards:
    def test_a_record_a_build_holds_is_kept(self) -> None:
        assert rule_of(cache_record("r", used=days(100), in_use=True)) is RuleId.IN_USE

    def test_a_record_shared_with_an_image_is_kept(self) -> None:
        plan = plan_of(cache_record("r", used=days(100), shared=True))
        assert plan.decisions[0].rule is RuleId.SHARED
        assert "frees nothing" in plan.decisions[0].detail

    def test_min_age_counts_from_the_last_use(self) -> None:
        recent = cache_record("r", age=days(100), used=timedelta(minutes=10))
        assert rule_of(recent, BuildCachePolicy(unused_for=timedelta(0))) is RuleId.MIN_AGE

    def test_a_record_created_in_the_future_is_kept(self) -> None:
        assert rule_of(cache_record("r", age=-days(1))) is RuleId.CREATED_IN_FUTURE


class TestUnusedFor:
    def test_a_record_unused_for_longer_is_deleted_with_its_bytes(self) -> None:
        plan = plan_of(cache_record("r", used=days(8), size=1234))
        assert plan.decisions[0].rule is RuleId.UNUSED
        assert plan.decisions[0].freed_bytes == 1234
        assert plan.freed_bytes == 1234

    def test_exactly_at_the_limit_is_deleted(self) -> None:
        assert rule_of(cache_record("r", used=days(7))) is RuleId.UNUSED

    def test_used_more_recently_is_kept(self) -> None:
        assert rule_of(cache_record("r", used=days(6))) is RuleId.UNUSED_WITHIN

    def test_never_used_counts_from_creation(self) -> None:
        assert rule_of(cache_record("old", age=days(8))) is RuleId.UNUSED
        assert rule_of(cache_record("new", age=days(6))) is RuleId.UNUSED_WITHIN


class TestMaxSize:
    def test_the_least_recently_used_go_until_the_cache_fits_exactly(self) -> None:
        a = cache_record("a", size=100, used=days(3))
        b = cache_record("b", size=200, used=days(2))
        c = cache_record("c", size=300, used=days(1))
        plan = plan_of(a, b, c, section=BuildCachePolicy(max_size_bytes=300))
        assert rules(plan) == {
            "a": RuleId.OVER_SIZE,
            "b": RuleId.OVER_SIZE,
            "c": RuleId.WITHIN_SIZE,
        }
        assert plan.freed_bytes == 300

    def test_one_byte_more_room_keeps_one_more_record(self) -> None:
        a = cache_record("a", size=100, used=days(3))
        b = cache_record("b", size=200, used=days(2))
        c = cache_record("c", size=300, used=days(1))
        plan = plan_of(a, b, c, section=BuildCachePolicy(max_size_bytes=500))
        assert rules(plan) == {
            "a": RuleId.OVER_SIZE,
            "b": RuleId.WITHIN_SIZE,
            "c": RuleId.WITHIN_SIZE,
        }

    def test_shared_records_do_not_count_and_in_use_ones_do(self) -> None:
        # BuildKit's keep-storage counts every record but the shared ones: 250 + 100 + 100.
        shared = cache_record("s", size=10_000, used=days(9), shared=True)
        held = cache_record("h", size=250, used=days(9), in_use=True)
        old = cache_record("o", size=100, used=days(3))
        new = cache_record("n", size=100, used=days(2))
        plan = plan_of(shared, held, old, new, section=BuildCachePolicy(max_size_bytes=350))
        assert rules(plan) == {
            "s": RuleId.SHARED,
            "h": RuleId.IN_USE,
            "o": RuleId.OVER_SIZE,
            "n": RuleId.WITHIN_SIZE,
        }

    def test_what_unused_for_deletes_already_counts_towards_the_size(self) -> None:
        stale = cache_record("stale", size=500, used=days(30))
        fresh = cache_record("fresh", size=200, used=days(1))
        plan = plan_of(stale, fresh, section=BuildCachePolicy(days(7), max_size_bytes=300))
        assert rules(plan) == {"stale": RuleId.UNUSED, "fresh": RuleId.UNUSED_WITHIN}

    def test_under_max_size_nothing_goes_and_the_keep_says_why(self) -> None:
        plan = plan_of(cache_record("a", size=100), section=BuildCachePolicy(max_size_bytes=100))
        assert plan.decisions[0].rule is RuleId.WITHIN_SIZE
        assert plan.decisions[0].detail == "within build_cache.max_size"

    def test_a_parent_goes_only_after_its_child(self) -> None:
        # The parent was used longest ago, but the engine frees nothing of it while its child
        # stays: to fit, the child must go (and the parent may then stay).
        parent = cache_record("p", size=100, used=days(10))
        child = cache_record("c", size=100, used=days(1), parents=("p",))
        plan = plan_of(parent, child, section=BuildCachePolicy(max_size_bytes=150))
        assert rules(plan) == {"p": RuleId.WITHIN_SIZE, "c": RuleId.OVER_SIZE}
        assert plan.freed_bytes == 100

    def test_a_chain_over_size_goes_leaf_first_as_far_as_needed(self) -> None:
        a = cache_record("a", size=100, used=days(30))
        b = cache_record("b", size=100, used=days(20), parents=("a",))
        c = cache_record("c", size=100, used=days(10), parents=("b",))
        plan = plan_of(a, b, c, section=BuildCachePolicy(max_size_bytes=100))
        assert rules(plan) == {
            "a": RuleId.WITHIN_SIZE,
            "b": RuleId.OVER_SIZE,
            "c": RuleId.OVER_SIZE,
        }
        assert plan.freed_bytes == 200


class TestParents:
    def test_a_parent_whose_child_stays_is_kept_and_says_so(self) -> None:
        parent = cache_record("p" * 20, used=days(30))
        child = cache_record("c" * 20, used=days(1), parents=("p" * 20,))
        plan = plan_of(parent, child)
        (d,) = (d for d in plan.decisions if d.key == parent.key)
        assert d.rule is RuleId.IN_USE
        assert d.detail == f"parent of record {'c' * 12}, which stays"

    def test_settling_runs_up_a_chain(self) -> None:
        a = cache_record("a", used=days(30))
        b = cache_record("b", used=days(30), parents=("a",))
        c = cache_record("c", used=days(30), parents=("b",), in_use=True)
        assert rules(plan_of(a, b, c)) == {
            "a": RuleId.IN_USE,
            "b": RuleId.IN_USE,
            "c": RuleId.IN_USE,
        }

    def test_children_are_deleted_before_their_parents(self) -> None:
        # Least recently used first would be a, b, c; the engine needs c, b, a.
        a = cache_record("a", used=days(30))
        b = cache_record("b", used=days(20), parents=("a",))
        c = cache_record("c", used=days(10), parents=("b",))
        plan = plan_of(a, b, c)
        assert [d.key.id for d in plan.deletions] == ["c", "b", "a"]


class TestUnmanaged:
    def test_without_a_section_the_cache_is_not_touched(self) -> None:
        snap = snapshot(build_cache=(cache_record("r", used=days(300)),))
        assert evaluate(snap, policy(), NOW).decisions[0].rule is RuleId.UNMANAGED
