"""`gcd explain`'s story of one image: found by id, prefix or reference; every guard and
rule with its verdict, the deciding one marked; bytes alone and with the rest of the plan."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

from gcd.cli import main
from gcd.core.evaluate import evaluate
from gcd.core.image_story import find_image, tell
from gcd.core.records import ContainerState
from gcd.core.rules import RuleId
from gcd.explain_cli import story_document
from gcd.render.story import story_lines
from tests.unit.builders import NOW, container, days, hours, image, policy, rule, snapshot
from tests.unit.fake_engine import FakeEngine, digest_of

BASE = ("base-1", "base-2")
OLD = replace(image("app:1", age=days(30), layers=(*BASE, "one")), last_used=NOW - days(20))
NEW = image("app:2", "app:latest", age=days(2), layers=(*BASE, "two"))
YOUNG = image("app:3", age=hours(0.25), layers=(*BASE, "three"))
USED = image("db:5", age=days(40), layers=("db",))
SNAPSHOT = snapshot(
    OLD, NEW, YOUNG, USED, containers=(container(USED, name="db", state=ContainerState.RUNNING),)
)
POLICY = policy(rule(0, references=("**:latest",)), rule(1, newest=1))
PLAN = evaluate(SNAPSHOT, POLICY, NOW)


def test_found_by_id_prefix_and_reference_and_not_otherwise() -> None:
    assert find_image(SNAPSHOT, OLD.id) == OLD
    assert find_image(SNAPSHOT, OLD.short_id) == OLD
    assert find_image(SNAPSHOT, "docker.io/library/app:latest") == NEW
    assert find_image(SNAPSHOT, "app:9") is None
    assert find_image(SNAPSHOT, "no such thing!") is None


def test_every_rule_is_tried_and_the_deciding_one_marked() -> None:
    story = tell(SNAPSHOT, POLICY, PLAN, NEW)
    assert [(s.rule, s.holds, s.decides) for s in story.steps] == [
        (RuleId.IN_USE, False, False),
        (RuleId.CREATED_IN_FUTURE, False, False),
        (RuleId.MIN_AGE, False, False),
        (RuleId.REFERENCE, True, True),
        (RuleId.NEWEST, False, False),  # app:3 is the newest
    ]
    assert story.decision.rule is RuleId.REFERENCE
    assert story.steps[4].detail == "not among the 1 newest in its repository"


def test_a_deleted_image_says_why_each_rule_failed_and_what_it_frees() -> None:
    story = tell(SNAPSHOT, POLICY, PLAN, OLD)
    assert story.decision.rule is RuleId.UNKEPT
    assert story.steps[3].detail == "matches none of its names"
    assert story.steps[-1].rule is RuleId.UNKEPT
    assert story.steps[-1].decides
    assert story.alone_bytes == 100  # its own layer; the base is kept by app:2
    assert story.with_plan_bytes == 100
    text = "\n".join(story_lines(story))
    assert "last use:   2w ago" in text
    assert "started from: recorded, gcd's state" in text
    assert "plan: delete (delete.unkept)" in text


def test_guards_young_and_used_images() -> None:
    young = tell(SNAPSHOT, POLICY, PLAN, YOUNG)
    assert young.steps[2].holds
    assert young.steps[2].decides
    assert "eligible in 45m" in young.steps[2].detail
    used = tell(SNAPSHOT, POLICY, PLAN, USED)
    assert used.steps[0].detail == "used by db (running)"
    assert [c.name for c in used.users] == ["db"]
    assert "last use:   never" in "\n".join(story_lines(tell(SNAPSHOT, POLICY, PLAN, NEW)))


def test_the_json_document_has_every_step_and_the_bytes() -> None:
    document = json.loads(json.dumps(story_document(tell(SNAPSHOT, POLICY, PLAN, OLD))))
    assert document["document"] == "explain"
    assert document["decision"]["id"] == OLD.id
    assert document["decision"]["detail"].startswith("no keep rule holds")
    assert [s["rule"] for s in document["steps"]][-1] == "delete.unkept"
    assert document["bytes"] == {"alone": 100, "with_plan": 100, "plan_freed": 100}


class TestCommand:
    """`gcd explain` end to end on the fake engine (the real one: tests/integration)."""

    def run(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str
    ) -> tuple[int, str, str]:
        engine = FakeEngine(data_root=tmp_path / "docker")
        engine.add_image("one", "app:1", layers=[(digest_of("base"), 4000), (digest_of("1"), 10)])
        engine.add_image("two", "app:2", layers=[(digest_of("base"), 4000), (digest_of("2"), 20)])
        monkeypatch.setattr("gcd.engine.client.Engine", lambda host: engine)
        policy = tmp_path / "policy.yaml"
        policy.write_text("images:\n  keep:\n    - reference: ['app:2']\n")
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr("sys.stdout", out)
        monkeypatch.setattr("sys.stderr", err)
        argv = ["--state-dir", str(tmp_path / "state"), "explain", *args, "--policy", str(policy)]
        return main(argv), out.getvalue(), err.getvalue()

    def test_text_and_json(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        code, text, _ = self.run(tmp_path, monkeypatch, "app:1")
        assert code == 0
        assert "tags:       app:1" in text
        assert "→ keep.min_age" in text  # first seen now: the guard decides
        assert "matches none of its names" in text
        code, out, _ = self.run(tmp_path, monkeypatch, "app:2", "-o", "json")
        document = json.loads(out)
        assert code == 0
        assert [s["rule"] for s in document["steps"] if s["holds"]] == [
            "keep.min_age",
            "keep.reference",
        ]

    def test_an_unknown_image_is_exit_2(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        code, out, err = self.run(tmp_path, monkeypatch, "app:3")
        assert (code, out) == (2, "")
        assert "gcd: no image 'app:3' on the engine (2 images)" in err
