"""`images.keep[i].compose`: interpolation, `.env`, project and default image names, what a
file names, and the core's judgement on hand-built readings, fail-closed included."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from gcd.config import stacks
from gcd.config.interpolate import (
    DotenvError,
    InterpolationError,
    interpolate,
    normalise_project_name,
    read_dotenv,
)
from gcd.config.loader import parse_policy
from gcd.config.stacks import compose_warnings, read_file, read_globs
from gcd.core.budget import Pressure
from gcd.core.compose import ANY, ComposeFailure, ComposeImages, ComposeName
from gcd.core.evaluate import evaluate
from gcd.core.kinds.images import KeepRule, explain_reference
from gcd.core.references import parse_reference
from gcd.core.rules import RuleId
from gcd.documents import plan_document
from gcd.errors import PolicyError
from gcd.metrics.definitions import Metrics
from tests.unit.builders import NOW, image, policy, snapshot
from tests.unit.daemon_support import NEVER, Rig


def parts(text: str, env: dict[str, str | None] | None = None) -> tuple[str, ...]:
    return interpolate(text, env or {}).parts


# Interpolation -----------------------------------------------------------------------------


def test_variables_take_their_values_and_dollar_dollar_is_a_dollar() -> None:
    env: dict[str, str | None] = {"REG": "reg.example.com", "TAG": "1.2"}
    assert parts("${REG}/app:$TAG", env) == ("reg.example.com/app:1.2",)
    assert parts("a$$b", env) == ("a$b",)
    assert parts("price $5", env) == ("price $5",)  # a lone `$` stays


def test_defaults_apply_when_unset_and_colon_defaults_when_empty_too() -> None:
    assert parts("app:${TAG:-latest}") == ("app:latest",)
    assert parts("app:${TAG-latest}") == ("app:latest",)
    assert parts("app:${TAG:-latest}", {"TAG": ""}) == ("app:latest",)
    assert parts("app:${TAG-latest}", {"TAG": ""}) == ("app:",)
    assert parts("${A:-${B:-x}y}") == ("xy",)
    assert parts("${A:+set}", {"A": "1"}) == ("set",)
    assert parts("${A:+set}") == ("",)


def test_an_unset_variable_without_default_leaves_a_hole_that_says_which() -> None:
    result = interpolate("reg/app:${TAG}", {})
    assert result.parts == ("reg/app:", "")
    assert result.unknown == ("TAG",)
    assert result.exact is None
    assert parts("${REG:?set REG}/app") == ("", "/app")
    assert parts("${A}${B}") == ("", "")  # adjacent holes are one
    assert parts("${A}", {"A": None}) == ("", "")  # set in .env, to something unknowable


def test_malformed_interpolation_is_an_error() -> None:
    for text in ("${TAG", "${}", "${1A}", "${A*b}"):
        with pytest.raises(InterpolationError):
            interpolate(text, {})


def test_dotenv_lines() -> None:
    env = read_dotenv(
        "# comment\n\nexport REG=reg.example.com\nTAG='1.${X}'\nNAME=\"my app\"\n"
        "URL=${REG}/x # inline comment\nLATER=${UNSET}\n"
    )
    assert env == {
        "REG": "reg.example.com",
        "TAG": "1.${X}",  # single quotes: literal
        "NAME": "my app",
        "URL": "reg.example.com/x",
        "LATER": None,  # depends on an unset variable: unknowable
    }
    for bad in ("JUST A LINE\n", "A='open\n", "1A=x\n"):
        with pytest.raises(DotenvError):
            read_dotenv(bad)


def test_project_names_are_normalised_as_compose_v2_does() -> None:
    assert normalise_project_name("My App.v2") == "myappv2"
    assert normalise_project_name("_-stack_1-") == "stack_1-"
    assert normalise_project_name("Ünïcode") == "ncode"


# Reading files ----------------------------------------------------------------------------


def write(directory: Path, text: str, name: str = "compose.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def exact(names: list[ComposeName]) -> set[str]:
    return {str(n.reference) for n in names if n.reference is not None}


def test_images_and_default_build_names_v1_and_v2(tmp_path: Path) -> None:
    path = write(
        tmp_path / "Shop_Front",
        "services:\n"
        "  web:\n    image: nginx:1.27\n"
        "  api:\n    build: ./api\n"
        "  worker:\n    build: .\n    image: reg.example.com/shop/worker:${TAG:-3}\n"
        "  db:\n    image: postgres@sha256:" + "a" * 64 + "\n    profiles: [never]\n",
    )
    names, failures = read_file(path)
    assert failures == []
    assert exact(names) == {
        "docker.io/library/nginx:1.27",
        "docker.io/library/shop_front-api",
        "docker.io/library/shop_front_api",
        "reg.example.com/shop/worker:3",
        "docker.io/library/postgres@sha256:" + "a" * 64,
    }
    api = next(n for n in names if n.service == "api")
    assert api.describe() == f"named by service api in {path}"


def test_every_project_name_gcd_can_see_gives_default_names(tmp_path: Path) -> None:
    directory = tmp_path / "dir"
    write(directory, "COMPOSE_PROJECT_NAME=fromenv\n", ".env")
    path = write(directory, "name: Named\nservices:\n  app:\n    build: .\n")
    names, _ = read_file(path)
    assert exact(names) == {
        f"docker.io/library/{project}{sep}app"
        for project in ("fromenv", "named", "dir")
        for sep in "-_"
    }


def test_merge_keys_and_extends_within_the_file_are_followed(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s",
        "x-base: &base\n  image: base/app:2\n"
        "services:\n"
        "  a:\n    <<: *base\n    ports: ['80']\n"
        "  b:\n    extends: a\n"
        "  c:\n    extends: {service: b}\n    environment: {X: 1}\n",
    )
    names, failures = read_file(path)
    assert failures == []
    assert {n.service for n in names} == {"a", "b", "c"}
    assert exact(names) == {"docker.io/base/app:2"}


def test_an_unset_variable_keeps_every_image_it_could_name(tmp_path: Path) -> None:
    path = write(tmp_path / "s", "services:\n  app:\n    image: reg.example.com/app:${TAG}\n")
    (name,), (failure,) = read_file(path)
    assert failure.reason.startswith("service app: ${TAG} has no value in .env")  # reported
    assert name.shape == ("reg.example.com/app:", "")
    assert "${TAG} has no value in .env" in name.describe()
    assert name.matches(parse_reference("reg.example.com/app:anything"))
    assert not name.matches(parse_reference("reg.example.com/other:1"))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("services: [\n", "invalid YAML"),
        ("- a\n- b\n", "not a mapping"),
        ("include: [other.yaml]\nservices: {}\n", "include: is not followed"),
        ("services: {a: {image: x}, a: {image: y}}\n", "duplicate key"),
        ("services: 3\n", "services is not a mapping"),
    ],
)
def test_a_file_gcd_cannot_read_fails_whole(tmp_path: Path, text: str, reason: str) -> None:
    path = write(tmp_path / "s", text)
    (name,), (failure,) = read_file(path)
    assert reason in failure.reason
    assert name.service is None
    assert name.shape == ANY
    assert name.matches(parse_reference("anything/at:all"))


@pytest.mark.parametrize(
    ("service", "reason"),
    [
        ("{extends: {file: base.yaml, service: web}}", "extends another file"),
        ("{extends: nobody}", "extends a service this file does not have"),
        ("{environment: {A: 1}}", "neither image nor build"),
        ("{image: 42}", "image is not text"),
        ("{image: 'Upper/Case'}", "lowercase"),
        ("{image: '${OPEN'}", "not closed"),
        ("{image: '" + "a" * 1025 + "'}", "longer than 1024 characters"),
    ],
)
def test_a_service_whose_image_is_unknown_fails_closed(
    tmp_path: Path, service: str, reason: str
) -> None:
    path = write(tmp_path / "s", f"services:\n  ok: {{image: a:1}}\n  bad: {service}\n")
    names, (failure,) = read_file(path)
    assert reason in failure.reason
    assert "service bad" in failure.reason
    bad = next(n for n in names if n.service == "bad")
    assert bad.shape == ANY
    assert exact(names) == {"docker.io/library/a:1"}


def test_files_that_are_not_regular_files_fail_without_blocking(tmp_path: Path) -> None:
    (tmp_path / "dir" / "compose.yaml").mkdir(parents=True)
    fifo = tmp_path / "fifo" / "compose.yaml"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    for path in (tmp_path / "dir" / "compose.yaml", fifo):
        _, (failure,) = read_file(path)
        assert "not a regular file" in failure.reason


def test_a_broken_env_file_fails_the_compose_file(tmp_path: Path) -> None:
    write(tmp_path / "s", "not a line\n", ".env")
    path = write(tmp_path / "s", "services: {a: {image: a}}\n")
    _, (failure,) = read_file(path)
    assert ".env line 1 is not KEY=VALUE" in failure.reason


def test_globs_expand_to_every_file_and_report_those_matching_none(tmp_path: Path) -> None:
    write(tmp_path / "one", "services: {a: {image: one:1}}\n")
    write(tmp_path / "two", "services: {a: {image: two:1}}\n")
    write(tmp_path / "three", "services: [\n")
    read = read_globs((f"{tmp_path}/*/compose.yaml", f"{tmp_path}/typo/*.yml"))
    assert exact(list(read.names)) == {"docker.io/library/one:1", "docker.io/library/two:1"}
    assert len(read.files) == 2
    assert [f.file for f in read.failures] == [f"{tmp_path}/three/compose.yaml"]
    assert read.unmatched_globs == (f"{tmp_path}/typo/*.yml",)
    warnings = compose_warnings([(2, read)])
    assert [w.field for w in warnings] == ["images.keep[2].compose"] * 2
    assert "keeping every image it could name" in str(warnings[0])
    assert "matches no file now" in str(warnings[1])


# The policy file --------------------------------------------------------------------------


def test_the_rule_is_read_from_the_policy_file() -> None:
    parsed = parse_policy("images:\n  keep:\n    - compose: /srv/*/compose.yaml\n", "p.yaml")
    assert parsed.images is not None
    (rule,) = parsed.images.keep
    assert rule.compose == ("/srv/*/compose.yaml",)
    assert rule.rule_id is RuleId.COMPOSE
    assert not RuleId.COMPOSE.yields_to_pressure


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[srv/compose.yaml]", "expected an absolute path"),
        ("[]", "at least one entry"),
        ("[/srv/**/compose.yaml]", "** is not supported"),
    ],
)
def test_bad_compose_globs_are_refused(value: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(f"images:\n  keep:\n    - compose: {value}\n", "p.yaml")
    assert message in str(caught.value)


def test_a_compose_rule_takes_no_other_condition() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy("images:\n  keep:\n    - {compose: /a.yaml, newest: 2}\n", "p.yaml")
    assert "takes no other condition" in str(caught.value)


# The core's judgement ---------------------------------------------------------------------


def compose_rule(read: ComposeImages | None) -> KeepRule:
    return KeepRule(index=0, compose=("/srv/*/compose.yaml",), compose_images=read)


def judged(read: ComposeImages | None, *images: object, **kwargs: object) -> dict[str, RuleId]:
    plan = evaluate(snapshot(*images), policy(compose_rule(read)), NOW, **kwargs)  # type: ignore[arg-type]
    return {d.subject.names[0] if d.subject.names else d.key.id: d.rule for d in plan.decisions}


WEB = ComposeName("/srv/app/compose.yaml", "web", reference=parse_reference("nginx:1.27"))
PINNED = ComposeName(
    "/srv/app/compose.yaml", "db", reference=parse_reference("postgres:16@sha256:" + "b" * 64)
)


def test_named_images_are_kept_and_others_go() -> None:
    read = ComposeImages((WEB, PINNED), ("/srv/app/compose.yaml",))
    decisions = judged(
        read,
        image("nginx:1.27"),
        image("nginx:1.26"),
        image(seed="pg", digests=("postgres@sha256:" + "b" * 64,)),
        image(seed="dangling"),
    )
    assert decisions["nginx:1.27"] is RuleId.COMPOSE
    assert decisions["nginx:1.26"] is RuleId.UNKEPT
    assert decisions["postgres@sha256:" + "b" * 64] is RuleId.COMPOSE  # pinned, untagged
    plan = evaluate(snapshot(image("nginx:1.27")), policy(compose_rule(read)), NOW)
    assert plan.decisions[0].detail == (
        "images.keep[0] compose: nginx:1.27 named by service web in /srv/app/compose.yaml"
    )


def test_a_broken_file_keeps_every_named_image_but_not_nameless_ones() -> None:
    broken = ComposeName("/srv/bad/compose.yaml", None, shape=ANY, why="invalid YAML at line 2")
    read = ComposeImages(
        (WEB, broken), failures=(ComposeFailure("/srv/bad/compose.yaml", "invalid YAML"),)
    )
    nameless = image(seed="nameless")
    decisions = judged(read, image("nginx:1.27"), image("anything/else:9"), nameless)
    assert decisions["nginx:1.27"] is RuleId.COMPOSE
    assert decisions["anything/else:9"] is RuleId.COMPOSE
    assert decisions[nameless.id] is RuleId.DANGLING
    plan = evaluate(snapshot(image("anything/else:9")), policy(compose_rule(read)), NOW)
    assert "/srv/bad/compose.yaml cannot be read (invalid YAML at line 2)" in (
        plan.decisions[0].detail
    )


def test_a_rule_whose_files_were_not_read_keeps_every_named_image() -> None:
    assert judged(None, image("a:1"))["a:1"] is RuleId.COMPOSE


def test_a_shape_keeps_only_what_it_could_be() -> None:
    shaped = ComposeName("/f", "app", shape=("app:", ""), why="${TAG} has no value in .env")
    decisions = judged(ComposeImages((shaped,)), image("app:1"), image("app:latest"), image("b:1"))
    assert decisions == {
        "app:1": RuleId.COMPOSE,
        "app:latest": RuleId.COMPOSE,
        "b:1": RuleId.UNKEPT,
    }


def test_compose_keeps_do_not_yield_to_pressure() -> None:
    pressure = Pressure(99, 100, 0, 0, high=0.8, low=0.7)
    decisions = judged(ComposeImages((WEB,)), image("nginx:1.27"), pressure=pressure)
    assert decisions["nginx:1.27"] is RuleId.COMPOSE


# Reporting --------------------------------------------------------------------------------


def test_metrics_count_files_by_state_and_unmatched_globs() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, started_at=NOW.timestamp())
    assert registry.get_sample_value("gcd_compose_files", {"state": "failed"}) == 0
    read = ComposeImages(
        files=("/a", "/b"),
        failures=(ComposeFailure("/c", "x"), ComposeFailure("/c", "service y: z")),
        unmatched_globs=("/typo/*",),
    )
    metrics.record_compose([read])
    assert registry.get_sample_value("gcd_compose_files", {"state": "ok"}) == 2
    assert registry.get_sample_value("gcd_compose_files", {"state": "failed"}) == 1
    assert registry.get_sample_value("gcd_compose_globs_unmatched") == 1


def test_the_plan_document_lists_compose_warnings(tmp_path: Path) -> None:
    read = read_globs((f"{tmp_path}/none/*.yaml",))
    plan = evaluate(snapshot(), policy(compose_rule(read)), NOW)
    (warning,) = plan_document(plan, warnings=compose_warnings([(0, read)]))["warnings"]
    assert warning["kind"] == "compose file"
    assert warning["field"] == "images.keep[0].compose"
    assert warning["line"] is None
    assert "matches no file now" in warning["message"]


def test_min_age_still_comes_first() -> None:
    young = image("nginx:1.27", age=timedelta(minutes=5))
    assert judged(ComposeImages((WEB,)), young)["nginx:1.27"] is RuleId.MIN_AGE


def test_test_pattern_says_a_compose_rule_depends_on_its_files() -> None:
    section = policy(compose_rule(None)).images
    assert section is not None
    answer = explain_reference(section, parse_reference("nginx:1"))
    assert answer.startswith("kept only by images.keep[0] compose /srv/*/compose.yaml")
    assert "if a service of those Compose files names it" in answer


def test_the_daemon_reads_the_files_again_in_every_cycle(tmp_path: Path) -> None:
    glob_text = f"{tmp_path}/srv/*/compose.yaml"
    running = replace(
        policy(KeepRule(index=0, compose=(glob_text,))), schedule=NEVER, source="policy.yaml"
    )
    rig = Rig(tmp_path, running)
    try:
        with capture_logs() as logs:
            assert rig.daemon.run_cycle("schedule") is not None
            assert rig.sample("gcd_compose_globs_unmatched") == 1
            write(tmp_path / "srv" / "shop", "services: [\n")  # deployed, broken, between cycles
            result = rig.daemon.run_cycle("schedule")
        assert result is not None
        assert rig.sample("gcd_compose_globs_unmatched") == 0
        assert rig.sample("gcd_compose_files", state="failed") == 1
        (event,) = [e for e in logs if e["event"] == "compose_file_unreadable"]
        assert event["path"] == f"{tmp_path}/srv/shop/compose.yaml"
        assert event["reason"] == "invalid YAML at line 2"
    finally:
        rig.close()


def test_more_files_than_the_bound_fail_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stacks, "MAX_FILES", 2)
    for n in range(3):
        write(tmp_path / f"s{n}", "services: {a: {image: a}}\n")
    read = read_globs((f"{tmp_path}/*/compose.yaml",))
    (failure,) = read.failures
    assert failure.reason == "the globs match more than 2 files"
    assert [n.shape for n in read.names] == [ANY]


def test_a_reader_bug_fails_that_file_closed_not_the_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(stacks, "_services", broken)
    (name,), (failure,) = read_file(write(tmp_path / "s", "services: {}\n"))
    assert failure.reason == "gcd could not read it (KeyError: 'surprise')"
    assert name.shape == ANY
