"""A hostile policy file: every bound of the loader, the documented range of every number, and
the proof that the largest accepted values never overflow later (evaluation, the daemon's
triggers). Before these bounds: 10,000 brackets were a RecursionError traceback,
`every: 999999999d` was "ok" and killed the daemon's scheduler, `min_age: 99999999999d` an
OverflowError traceback, a FIFO hung `gcd check`, `t/app` (no tag) was accepted and matched
nothing."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from gcd.config.compose import MAX_DEPTH, MAX_NODES
from gcd.config.loader import MAX_POLICY_BYTES, MAX_PROBLEMS, load_policy, parse_policy
from gcd.config.scalars import EXCERPT
from gcd.config.sites import unmatched_patterns
from gcd.core.budget import Pressure
from gcd.core.evaluate import evaluate
from gcd.core.policy import Policy
from gcd.errors import PolicyError
from tests.unit.builders import NOW, cache_record, container, image, network, snapshot, volume


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as error:
        parse_policy(text, "p.yaml")
    return [str(problem) for problem in error.value.problems]


class TestStructure:
    def test_ten_thousand_brackets_are_a_positioned_problem_not_a_recursion_error(self) -> None:
        (problem,) = problems("images:\n  keep: " + "[" * 10_000 + "]" * 10_000 + "\n")
        assert problem.startswith("p.yaml:2:")
        assert "nest" in problem

    def test_nesting_is_bounded_in_block_style_too(self) -> None:
        text = "".join(f"{'  ' * i}k{i}:\n" for i in range(MAX_DEPTH + 5))
        (problem,) = problems(text)
        assert f"nested deeper than {MAX_DEPTH} levels" in problem

    def test_aliases_nested_in_aliases_are_bounded_by_depth_once_expanded(self) -> None:
        depth = MAX_DEPTH - 2
        lines = [f"a0: &a0 {'[' * depth}1{']' * depth}"]
        for i in range(1, 5):
            lines.append(f"a{i}: &a{i} {'[' * depth}*a{i - 1}{']' * depth}")
        (problem,) = problems("\n".join(lines) + "\n")
        assert "once aliases are expanded" in problem

    @pytest.mark.parametrize(
        "where",
        [
            "value: {}",  # in a value
            "? {}\n: 1",  # in a complex key
            "<<: {}",  # in a merge key's value
        ],
    )
    def test_an_alias_bomb_is_refused_wherever_it_is(self, where: str) -> None:
        layers = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
        for i in range(1, 9):
            layers.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
        text = "\n".join(layers) + "\n" + where.format("[" + ", ".join(["*a8"] * 9) + "]") + "\n"
        started = time.monotonic()
        found = problems(text)
        assert time.monotonic() - started < 5  # 9^10 values would take hours and terabytes
        assert any("values and keys" in p or "keys are text" in p for p in found), found

    def test_the_node_count_is_bounded_before_conversion(self) -> None:
        text = "k: [" + ", ".join(["1"] * (MAX_NODES + 10)) + "]\n"
        (problem,) = problems(text)
        assert f"more than {MAX_NODES} YAML nodes" in problem

    def test_a_flood_of_problems_is_cut_with_a_count(self) -> None:
        text = "".join(f"k{i}: 1\n" for i in range(MAX_PROBLEMS + 50))
        found = problems(text)
        assert len(found) == MAX_PROBLEMS + 1
        assert found[-1].endswith("and 50 more problems from here on")

    def test_the_largest_accepted_policy_parses_quickly(self) -> None:
        rules = MAX_NODES // 7
        text = "images:\n  keep:\n" + "".join(
            f'    - reference: ["app{i}:*"]\n' for i in range(rules)
        )
        started = time.monotonic()
        policy = parse_policy(text, "p.yaml")
        elapsed = time.monotonic() - started
        assert policy.images is not None
        assert len(policy.images.keep) == rules
        assert elapsed < 5  # about 0.2 s; generous for a loaded CI machine


class TestExcerpts:
    def test_a_huge_bad_scalar_is_quoted_as_an_excerpt(self) -> None:
        value = "x" * 5_000_000
        (problem,) = problems(f"images:\n  keep:\n    - newest: {value}\n")
        assert len(problem) < 400
        assert "…(5000002 characters)" in problem  # with its quotes

    def test_a_5000_digit_count_is_refused_and_not_echoed(self) -> None:
        (problem,) = problems("images:\n  keep:\n    - newest: " + "9" * 5000 + "\n")
        assert problem.startswith("p.yaml:3:15: images.keep[0].newest:")
        assert "9" * (EXCERPT + 1) not in problem
        assert len(problem) < 600

    def test_a_huge_key_is_cut_in_the_field_name(self) -> None:
        (problem,) = problems("k" * 100_000 + ": 1\n")
        assert len(problem) < 600

    def test_a_huge_yaml_error_token_is_cut(self) -> None:
        (problem,) = problems("a: *" + "b" * 100_000 + "\n")
        assert problem.startswith("p.yaml:1:4: invalid YAML")
        assert len(problem) < 400


class TestFiles:
    def test_a_fifo_is_refused_without_blocking(self, tmp_path: Path) -> None:
        fifo = tmp_path / "policy.yaml"
        os.mkfifo(fifo)
        with pytest.raises(PolicyError, match="a FIFO"):
            load_policy(fifo)

    def test_a_device_is_refused_without_reading_it(self) -> None:
        with pytest.raises(PolicyError, match="a device, not a regular file"):
            load_policy(Path("/dev/zero"))

    def test_a_directory_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(PolicyError, match="a directory"):
            load_policy(tmp_path)

    def test_a_file_over_the_cap_is_refused_before_parsing(self, tmp_path: Path) -> None:
        big = tmp_path / "policy.yaml"
        big.write_bytes(b"#" * (MAX_POLICY_BYTES + 1))
        with pytest.raises(PolicyError, match=f"at most {MAX_POLICY_BYTES} bytes"):
            load_policy(big)

    def test_a_file_at_the_cap_is_read(self, tmp_path: Path) -> None:
        exact = tmp_path / "policy.yaml"
        exact.write_bytes(b"version: 1\n" + b"#" * (MAX_POLICY_BYTES - 12) + b"\n")
        assert load_policy(exact).version == 1

    def test_a_symbolic_link_to_a_policy_is_followed(self, tmp_path: Path) -> None:
        (tmp_path / "real.yaml").write_text("version: 1\n")
        (tmp_path / "link.yaml").symlink_to(tmp_path / "real.yaml")
        assert load_policy(tmp_path / "link.yaml").version == 1


# The largest value each numeric field accepts, one past it, and the range the message names.
LIMITS = [
    ("safety:\n  min_age: {}\n", "36500d", "36501d", "a duration of at most 36500d"),
    ("safety:\n  max_deletions_per_run: {}\n", "1000000", "1000001", "from 1 to 1000000"),
    ("images:\n  keep:\n    - newest: {}\n", "1000000", "1000001", "from 1 to 1000000"),
    ("images:\n  keep:\n    - younger_than: {}\n", "36500d", "5215w", "at most 36500d"),
    ("images:\n  keep:\n    - used_within: {}\n", "36500d", "99999999999d", "at most 36500d"),
    ("images:\n  dangling:\n    keep_within: {}\n", "36500d", "36501d", "at most 36500d"),
    (
        "containers:\n  remove_exited_after: {}\n",
        "36500d",
        "3153600001s",
        "at most 36500d",
    ),
    ("volumes:\n  anonymous_unused_for: {}\n", "36500d", "36501d", "at most 36500d"),
    ("build_cache:\n  unused_for: {}\n", "36500d", "36501d", "at most 36500d"),
    ("build_cache:\n  max_size: {}\n", "1024PiB", "1025PiB", "at most 1024PiB"),
    ("networks:\n  unused_for: {}\n", "36500d", "36501d", "at most 36500d"),
    ("images:\n  max_deletions_per_run: {}\n", "1000000", "1000001", "from 1 to 1000000"),
    ("schedule:\n  every: {}\n", "366d", "367d", "a duration from 1s to 366d"),
    ("schedule:\n  every: 366d\n  jitter: {}\n", "1d", "25h", "a duration of at most 1d"),
    ("schedule:\n  disk: {{check_every: {}}}\n", "1d", "86401s", "from 1s to 1d"),
]


@pytest.mark.parametrize(("template", "largest", "beyond", "named"), LIMITS)
def test_each_number_has_a_documented_range(
    template: str, largest: str, beyond: str, named: str
) -> None:
    parse_policy(template.format(largest), "p.yaml")
    (problem,) = problems(template.format(beyond))
    assert named in problem, problem


def test_every_one_is_refused_below_its_minimum() -> None:
    assert "from 1s to 366d" in problems("schedule:\n  every: 0s\n")[0]
    assert "from 1s to 1d" in problems("schedule:\n  disk: {check_every: 0s}\n")[0]


def test_jitter_may_not_exceed_every() -> None:
    (problem,) = problems("schedule:\n  every: 5m\n  jitter: 10m\n")
    assert problem.startswith("p.yaml:3:11: schedule.jitter: jitter (10m) must not exceed every")


def test_jitter_may_not_exceed_the_default_every_of_1h() -> None:
    (problem,) = problems("schedule:\n  jitter: 2h\n")
    assert "jitter (2h) must not exceed every (1h)" in problem


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("0 0 30 2 *", "never fires"),
        ("99999999999 * * * *", "higher than the maximum"),
        ("*/0 * * * *", "Increment must be higher than 0"),
        ("0 0 * * * *", "Wrong number of fields"),
        ("* " * 200, "at most 200 characters"),
    ],
)
def test_cron_lines_apscheduler_refuses_or_that_never_fire_are_refused(
    cron: str, says: str
) -> None:
    (problem,) = problems(f'schedule:\n  cron: "{cron}"\n')
    assert says in problem


@pytest.mark.parametrize("share", ["1" + "0" * 400, "1e400%", ".nan", "-.inf"])
def test_a_share_that_overflows_a_float_is_refused(share: str) -> None:
    (problem,) = problems(f"safety:\n  max_delete_fraction: {share}\n")
    assert "safety.max_delete_fraction" in problem


LARGEST = """\
safety: {min_age: 36500d, max_deletions_per_run: 1000000, max_delete_fraction: 1}
images:
  max_deletions_per_run: 1000000
  keep:
    - {reference: "app:*", newest: 1000000, younger_than: 36500d, used_within: 36500d}
  dangling: {keep_within: 36500d}
