"""Executor parts that need no engine: classification, timestamps, reports, early exits.

The engine used here is a real `Engine` on a socket that does not exist, so any request the
executor made would fail loudly; the deletion paths are tested on the fake engine in
test_executor_fake.py and on real engines in tests/integration/test_executor.py.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gcd.core.evaluate import evaluate
from gcd.core.kind import Key, Kind
from gcd.core.plan import Plan
from gcd.core.rules import RuleId
from gcd.engine.client import Engine, RemoveResult, RemoveStatus
from gcd.engine.executor import execute
from gcd.engine.outcomes import (
    Outcome,
    OutcomeStatus,
    Report,
    classify_after_reinspect,
)
from gcd.engine.times import parse_engine_time
from gcd.errors import RunRefusedError
from tests.unit.builders import NOW, image, policy, snapshot


def nowhere(tmp_path: Path) -> Engine:
    return Engine(f"unix://{tmp_path}/no-such-docker.sock")


def plan_of_three() -> Plan:
    images = (image("app:1"), image("app:2"), image("web:1", "web:2"))
    return evaluate(snapshot(*images), policy(min_age=timedelta(0)), NOW)


class TestClassifyAfterReinspect:
    def test_a_timeout_whose_image_is_gone_counts_as_removed(self) -> None:
        verdict = classify_after_reinspect(RemoveResult(RemoveStatus.TIMEOUT, "t"), gone=True)
        assert verdict.status is OutcomeStatus.REMOVED

    def test_a_timeout_whose_image_is_still_there_is_a_timeout(self) -> None:
        verdict = classify_after_reinspect(RemoveResult(RemoveStatus.TIMEOUT, "t"), gone=False)
        assert verdict.status is OutcomeStatus.TIMEOUT

    def test_a_server_error_whose_image_is_gone_is_already_gone(self) -> None:
        result = RemoveResult(RemoveStatus.SERVER_ERROR, "unrecognized image ID sha256:…")
        assert classify_after_reinspect(result, gone=True).status is OutcomeStatus.ALREADY_GONE

    def test_a_server_error_whose_image_is_still_there_failed(self) -> None:
        result = RemoveResult(RemoveStatus.SERVER_ERROR, "no space left on device")
        verdict = classify_after_reinspect(result, gone=False)
        assert verdict.status is OutcomeStatus.FAILED
        assert "no space left" in verdict.detail


class TestParseEngineTime:
    def test_nanoseconds_are_cut_to_microseconds(self) -> None:
        assert parse_engine_time("2026-11-29T04:12:13.123456789Z") == datetime(
            2026, 11, 29, 4, 12, 13, 123456, tzinfo=UTC
        )

    def test_the_zero_time_of_an_image_never_tagged_parses(self) -> None:
        assert parse_engine_time("0001-01-01T00:00:00Z") == datetime(1, 1, 1, tzinfo=UTC)

    def test_offsets_are_kept(self) -> None:
        parsed = parse_engine_time("2026-11-29T06:12:13.5+02:00")
        assert parsed == datetime(2026, 11, 29, 4, 12, 13, 500000, tzinfo=UTC)

    @pytest.mark.parametrize("text", [None, "", "yesterday", "2026-11-29T04:12:13", 17])
    def test_anything_else_is_none(self, text: object) -> None:
        assert parse_engine_time(text) is None


class TestReport:
    def outcome(self, status: OutcomeStatus, freed: int = 0) -> Outcome:
        key = Key(Kind.IMAGE, "sha256:" + "a" * 64)
        return Outcome(key, ("a:1",), RuleId.UNKEPT, status, "", freed)

    def test_counts_and_freed_bytes(self) -> None:
        report = Report(
            (
                self.outcome(OutcomeStatus.REMOVED, 10),
                self.outcome(OutcomeStatus.REMOVED, 5),
                self.outcome(OutcomeStatus.CONFLICT),
            )
        )
        assert report.count(OutcomeStatus.REMOVED) == 2
        assert report.count(OutcomeStatus.TIMEOUT) == 0
        assert report.freed_bytes == 15
        assert report.failed == ()

    def test_failed_and_timeout_need_attention(self) -> None:
        failed = self.outcome(OutcomeStatus.FAILED)
        timeout = self.outcome(OutcomeStatus.TIMEOUT)
        report = Report((failed, self.outcome(OutcomeStatus.ALREADY_GONE), timeout))
        assert report.failed == (failed, timeout)


class TestEarlyExits:
    def test_a_refused_plan_raises_before_any_request(self, tmp_path: Path) -> None:
        plan = replace(plan_of_three(), refusal="the plan deletes 3 of 3 images")
        with pytest.raises(RunRefusedError, match="3 of 3"):
            execute(plan, nowhere(tmp_path))

    def test_a_stop_before_the_run_attempts_nothing(self, tmp_path: Path) -> None:
        stop = threading.Event()
        stop.set()
        seen: list[Outcome] = []
        report = execute(plan_of_three(), nowhere(tmp_path), stop=stop, on_outcome=seen.append)
        assert [o.status for o in report.outcomes] == [OutcomeStatus.NOT_ATTEMPTED] * 3
        assert report.aborted is None
        assert list(report.outcomes) == seen

    def test_an_unreachable_engine_aborts_the_run_with_nothing_attempted(
        self, tmp_path: Path
    ) -> None:
        plan = plan_of_three()
        with capture_logs() as logs:
            report = execute(plan, nowhere(tmp_path))
        assert report.aborted is not None
        assert "unreachable" in report.aborted
        assert [o.status for o in report.outcomes] == [OutcomeStatus.NOT_ATTEMPTED] * 3
        assert [o.key for o in report.outcomes] == [d.key for d in plan.deletions]
        per_image = [e for e in logs if e["event"] in {"image_removed", "image_skipped"}]
        assert len(per_image) == 3
