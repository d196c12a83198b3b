"""Build cache on the engine side: `read_build_cache` on every shape of `GET /system/df`, and
`BuildCacheRemoval` through the executor on the fake engine (BuildKit's prune rules). The
same on real BuildKit cache: tests/integration/test_build_cache_networks.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gcd.core.plan import Decision, Plan
from gcd.core.records import EPOCH, BuildCacheRecord
from gcd.core.rules import RuleId
from gcd.engine.client import Engine
from gcd.engine.executor import execute
from gcd.engine.kinds.build_cache import read_build_cache, unit_sizes
from gcd.engine.outcomes import Outcome, OutcomeStatus
from tests.unit.builders import NOW
from tests.unit.fake_engine import FakeCacheRecord, FakeEngine, timeout

ID = "uanwsuumopjv8gd3alylrqhsb"


def plan_for(engine: FakeEngine, *records: FakeCacheRecord, bytes_each: int = 1) -> Plan:
    """Plan to prune `records`, as the engine lists them now; the plan's byte figure is
    deliberately not the engine's, so that the outcome shows whose it reports."""
    parsed = {r.id: r for r in read_build_cache(engine._build_cache_df())}
    decisions = tuple(
        Decision(parsed[r.id], RuleId.UNUSED, "unused", timedelta(days=8), bytes_each)
        for r in records
    )
    return Plan(NOW, decisions, bytes_each * len(records), bytes_each * len(records))


def run(engine: FakeEngine, plan: Plan) -> list[Outcome]:
    return list(execute(plan, engine).outcomes)


class TestReading:
    def test_the_api_1_41_shape_with_one_parent(self) -> None:
        df = {
            "BuildCache": [
                {
                    "ID": ID,
                    "Parent": "exerxmi64p357qz102vslr78e",
                    "Type": "source.local",
                    "Description": "local source for context",
                    "InUse": False,
                    "Shared": False,
                    "Size": 1982256,
                    "CreatedAt": "2026-12-01T11:53:39.27934753Z",
                    "LastUsedAt": "2026-12-01T11:53:39.445961953Z",
                    "UsageCount": 1,
                }
            ]
        }
        (record,) = read_build_cache(df)
        assert record == BuildCacheRecord(
            id=ID,
            type="source.local",
            description="local source for context",
            size_bytes=1982256,
            created=datetime(2026, 12, 1, 11, 53, 39, 279347, tzinfo=UTC),
            last_used=datetime(2026, 12, 1, 11, 53, 39, 445961, tzinfo=UTC),
            parents=("exerxmi64p357qz102vslr78e",),
            usage_count=1,
        )

    def test_the_api_1_42_shape_with_parents_and_a_record_never_used(self) -> None:
        raw: dict[str, Any] = {
            "ID": ID,
            "Parents": ["a" * 25, "b" * 25],
            "Type": "regular",
            "InUse": True,
            "Shared": True,
            "Size": 5,
            "CreatedAt": "2026-12-01T11:53:39Z",
            "LastUsedAt": None,
        }
        (record,) = read_build_cache({"BuildCache": [raw]})
        assert record.parents == ("a" * 25, "b" * 25)
        assert (record.in_use, record.shared, record.last_used) == (True, True, None)
        assert record.idle_since == record.created

    def test_docker_26_spells_parents_with_a_leading_space(self) -> None:
        raw = {"ID": ID, " Parents": ["s2wcu5ptl97ezin8xv9wccmet"], "Type": "regular"}
        (record,) = read_build_cache({"BuildCache": [raw]})
        assert record.parents == ("s2wcu5ptl97ezin8xv9wccmet",)

    @pytest.mark.parametrize(
        "df",
        [{}, {"BuildCache": None}, {"BuildCache": []}, {"BuildCache": "x"}],
        ids=["no field (no BuildKit)", "null (Podman)", "empty", "garbage"],
    )
    def test_an_engine_without_build_cache_has_no_records(self, df: dict[str, Any]) -> None:
        assert read_build_cache(df) == ()

    def test_entries_without_an_id_are_skipped_and_odd_fields_are_safe(self) -> None:
        df = {"BuildCache": [{"Size": 5}, "x", {"ID": ID, "Size": -1, "CreatedAt": "never"}]}
        (record,) = read_build_cache(df)
        assert (record.size_bytes, record.created, record.type) == (0, EPOCH, "regular")