containers:
  remove_exited_after: 36500d
  max_deletions_per_run: 1000000
volumes: {anonymous_unused_for: 36500d, named: ["v*"], named_unused_for: 36500d}
build_cache: {unused_for: 36500d, max_size: 1024PiB}
networks: {unused_for: 36500d}
schedule:
  every: 366d
  jitter: 1d
  disk: {high: 1, low: 0.99, check_every: 1d}
"""


def _small_snapshot() -> object:
    app = image("app:1", seed="app")
    return snapshot(
        app,
        image("old:1", age=timedelta(days=40_000)),
        containers=(container(app, name="job", state=container(app).state),),
        volumes=(volume("v1"),),
        build_cache=(cache_record("r1"),),
        networks=(network("n1"),),
    )


def _triggers(policy: Policy) -> None:
    """Build the daemon's triggers as `gcd.daemon` does, and ask each for a fire time."""
    schedule = policy.schedule
    now = datetime.now(UTC)
    jitter = int(schedule.jitter.total_seconds()) or None
    if schedule.cron is not None:
        cron = CronTrigger.from_crontab(schedule.cron, timezone=UTC)
        cron.jitter = jitter
        assert cron.get_next_fire_time(None, now) is not None
    else:
        every = schedule.every or timedelta(hours=1)
        interval = IntervalTrigger(seconds=every.total_seconds(), jitter=jitter, timezone=UTC)
        assert interval.get_next_fire_time(None, now) is not None
    if schedule.disk is not None:
        check = IntervalTrigger(seconds=schedule.disk.check_every.total_seconds(), timezone=UTC)
        assert check.get_next_fire_time(None, now) is not None


