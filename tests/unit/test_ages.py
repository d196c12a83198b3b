"""Where local age starts on day one (`gcd.engine.arrivals`, `safety.unknown_age`), what the
plan says about images without an arrival record, and details that say why and when
(`gcd.core.ages`, the kinds' details). Real engines: tests/integration/test_arrivals.py."""

from __future__ import annotations

import io
import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from gcd.config.loader import load_policy
from gcd.core.ages import AgeStart, UnknownAge, not_yet, unknown_start, unrecorded
from gcd.core.budget import Pressure
from gcd.core.evaluate import evaluate
from gcd.core.kinds.build_cache import BuildCachePolicy
from gcd.core.kinds.images import KeepRule
from gcd.core.records import Image
from gcd.core.rules import RuleId
from gcd.cycle import plan_once
from gcd.documents import plan_document
from gcd.engine.layers import LayerStore
from gcd.engine.snapshot import take_snapshot
from gcd.errors import PolicyError
from gcd.host.state import State
from gcd.render import write_plan_table
from tests.unit.builders import NOW, cache_record, days, hours, image, policy, rule, snapshot
from tests.unit.fake_engine import FakeEngine

MINUTE = timedelta(minutes=1)


def detail(plan_images: tuple[Image, ...], *rules: KeepRule, **options: Any) -> str:
    (decision,) = evaluate(snapshot(*plan_images), policy(*rules, **options), NOW).decisions
    return decision.detail


class TestWording:
    def test_min_age_names_the_threshold_and_when_the_image_becomes_eligible(self) -> None:
        assert detail((image("app:1", age=5 * MINUTE),)) == (
            "local age 5m < safety.min_age 1h: eligible in 55m"
        )

    def test_the_shared_wording(self) -> None:
        assert not_yet("x", timedelta(0), days(7), "k") == "x < k 1w: eligible in 1w"
        assert not_yet("x", hours(1), hours(1) + timedelta(seconds=0.1), "k").endswith("in 1s")

    def test_a_reference_keep_names_the_tag_that_matched(self) -> None:
        # One image tagged both `latest` and `v3`: `**:v*` keeps it by v3, and says so.
        both = image("localhost:5000/reports:latest", "localhost:5000/reports:v3")
        text = detail((both,), rule(references=("**:v*",)))
        assert text == "images.keep[0] reference **:v*: localhost:5000/reports:v3"

    def test_a_reference_and_newest_keep_names_the_tag_too(self) -> None:
        both = image("localhost:5000/reports:latest", "localhost:5000/reports:v3")
        assert detail((both,), rule(references=("**:v*",), newest=2)) == (
            "images.keep[0] reference **:v* newest 2: #1 newest in its repository "
            "(localhost:5000/reports:v3)"
        )

    def test_unkept_says_which_rules_were_tried_and_why_each_did_not_hold(self) -> None:
        old = image("app:1", age=days(30), labels={"team": "a"})
        text = detail(
            (old,),
            rule(references=("**:v*",)),
            rule(labels={"team": "b"}),
            rule(younger_than=days(7)),
            rule(used_within=days(7)),
        )
        assert text == (
            "no keep rule holds: keep[0] matches none of its names; keep[1] labels differ; "
            "keep[2] local age 4w >= 1w; keep[3] never used, local age 4w >= 1w"
        )

    def test_unkept_without_rules_says_the_list_is_empty(self) -> None:
        assert detail((image("app:1"),)) == "no keep rule holds: images.keep is empty"

    def test_newest_names_its_count_when_it_does_not_hold(self) -> None:
        older = image("app:1", age=days(30))
        newer = image("app:2", age=days(20))
        plan = evaluate(snapshot(older, newer), policy(rule(newest=1)), NOW)
        by_id = {d.key.id: d.detail for d in plan.decisions}
        assert (
            by_id[older.id]
            == "no keep rule holds: keep[0] not among the 1 newest in its repository"
        )
        assert by_id[newer.id] == "images.keep[0] newest 1: #1 newest in its repository"

    def test_never_used_is_said_as_such(self) -> None:
        young = image("app:1", age=days(2))
        assert detail((young,), rule(used_within=days(7))) == (
            "images.keep[0] used_within 1w: never used, local age 2d"
        )
        used = replace(young, last_used=NOW - hours(3))
        assert detail((used,), rule(used_within=days(7))) == (
            "images.keep[0] used_within 1w: last used 3h ago"
        )

    def test_dangling_names_its_own_threshold(self) -> None:
        assert detail((image(age=5 * MINUTE),), min_age=timedelta(0)) == (
            "dangling, local age 5m < dangling.keep_within 1h: eligible in 55m"
        )
        assert detail((image(age=days(1)),)) == "dangling, local age 1d >= dangling.keep_within 1h"