def test_unit_sizes_count_a_shared_records_bytes_with_its_image_only() -> None:
    engine = FakeEngine()
    own = engine.add_cache_record("context", 700)
    layer = engine.add_cache_record("layer", 300, shared=True)
    assert unit_sizes(read_build_cache(engine._build_cache_df())) == {
        f"build_cache:{own.id}": 700,
        f"build_cache:{layer.id}": 0,
    }


class TestRemoval:
    def test_an_unused_record_is_pruned_by_id_and_freed_bytes_are_the_engines(self) -> None:
        engine = FakeEngine()
        doomed = engine.add_cache_record("context", 4096)
        other = engine.add_cache_record("other", 10)
        (outcome,) = run(engine, plan_for(engine, doomed, bytes_each=1))
        assert (outcome.status, outcome.freed_bytes) == (OutcomeStatus.REMOVED, 4096)
        assert engine.sent("prune_build_cache_record") == [(doomed.id, True)]
        assert list(engine.build_cache) == [other.id]

    def test_a_record_gone_before_is_already_gone_and_nothing_is_pruned(self) -> None:
        engine = FakeEngine()
        doomed = engine.add_cache_record("context")
        plan = plan_for(engine, doomed)
        del engine.build_cache[doomed.id]
        (outcome,) = run(engine, plan)
        assert outcome.status is OutcomeStatus.ALREADY_GONE
        assert engine.sent("prune_build_cache_record") == []

    def test_a_record_a_build_took_since_the_plan_is_skipped_before_the_prune(self) -> None:
        engine = FakeEngine()
        doomed = engine.add_cache_record("context")
        plan = plan_for(engine, doomed)
        doomed.in_use = True
        (outcome,) = run(engine, plan)
        assert (outcome.status, outcome.freed_bytes) == (OutcomeStatus.SKIPPED_IN_USE, 0)
        assert engine.sent("prune_build_cache_record") == []
        assert doomed.id in engine.build_cache

    def test_a_record_that_became_shared_is_skipped_changed(self) -> None:
        engine = FakeEngine()
        doomed = engine.add_cache_record("layer")
        plan = plan_for(engine, doomed)
        doomed.shared = True
        (outcome,) = run(engine, plan)
        assert outcome.status is OutcomeStatus.SKIPPED_CHANGED
        assert "shared" in outcome.detail
        assert doomed.id in engine.build_cache

    def test_an_image_sharing_it_in_the_last_round_trip_is_refused_by_the_engine(
        self,
    ) -> None:
        engine = FakeEngine()
        doomed = engine.add_cache_record("layer")
        engine.before("prune_build_cache_record", lambda: setattr(doomed, "shared", True))
        (outcome,) = run(engine, plan_for(engine, doomed))
        assert outcome.status is OutcomeStatus.SKIPPED_CHANGED
        assert outcome.detail == "the engine pruned nothing: shared with an image"
        assert doomed.id in engine.build_cache

    def test_on_api_1_41_the_engine_is_the_only_check_of_shared(self) -> None:
        engine = FakeEngine()
        engine.build_cache_by_type = False
        doomed = engine.add_cache_record("layer")
        plan = plan_for(engine, doomed)
        doomed.shared = True
        (outcome,) = run(engine, plan)
        assert outcome.status is OutcomeStatus.CONFLICT
        assert doomed.id in engine.build_cache
        # all=true (keep_shared=False) would have pruned it: why gcd sends all=false.
        assert engine.prune_build_cache_record(doomed.id, keep_shared=False).deleted == (doomed.id,)

    @pytest.mark.parametrize("record_type", ["internal", "frontend"])
    def test_types_buildkit_prunes_only_with_all_are_sent_with_all(self, record_type: str) -> None:
        engine = FakeEngine()
        doomed = engine.add_cache_record("x", 50, record_type=record_type)
        (outcome,) = run(engine, plan_for(engine, doomed))
        assert (outcome.status, outcome.freed_bytes) == (OutcomeStatus.REMOVED, 50)
        assert engine.sent("prune_build_cache_record") == [(doomed.id, False)]

    def test_a_parent_with_a_child_is_not_deleted_and_the_child_is_named(self) -> None:
        engine = FakeEngine()
        parent = engine.add_cache_record("copy", 2000)
        child = engine.add_cache_record("run", 300, parents=(parent.id,))
        (outcome,) = run(engine, plan_for(engine, parent))
        assert (outcome.status, outcome.freed_bytes) == (OutcomeStatus.CONFLICT, 0)
        assert f"still the parent of {child.id}" in outcome.detail
        assert set(engine.build_cache) == {parent.id, child.id}

    def test_child_first_then_parent_both_go_in_one_run(self) -> None:
        engine = FakeEngine()
        parent = engine.add_cache_record("copy", 2000)
        child = engine.add_cache_record("run", 300, parents=(parent.id,))
        outcomes = run(engine, plan_for(engine, child, parent))
        assert [(o.status, o.freed_bytes) for o in outcomes] == [
            (OutcomeStatus.REMOVED, 300),
            (OutcomeStatus.REMOVED, 2000),
        ]
        assert engine.build_cache == {}

    def test_a_build_taking_the_record_in_the_last_round_trip_is_told_by_the_engine(
        self,
    ) -> None:
        engine = FakeEngine()
        doomed = engine.add_cache_record("context")
        engine.before("prune_build_cache_record", lambda: setattr(doomed, "in_use", True))
        (outcome,) = run(engine, plan_for(engine, doomed))
        assert outcome.status is OutcomeStatus.SKIPPED_IN_USE
        assert "the engine pruned nothing" in outcome.detail
        assert doomed.id in engine.build_cache

    def test_a_concurrent_prune_is_a_conflict_with_the_engines_text(self) -> None:
        engine = FakeEngine()
        doomed = engine.add_cache_record("context")
        engine.prune_elsewhere()
        (outcome,) = run(engine, plan_for(engine, doomed))
        assert outcome.status is OutcomeStatus.CONFLICT
        assert outcome.detail == "a prune operation is already running"
        engine.prune_elsewhere(False)
        assert run(engine, plan_for(engine, doomed))[0].status is OutcomeStatus.REMOVED

    def test_api_1_41_prunes_without_a_full_df_and_reports_what_the_engine_did(self) -> None:
        engine = FakeEngine()
        engine.build_cache_by_type = False
        free = engine.add_cache_record("free", 700)
        held = engine.add_cache_record("held", in_use=True)
        outcomes = run(engine, plan_for(engine, free, held))
        assert [(o.status, o.freed_bytes) for o in outcomes] == [
            (OutcomeStatus.REMOVED, 700),
            (OutcomeStatus.CONFLICT, 0),
        ]
        assert "API 1.41: not re-read" in outcomes[1].detail
        assert list(engine.build_cache) == [held.id]

    def test_a_timeout_that_left_the_record_is_a_timeout(self) -> None:
        engine = FakeEngine()
        doomed = engine.add_cache_record("context")
        engine.fail("prune_build_cache_record", timeout())
        (outcome,) = run(engine, plan_for(engine, doomed))
        assert (outcome.status, outcome.freed_bytes) == (OutcomeStatus.TIMEOUT, 0)

    def test_a_timeout_whose_prune_happened_is_removed_with_the_plans_bytes(self) -> None:
        engine = FakeEngine()
        doomed = engine.add_cache_record("context", 900)
        engine.fail("prune_build_cache_record", timeout(done=True))
        (outcome,) = run(engine, plan_for(engine, doomed, bytes_each=850))
        assert (outcome.status, outcome.freed_bytes) == (OutcomeStatus.REMOVED, 850)


@pytest.mark.parametrize("bad", ["", "abc.*", "^x$", "a" * 7, "uanwsuumopjv|x"])
def test_the_facade_refuses_anything_but_a_plain_full_id_before_any_request(bad: str) -> None:
    with pytest.raises(ValueError, match="not a full build cache record id"):
        Engine("unix:///nonexistent/docker.sock").prune_build_cache_record(bad)