@pytest.mark.parametrize("cron", [None, "59 23 31 12 *", "0 0 29 2 *"])
def test_the_largest_accepted_values_evaluate_and_schedule_without_overflow(
    cron: str | None,
) -> None:
    text = LARGEST if cron is None else LARGEST.replace("every: 366d", f'cron: "{cron}"')
    policy = parse_policy(text, "p.yaml")
    shot = _small_snapshot()
    plan = evaluate(shot, policy, NOW)  # type: ignore[arg-type]
    assert plan.decisions
    pressure = Pressure(
        used_bytes=99, total_bytes=100, used_inodes=1, total_inodes=100, high=0.5, low=0.4
    )
    assert evaluate(shot, policy, NOW, pressure).decisions  # type: ignore[arg-type]
    _triggers(policy)
    # and the far past that the longest duration reaches is a date
    assert NOW - timedelta(days=36500) > datetime(1900, 1, 1, tzinfo=UTC)


class TestPatternsThatCanNeverMatch:
    @pytest.mark.parametrize(
        ("pattern", "says"),
        [
            ("t/app", "write t/app:* for any tag"),
            ("T/App:*", "write t/app:*"),
            (".*", "regular-expression syntax"),
            ("app:.*", "regular-expression syntax"),
            ("regex:", "an empty regex"),
            ("^app$", "write it as regex:"),
            ("registry.example.com/Team/app:*", "write registry.example.com/team/app:*"),
        ],
    )
    def test_an_image_reference_pattern_is_an_error_at_its_position(
        self, pattern: str, says: str
    ) -> None:
        (problem,) = problems(f'images:\n  keep:\n    - reference: ["alpine:*", "{pattern}"]\n')
        assert problem.startswith("p.yaml:3:31: images.keep[0].reference[1]: ")
        assert "can never match" in problem
        assert says in problem

    @pytest.mark.parametrize(
        "pattern",
        ["alpine:*", "app*", "**/base/*:*", "Reg.Example.com/app:*", "reg:5000/app:1", "a@sha*"],
    )
    def test_patterns_that_can_match_are_accepted(self, pattern: str) -> None:
        parse_policy(f'images:\n  keep:\n    - reference: "{pattern}"\n', "p.yaml")

    def test_a_container_image_pattern_is_judged_as_a_reference(self) -> None:
        (problem,) = problems(
            "containers:\n  remove_exited_after: 1d\n  keep:\n    - image: postgres\n"
        )
        assert "containers.keep[0].image" in problem
        assert "postgres:*" in problem

    @pytest.mark.parametrize(
        ("pattern", "says"),
        [("a/b", "contains '/'"), ("regex:", "empty regex"), ("_x", "start with a letter")],
    )
    def test_name_patterns_that_can_never_match(self, pattern: str, says: str) -> None:
        (problem,) = problems(f'volumes:\n  named: ["{pattern}"]\n  named_unused_for: 1d\n')
        assert "volumes.named[0]" in problem
        assert says in problem

    def test_upper_case_is_fine_in_container_names(self) -> None:
        parse_policy(
            "containers:\n  remove_exited_after: 1d\n  keep:\n    - name: [Build-*]\n", "p.yaml"
        )


def test_plan_warns_of_keep_patterns_that_match_no_current_object(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        'images:\n  keep:\n    - reference: ["app:*", "tema/app:*"]\n'
        "containers:\n  remove_exited_after: 1d\n  keep:\n    - name: db-*\n"
        '      image: ["app:*"]\n'
    )
    policy = load_policy(path)
    app = image("app:1", seed="app")
    shot = snapshot(app, containers=(container(app, name="web", image="app:1"),))
    found = [str(u) for u in unmatched_patterns(policy, shot)]
    assert found == [
        f"{path}:3:28: images.keep[0].reference[1]: 'tema/app:*' matches no image on the "
        "engine now",
        f"{path}:7:13: containers.keep[0].name[0]: 'db-*' matches no container on the engine now",
    ]