class TestUnknownAge:
    def test_first_seen_starts_now_and_created_starts_at_created(self) -> None:
        created = NOW - days(400)
        assert unknown_start(created, NOW, UnknownAge.FIRST_SEEN) == NOW
        assert unknown_start(created, NOW, UnknownAge.CREATED) == created
        assert unknown_start(None, NOW, UnknownAge.CREATED) == NOW
        assert unknown_start(NOW + days(1), NOW, UnknownAge.CREATED) == NOW

    def test_the_policy_reads_it_and_refuses_anything_else(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.yaml"
        path.write_text("version: 1\nsafety:\n  unknown_age: created\n")
        assert load_policy(path).safety.unknown_age is UnknownAge.CREATED
        path.write_text("version: 1\n")
        assert load_policy(path).safety.unknown_age is UnknownAge.FIRST_SEEN
        for wrong in ("creation", "1", "[created]"):
            path.write_text(f"version: 1\nsafety:\n  unknown_age: {wrong}\n")
            with pytest.raises(
                PolicyError,
                match=r"3:16: safety.unknown_age: expected "
                r"first_seen or created, got",
            ):
                load_policy(path)

    def test_the_summary_counts_images_without_a_record_and_says_when_they_are_eligible(
        self,
    ) -> None:
        starts = [(AgeStart.FIRST_SEEN, NOW), (AgeStart.ARRIVAL, NOW - days(3))]
        starts += [(AgeStart.RECORDED, NOW - days(9)), (AgeStart.FIRST_SEEN, NOW)]
        found = unrecorded(starts, UnknownAge.FIRST_SEEN, hours(1))
        assert found is not None
        assert (found.count, found.eligible_from) == (2, NOW + hours(1))
        assert found.describe() == (
            "2 images have no arrival record: local age starts now (first seen), eligible from "
            "2026-06-01T13:00:00+00:00 (safety.min_age); safety.unknown_age: created starts it "
            "at Created instead"
        )
        assert unrecorded(starts[1:3], UnknownAge.FIRST_SEEN, hours(1)) is None
        by_created = unrecorded([(AgeStart.CREATED, NOW - days(9))], UnknownAge.CREATED, hours(1))
        assert by_created is not None
        assert by_created.eligible_from is None
        assert by_created.describe().startswith("1 image has no arrival record: local age starts")


def _fake(tmp_path: Path) -> FakeEngine:
    return FakeEngine(data_root=tmp_path / "docker")


def _content(engine: FakeEngine, image_id: str) -> Path:
    assert engine.data_root is not None
    content = engine.data_root / "image/overlay2/imagedb/content/sha256"
    return content / image_id.removeprefix("sha256:")


class TestArrivalInTheSnapshot:
    """The fake engine writes the graphdriver's files as Docker does (tests/unit/fake_engine.py);
    their times are set here as a load, a pull or a build would leave them."""

    def test_the_image_store_s_file_starts_a_loaded_image_s_age(self, tmp_path: Path) -> None:
        engine = _fake(tmp_path)
        loaded = engine.add_image("app", "x/app:1")  # loaded: no lastUpdated
        arrived = NOW - days(12)
        os.utime(_content(engine, loaded.id), (arrived.timestamp(),) * 2)
        state = State.load(tmp_path / "s")
        (taken,) = take_snapshot(engine, state, NOW, LayerStore()).images
        assert (taken.seen_at, taken.age_from) == (arrived, AgeStart.ARRIVAL)
        state.save()
        again = take_snapshot(engine, State.load(tmp_path / "s"), NOW + days(1), LayerStore())
        assert (again.images[0].seen_at, again.images[0].age_from) == (arrived, AgeStart.RECORDED)

    def test_the_later_of_arrival_and_last_tag_wins(self, tmp_path: Path) -> None:
        engine = _fake(tmp_path)
        tagged = engine.add_image("app", "x/app:1", last_tag_time=NOW - days(2))
        os.utime(_content(engine, tagged.id), ((NOW - days(9)).timestamp(),) * 2)
        (taken,) = take_snapshot(engine, State.load(tmp_path / "s"), NOW, LayerStore()).images
        assert taken.seen_at == NOW - days(2)

    def test_a_file_time_in_the_future_is_no_evidence(self, tmp_path: Path) -> None:
        engine = _fake(tmp_path)
        loaded = engine.add_image("app", "x/app:1")
        os.utime(_content(engine, loaded.id), ((NOW + days(2)).timestamp(),) * 2)
        (taken,) = take_snapshot(engine, State.load(tmp_path / "s"), NOW, LayerStore()).images
        assert (taken.seen_at, taken.age_from) == (NOW, AgeStart.ARRIVAL)

    @pytest.mark.parametrize(
        ("choice", "start", "source"),
        [
            (UnknownAge.FIRST_SEEN, NOW, AgeStart.FIRST_SEEN),
            (UnknownAge.CREATED, datetime(2026, 1, 1, tzinfo=UTC), AgeStart.CREATED),
        ],
    )
    def test_without_the_data_root_a_loaded_image_has_no_record(
        self, tmp_path: Path, choice: UnknownAge, start: datetime, source: AgeStart
    ) -> None:
        # The unprivileged path: the data root is out of reach, the API's LastTagTime is 0001.
        engine = _fake(tmp_path)
        engine.add_image("app", "x/app:1")
        store = LayerStore(use_disk=False)
        state = State.load(tmp_path / "s")
        (taken,) = take_snapshot(engine, state, NOW, store, unknown_age=choice).images
        assert (taken.seen_at, taken.age_from) == (start, source)

    def test_without_the_data_root_a_tagged_image_starts_at_its_tag(self, tmp_path: Path) -> None:
        engine = _fake(tmp_path)
        engine.add_image("app", "x/app:1", last_tag_time=NOW - days(4))
        state = State.load(tmp_path / "s")
        (taken,) = take_snapshot(engine, state, NOW, LayerStore(use_disk=False)).images
        assert (taken.seen_at, taken.age_from) == (NOW - days(4), AgeStart.TAGGED)

    def test_the_plan_says_how_many_have_no_record_in_text_and_json(self, tmp_path: Path) -> None:
        engine = _fake(tmp_path)
        engine.add_image("a", "x/a:1")
        engine.add_image("b", "x/b:1", last_tag_time=NOW - days(4))
        state = State.load(tmp_path / "s")
        taken = take_snapshot(engine, state, NOW, LayerStore(use_disk=False))
        plan = evaluate(taken, policy(), NOW)
        assert plan.unrecorded is not None
        assert plan.unrecorded.count == 1
        out = io.StringIO()
        write_plan_table(plan, out)
        assert "AGES: 1 image has no arrival record: local age starts now" in out.getvalue()
        document = json.loads(json.dumps(plan_document(plan)))
        assert document["unrecorded_ages"]["images"] == 1
        assert document["unrecorded_ages"]["eligible_from"] == (NOW + hours(1)).isoformat()
        starts = [d["image"]["age_from"] for d in document["decisions"] if d["kind"] == "image"]
        assert sorted(starts) == ["first_seen", "tagged"]
        state.save()
        later = take_snapshot(engine, State.load(tmp_path / "s"), NOW, LayerStore(use_disk=False))
        assert evaluate(later, policy(), NOW).unrecorded is None


class TestNeverUsed:
    """An object nothing was seen using says so, never `last used <its local age> ago`."""

    def test_a_build_cache_record_never_used(self) -> None:
        section = BuildCachePolicy(unused_for=days(7))
        fresh = cache_record("r", age=5 * MINUTE)
        idle = cache_record("s", age=days(2))
        used = cache_record("t", age=days(3), used=days(1))
        plan = evaluate(
            snapshot(build_cache=(fresh, idle, used)),
            policy(images=False, build_cache=section),
            NOW,
        )
        by_id = {d.key.id: d.detail for d in plan.decisions}
        assert by_id["r"] == ("never used, created 5m ago < safety.min_age 1h: eligible in 55m")
        assert by_id["s"] == "never used, created 2d ago; unused_for 1w"
        assert by_id["t"] == "last used 1d ago; unused_for 1w"

    def test_an_image_evicted_under_pressure_that_was_never_used(self) -> None:
        young = image("app:1", age=days(20))
        plan = evaluate(
            snapshot(young),
            policy(rule(younger_than=days(60))),
            NOW,
            Pressure(900, 1000, 0, 0, 0.5, 0.4),
        )
        (decision,) = plan.decisions
        assert decision.rule is RuleId.PRESSURE
        assert "; never used, local age 2w; yields keep.younger_than" in decision.detail
        used = replace(young, last_used=NOW - days(3))
        (again,) = evaluate(
            snapshot(used),
            policy(rule(younger_than=days(60))),
            NOW,
            Pressure(900, 1000, 0, 0, 0.5, 0.4),
        ).decisions
        assert "; last used 3d ago; yields keep.younger_than" in again.detail


def test_a_cycle_logs_the_images_without_a_record_once(tmp_path: Path) -> None:
    engine = FakeEngine()  # no data root to read: loaded images have no record
    engine.add_image("a", "x/a:1")
    with capture_logs() as first:
        plan_once(engine, policy(), tmp_path / "s", NOW)  # type: ignore[arg-type]
    (event,) = (e for e in first if e["event"] == "ages_unrecorded")
    assert (event["images"], event["start"]) == (1, "first_seen")
    assert event["eligible_from"] == (NOW + hours(1)).isoformat()
    with capture_logs() as second:
        plan_once(engine, policy(), tmp_path / "s", NOW)  # type: ignore[arg-type]
    assert not [e for e in second if e["event"] == "ages_unrecorded"]
