"""Per-kind timeouts, their override, and the give-up rule's bookkeeping."""

from __future__ import annotations

import errno

import pytest
import requests.exceptions
from urllib3.exceptions import ProtocolError

from gcd.engine.api import RemoveResult, RemoveStatus
from gcd.engine.kinds.reinspect import classify_removal
from gcd.engine.outcomes import OutcomeStatus, classify_after_reinspect
from gcd.engine.timeouts import TIMEOUTS_ENV, Timeouts, Wait
from gcd.engine.transport import Strikes, is_no_answer, is_refused
from gcd.errors import EngineDownError, EngineNoAnswerError, EngineUnreachableError, UsageError


def test_the_documented_defaults() -> None:
    t = Timeouts()
    assert t.seconds(Wait.PROBE) == (5.0, 10.0)
    assert t.seconds(Wait.READ) == (5.0, 30.0)
    assert t.seconds(Wait.DISK_USAGE) == (5.0, 120.0)
    assert t.seconds(Wait.REMOVE) == (5.0, 60.0)
    assert t.seconds(Wait.PRUNE) == (5.0, 120.0)
    assert t.give_up_after == 3


def test_the_environment_overrides_some_values() -> None:
    t = Timeouts.from_environment({TIMEOUTS_ENV: "read=2, remove=1.5,give_up_after=2"})
    assert t.seconds(Wait.READ) == (5.0, 2.0)
    assert t.seconds(Wait.REMOVE) == (5.0, 1.5)
    assert t.give_up_after == 2
    assert Timeouts.from_environment({}) == Timeouts()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("reed=2", "unknown key"),
        ("read=fast", "not a number"),
        ("read=0", "above 0"),
        ("read=99999", "at most"),
        ("give_up_after=1.5", "not a number"),
        ("give_up_after=0", "above 0"),
    ],
)
def test_a_malformed_override_is_a_usage_error(value: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        Timeouts.from_environment({TIMEOUTS_ENV: value})


def _timeout() -> requests.exceptions.ReadTimeout:
    return requests.exceptions.ReadTimeout("read timed out")


def _reset() -> requests.exceptions.ConnectionError:
    inner = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
    return requests.exceptions.ConnectionError(ProtocolError("Connection aborted.", inner))


def _refused() -> requests.exceptions.ConnectionError:
    inner = FileNotFoundError(errno.ENOENT, "No such file or directory")
    return requests.exceptions.ConnectionError(ProtocolError("Connection aborted.", inner))


def test_refused_and_lost_connections_are_told_apart() -> None:
    assert is_refused(_refused())
    assert not is_refused(_reset())
    assert is_no_answer(_timeout())
    assert is_no_answer(_reset())
    assert not is_no_answer(_refused())


def test_strikes_of_one_kind_in_a_row_mark_the_engine_down() -> None:
    strikes = Strikes(Timeouts(give_up_after=3))
    first = strikes.missed("DELETE /images/{id}", _timeout(), 60)
    assert type(first) is EngineNoAnswerError
    assert first.timed_out
    assert "within 60 s" in str(first)
    assert "strike 1 of 3" in str(first)
    strikes.check()  # not down: nothing raised
    strikes.missed("DELETE /images/{id}", _reset(), 60)
    third = strikes.missed("DELETE /images/{id}", _timeout(), 60)
    assert isinstance(third, EngineDownError)
    assert isinstance(third, EngineUnreachableError)  # exit 3, the daemon's "engine down"
    assert "3 times in a row" in str(third)
    with pytest.raises(EngineDownError):
        strikes.check()
    strikes.clear()
    strikes.check()


def test_an_answer_clears_the_strikes_of_its_own_kind_only() -> None:
    strikes = Strikes(Timeouts(give_up_after=2))
    strikes.missed("DELETE /images/{id}", _timeout(), 1)
    strikes.answered("GET /images/{id}/json")  # the re-inspect answering proves nothing
    assert isinstance(strikes.missed("DELETE /images/{id}", _timeout(), 1), EngineDownError)
    strikes.clear()
    strikes.missed("DELETE /images/{id}", _timeout(), 1)
    strikes.answered("DELETE /images/{id}")
    assert type(strikes.missed("DELETE /images/{id}", _timeout(), 1)) is EngineNoAnswerError


LOST = RemoveResult(RemoveStatus.CONNECTION_LOST, "connection reset")


class TestAResetAfterARemovalIsReinspected:
    """Before: a reset after a forwarded DELETE was `failed` though the object was gone."""

    def test_an_image_gone_after_a_reset_was_removed(self) -> None:
        assert classify_after_reinspect(LOST, gone=True).status is OutcomeStatus.REMOVED

    def test_an_image_still_there_after_a_reset_failed(self) -> None:
        verdict = classify_after_reinspect(LOST, gone=False)
        assert verdict.status is OutcomeStatus.FAILED
        assert "still there" in verdict.detail

    def test_any_kind_gone_after_a_reset_was_removed(self) -> None:
        verdict = classify_removal(LOST, removed="removed", gone=lambda: True, what="it")
        assert verdict.status is OutcomeStatus.REMOVED

    def test_any_kind_still_there_after_a_reset_failed(self) -> None:
        verdict = classify_removal(LOST, removed="removed", gone=lambda: False, what="it")
        assert verdict.status is OutcomeStatus.FAILED

    def test_a_re_inspect_the_engine_gave_up_on_ends_the_run(self) -> None:
        def down() -> bool:
            raise EngineDownError("gave up", timed_out=True)

        with pytest.raises(EngineDownError):
            classify_removal(LOST, removed="removed", gone=down, what="it")

    def test_a_re_inspect_without_answer_fails_this_object_only(self) -> None:
        def silent() -> bool:
            raise EngineNoAnswerError("no answer", timed_out=True)

        verdict = classify_removal(LOST, removed="removed", gone=silent, what="it")
        assert verdict.status is OutcomeStatus.FAILED
