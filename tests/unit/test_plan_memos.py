"""The warm plan's memos (issue 16) give the answers they would compute, and stay bounded:
a pattern's answers per reference, the snapshot's parsed `RepoTags` lists."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from gcd.core import patterns
from gcd.core.patterns import Pattern
from gcd.core.references import parse_reference
from gcd.engine import snapshot
from gcd.engine.snapshot import parse_references


def test_a_pattern_answers_as_its_regex_does_and_forgets_past_two_generations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(patterns, "MEMO_LIMIT", 4)
    pattern = Pattern.compile("team/**")
    references = [parse_reference(f"{repo}/app:{n}") for n in range(6) for repo in ("team", "x")]
    for _ in range(2):  # asked again: from the memo, the same answers
        assert [pattern.matches(r) for r in references] == [
            r.path.startswith("team/") for r in references
        ]
    memo = pattern._memo
    assert len(memo.recent) <= 4
    assert len(memo.old) <= 4
    assert pattern == Pattern.compile("team/**")  # the memo is not part of its identity


def test_parsed_lists_are_kept_for_the_next_snapshot_only_and_never_with_a_bad_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(snapshot, "_PARSED", snapshot._ParsedLists())
    first = parse_references(["b:1", "a:1", "a:1"])
    assert [str(r) for r in first] == ["docker.io/library/a:1", "docker.io/library/b:1"]
    snapshot._PARSED.turn()
    assert parse_references(["b:1", "a:1", "a:1"]) is first  # the last snapshot's answer
    snapshot._PARSED.turn()
    snapshot._PARSED.turn()  # a snapshot that did not list it: forgotten
    assert parse_references(["b:1", "a:1", "a:1"]) is not first
    for _ in range(2):
        with capture_logs() as logs:
            assert [str(r) for r in parse_references(["Bad:1", "c:1"])] == ["docker.io/library/c:1"]
        assert [e["event"] for e in logs] == ["reference_unparsed"]
    assert parse_references(None) == ()
    assert parse_references(["<none>:<none>"]) == ()
