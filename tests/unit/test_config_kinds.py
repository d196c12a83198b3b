"""The policy sections for containers, volumes, build cache and networks: each field read as
written, and each mistake refused at its position with the fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gcd.config.loader import parse_policy
from gcd.core.kind import Kind
from gcd.core.records import Container, ContainerState
from gcd.core.rules import RuleId
from gcd.errors import PolicyError

EXAMPLE = Path(__file__).resolve().parents[2] / "policy.example.yaml"
CONTAINERS = "containers:\n  remove_exited_after: 2d\n"
VOLUMES = "volumes:\n  anonymous_unused_for: 7d\n"


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml")
    return [str(p) for p in caught.value.problems]


def container(name: str, image: str = "", **labels: str) -> Container:
    return Container("c" * 64, name, "sha256:" + "a" * 64, ContainerState.EXITED, image, labels)


# --- no section: the kind is never touched --------------------------------------------------


@pytest.mark.parametrize("section", ["containers", "volumes", "build_cache", "networks"])
def test_without_a_section_its_kind_is_not_touched(section: str) -> None:
    assert getattr(parse_policy("version: 1\n", "p.yaml"), section) is None


@pytest.mark.parametrize("section", ["containers", "volumes", "build_cache", "networks"])
@pytest.mark.parametrize("text", ["{section}:\n", "{section}: ~\n"])
def test_an_empty_section_is_refused_rather_than_touching_nothing_silently(
    section: str, text: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text.format(section=section), "p.yaml")
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (1, section)
    assert problem.message.startswith(f"an empty {section} section would touch nothing")


# --- containers -----------------------------------------------------------------------------


def test_the_containers_section_is_read_into_its_policy() -> None:
    text = (
        "containers:\n"
        "  keep:\n"
        '    - label: {gc.keep: "true"}\n'
        '    - name: ["db-*", "*-debug"]\n'
        '    - image: ["postgres:*"]\n'
        "    - {name: 'regex:ci-[0-9]+', label: {team: '*'}, image: 'regex:.*'}\n"
        "  remove_exited_after: 2d\n"
        '  remove_services_named: ["ci-svc-*"]\n'
    )
    section = parse_policy(text, "p.yaml").containers
    assert section is not None
    assert section.remove_exited_after == timedelta(days=2)
    assert [p.text for p in section.remove_services_named] == ["ci-svc-*"]
    label, name, image, combined = section.keep
    assert [r.index for r in section.keep] == [0, 1, 2, 3]
    assert [r.rule_id for r in section.keep] == [
        RuleId.LABEL,
        RuleId.NAME,
        RuleId.IMAGE,
        RuleId.NAME,
    ]
    assert label.labels == {"gc.keep": "true"}
    assert [p.text for p in name.names] == ["db-*", "*-debug"]
    assert [p.text for p in image.images] == ["postgres:*"]
    # The patterns are compiled as what they are: names as plain globs, images as references.
    assert name.holds(container("db-main"))
    assert name.holds(container("web-debug"))
    assert not name.holds(container("web"))
    assert image.holds(container("x", "postgres:16"))
    assert image.holds(container("x", "docker.io/library/postgres:16"))
    assert not image.holds(container("x", "mysql:8"))
    # All conditions of one entry must hold.
    assert combined.holds(container("ci-12", "alpine", team="a"))
    assert not combined.holds(container("ci-12", "alpine"))
    assert not combined.holds(container("ci-x", "alpine", team="a"))


def test_a_containers_section_needs_remove_exited_after() -> None:
    assert problems("containers: {}\n") == [
        "p.yaml:1:13: containers.remove_exited_after: required: how long a container must "
        "have been stopped before it goes, such as 2d (there is no default)"
    ]
    assert problems("containers:\n  keep: []\n") == [
        "p.yaml:2:3: containers.remove_exited_after: required: how long a container must "
        "have been stopped before it goes, such as 2d (there is no default)"
    ]


def test_a_misspelt_required_key_is_named_once_with_the_suggestion() -> None:
    assert problems("containers:\n  remove_exited_afer: 2d\n") == [
        "p.yaml:2:3: containers.remove_exited_afer: unknown key; "
        "did you mean `remove_exited_after`?"
    ]


def test_a_container_keep_rule_needs_a_condition_and_no_empty_one() -> None:
    text = CONTAINERS + "  keep:\n    - {}\n    - name: []\n    - image: []\n    - label: {}\n"
    assert problems(text) == [
        "p.yaml:4:7: containers.keep[0]: a keep rule needs at least one of label, name, image",
        "p.yaml:5:13: containers.keep[1].name: expected at least one pattern (an empty name "
        "rule would keep every container), got []",
        "p.yaml:6:14: containers.keep[2].image: expected at least one pattern (an empty image "
        "rule would keep every container), got []",
        "p.yaml:7:14: containers.keep[3].label: expected at least one `key: value` (an empty "
        "label rule would keep every container), got {}",
    ]


def test_container_patterns_that_do_not_compile_are_errors() -> None:
    text = CONTAINERS + "  keep:\n    - name: 'regex:('\n    - image: ''\n    - neme: [x]\n"
    assert problems(text) == [
        "p.yaml:4:13: containers.keep[0].name[0]: invalid pattern 'regex:(': missing ): ^(?:()$",
        "p.yaml:5:14: containers.keep[1].image[0]: empty pattern",
        "p.yaml:6:7: containers.keep[2].neme: unknown key; did you mean `name`?",
    ]


def test_container_label_values_are_text_as_for_images() -> None:
    text = CONTAINERS + (
        "  keep:\n"
        "    - label: {gc.keep: true}\n"
        "    - label: {release: 1.10}\n"
        "    - label: {k: }\n"
        '    - label: {on: "yes"}\n'
        "    - label: {count: 3}\n"
    )
    assert problems(text) == [
        'p.yaml:4:24: containers.keep[0].label.gc.keep: a label value is text: quote it: "true" '
        "(YAML reads true as the boolean true)",
        'p.yaml:5:24: containers.keep[1].label.release: a label value is text: quote it: "1.10" '
        "(YAML reads 1.10 as the number 1.1)",
        'p.yaml:6:18: containers.keep[2].label.k: a label value is text: write "*" for any value',
        'p.yaml:7:15: containers.keep[3].label.on: keys are text: quote it: "on" '
        "(YAML 1.1 reads on as the boolean true, YAML 1.2 as text)",
        'p.yaml:8:22: containers.keep[4].label.count: a label value is text: quote it: "3" '
        "(YAML reads 3 as the number 3)",
    ]


def test_services_are_opted_in_only_by_globs_that_name_something() -> None:
    text = "containers:\n  remove_exited_after: 2d\n  remove_services_named: {}\n"
    several = "['*', 'regex:ci-.*', 'a*', 'ci-*', '???', '']"
    assert problems(text.format(several)) == [
        "p.yaml:3:27: containers.remove_services_named[0]: '*' has no literal character: it "
        "would opt in every service-like container (a restart policy or a Compose project) "
        "whatever its name, which must not happen by accident; name them with at least 3 "
        "literal characters, such as ci-svc-*",
        "p.yaml:3:32: containers.remove_services_named[1]: regex: is not accepted here: "
        "opting services in must name them with a glob of at least 3 literal characters, "
        "such as ci-svc-*",
        "p.yaml:3:47: containers.remove_services_named[2]: 'a*' has 1 literal character(s): "
        "an opt-in of services needs at least 3, such as ci-svc-*, so that it cannot match "
        "many services by accident",
        "p.yaml:3:61: containers.remove_services_named[4]: '???' has no literal character: it "
        "would opt in every service-like container (a restart policy or a Compose project) "
        "whatever its name, which must not happen by accident; name them with at least 3 "
        "literal characters, such as ci-svc-*",
        "p.yaml:3:68: containers.remove_services_named[5]: empty pattern",
    ]


def test_one_opt_in_may_be_written_as_a_string_and_none_is_the_default() -> None:
    section = parse_policy(CONTAINERS + "  remove_services_named: ci-*\n", "p.yaml").containers
    assert section is not None
    assert [p.text for p in section.remove_services_named] == ["ci-*"]
    default = parse_policy(CONTAINERS, "p.yaml").containers
    assert default is not None
    assert (default.keep, default.remove_services_named) == ((), ())


# --- volumes --------------------------------------------------------------------------------


def test_the_volumes_section_is_read_into_its_policy() -> None:
    text = (
        "volumes:\n"
        "  keep:\n"
        '    - label: {gc.keep: "true"}\n'
        "    - name: [db-*, 'regex:keep-[0-9]+']\n"
        "  anonymous_unused_for: 7d\n"
        '  named: ["ci-cache-*"]\n'
        "  named_unused_for: 14d\n"
    )
    section = parse_policy(text, "p.yaml").volumes
    assert section is not None
    assert section.anonymous_unused_for == timedelta(days=7)
    assert section.named_unused_for == timedelta(days=14)
    assert [p.text for p in section.named] == ["ci-cache-*"]
    label, name = section.keep
    assert (label.index, label.labels, label.names) == (0, {"gc.keep": "true"}, ())
    assert name.index == 1
    assert [p.matches("keep-12") for p in name.names] == [False, True]


def test_anonymous_volumes_alone_or_named_volumes_alone() -> None:
    anonymous = parse_policy(VOLUMES, "p.yaml").volumes
    assert anonymous is not None
    assert (anonymous.named, anonymous.named_unused_for) == ((), None)
    named = parse_policy("volumes:\n  named: ci-*\n  named_unused_for: 1d\n", "p.yaml").volumes
    assert named is not None
    assert named.anonymous_unused_for is None
    assert [p.text for p in named.named] == ["ci-*"]


@pytest.mark.parametrize(
    "text", ["volumes: {}\n", 'volumes:\n  keep:\n    - label: {gc.keep: "true"}\n']
)
def test_a_volumes_section_that_would_touch_nothing_is_refused(text: str) -> None:
    (problem,) = problems(text)
    assert problem.endswith(
        "volumes: this volumes section would touch no volume: give anonymous_unused_for "
        "(anonymous volumes) or named with named_unused_for (named volumes), or leave the "
        "section out"
    )


def test_named_and_named_unused_for_come_together() -> None:
    assert problems("volumes:\n  named: [ci-*]\n") == [
        "p.yaml:2:10: volumes.named: named volumes need named_unused_for too: how long no "
        "container may have used one before it goes, such as 14d"
    ]
    assert problems(VOLUMES + "  named_unused_for: 14d\n") == [
        "p.yaml:3:21: volumes.named_unused_for: named_unused_for without named: named volumes "
        'are touched only when a pattern in named names them, such as named: ["ci-cache-*"]'
    ]
    assert problems("volumes:\n  named: []\n  named_unused_for: 1d\n") == [
        "p.yaml:2:10: volumes.named: expected at least one pattern (an empty list names no "
        "volume: leave named out), got []"
    ]


def test_volume_keep_rules_are_checked_like_container_ones() -> None:
    text = VOLUMES + (
        "  keep:\n    - label: {mode: 0755}\n    - name: []\n    - {}\n    - image: [x]\n"
    )
    assert problems(text) == [
        'p.yaml:4:21: volumes.keep[0].label.mode: a label value is text: quote it: "0755" '
        "(YAML 1.1 reads 0755 as the octal number 493, YAML 1.2 as the number 755)",
        "p.yaml:5:13: volumes.keep[1].name: expected at least one pattern (an empty name rule "
        "would keep every volume), got []",
        "p.yaml:6:7: volumes.keep[2]: a keep rule needs at least one of label, name",
        "p.yaml:7:7: volumes.keep[3].image: unknown key; known keys: label, name",
    ]


# --- build cache ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "unused_for", "max_size"),
    [
        ("{unused_for: 7d, max_size: 20GB}", timedelta(days=7), 20 * 10**9),
        ("{max_size: 20GiB}", None, 20 * 2**30),
        ("{max_size: 1.5 GB}", None, 1_500_000_000),
        ("{max_size: 0B}", None, 0),
        ("{unused_for: 12h}", timedelta(hours=12), None),
    ],
)
def test_the_build_cache_section_is_read_into_its_policy(
    text: str, unused_for: timedelta | None, max_size: int | None
) -> None:
    section = parse_policy(f"build_cache: {text}\n", "p.yaml").build_cache
    assert section is not None
    assert (section.unused_for, section.max_size_bytes) == (unused_for, max_size)


def test_a_build_cache_section_that_would_remove_nothing_is_refused() -> None:
    assert problems("build_cache: {}\n") == [
        "p.yaml:1:14: build_cache: this build_cache section would remove nothing: give "
        "unused_for, max_size or both, or leave the section out"
    ]


@pytest.mark.parametrize(
    ("value", "shown"), [("20", "20"), ("20XB", '"20XB"'), ("'20'", '"20"'), ("true", "true")]
)
def test_a_size_needs_its_unit(value: str, shown: str) -> None:
    assert problems(f"build_cache: {{max_size: {value}}}\n") == [
        "p.yaml:1:25: build_cache.max_size: expected a size with its unit, such as 500MB, 20GB "
        f"or 20GiB, got {shown}"
    ]


# --- networks -------------------------------------------------------------------------------


def test_the_networks_section_is_read_into_its_policy() -> None:
    section = parse_policy("networks: {unused_for: 1d}\n", "p.yaml").networks
    assert section is not None
    assert section.unused_for == timedelta(days=1)


def test_a_networks_section_needs_unused_for_as_a_duration() -> None:
    assert problems("networks: {}\n") == [
        "p.yaml:1:11: networks.unused_for: required: how long no container may have used a "
        "network before it goes, such as 1d (there is no default)"
    ]
    assert problems("networks: {unused_for: 1}\n") == [
        "p.yaml:1:24: networks.unused_for: expected a duration such as 30s, 15m, 1h, 7d or 2w, "
        "got 1"
    ]


# --- the critical watermark -----------------------------------------------------------------


def test_critical_is_optional_and_must_lie_above_high() -> None:
    disk = parse_policy("schedule:\n  disk: {high: 0.8, low: 0.7}\n", "p.yaml").schedule.disk
    assert disk is not None
    assert (disk.critical, disk.critical_ratio, disk.check_every) == (
        None,
        0.95,
        timedelta(seconds=30),
    )
    given = "schedule:\n  disk: {high: 0.8, low: 0.7, critical: 97%, check_every: 10s}\n"
    disk = parse_policy(given, "p.yaml").schedule.disk
    assert disk is not None
    assert (disk.critical, disk.check_every) == (0.97, timedelta(seconds=10))
    assert problems("schedule:\n  disk: {high: 0.8, low: 0.7, critical: 0.8}\n") == [
        "p.yaml:2:41: schedule.disk.critical: critical (80%) must be above high (80%): at "
        "critical, containers, volumes and build cache go before images"
    ]
    assert problems("schedule:\n  disk: {critical: 1.5}\n") == [
        "p.yaml:2:20: schedule.disk.critical: expected a share above 0 and at most 1 (100%), "
        "got 1.5"
    ]


def test_every_new_section_reports_all_its_problems_at_once() -> None:
    text = (
        "containers: {keep: [{}]}\n"
        "volumes: {named: [x]}\n"
        "build_cache: {max_size: 3}\n"
        "networks: {unused_for: soon}\n"
    )
    assert [p.split(": ")[0] for p in problems(text)] == [
        "p.yaml:1:13",
        "p.yaml:1:21",
        "p.yaml:2:18",
        "p.yaml:3:25",
        "p.yaml:4:24",
    ]


# --- the example policy ---------------------------------------------------------------------


def example(uncommented: bool) -> str:
    """policy.example.yaml, with its optional sections (and `critical`) uncommented or not."""
    text = EXAMPLE.read_text()
    if not uncommented:
        return text
    head, rest = text.split("# --- begin optional sections ---\n")
    sections, tail = rest.split("# --- end optional sections ---\n")
    lines = [line.removeprefix("# ") for line in sections.splitlines(keepends=True)]
    return head + "".join(lines) + tail.replace("    # critical: 95%", "    critical: 95%")


def test_the_example_touches_images_only_as_shipped() -> None:
    policy = parse_policy(example(uncommented=False), "policy.example.yaml")
    assert policy.images is not None
    assert (policy.containers, policy.volumes, policy.build_cache, policy.networks) == (
        None,
        None,
        None,
        None,
    )
    assert policy.schedule.disk is not None
    assert policy.schedule.disk.critical is None


def test_the_examples_optional_sections_load_as_documented() -> None:
    policy = parse_policy(example(uncommented=True), "policy.example.yaml")
    containers, volumes = policy.containers, policy.volumes
    assert containers is not None
    assert [r.rule_id for r in containers.keep] == [RuleId.LABEL, RuleId.NAME, RuleId.IMAGE]
    assert containers.remove_exited_after == timedelta(days=2)
    assert [p.text for p in containers.remove_services_named] == ["ci-svc-*"]
    assert volumes is not None
    assert (volumes.anonymous_unused_for, volumes.named_unused_for) == (
        timedelta(days=7),
        timedelta(days=14),
    )
    assert [p.text for p in volumes.named] == ["ci-cache-*"]
    assert policy.build_cache is not None
    assert (policy.build_cache.unused_for, policy.build_cache.max_size_bytes) == (
        timedelta(days=7),
        20 * 10**9,
    )
    assert policy.networks is not None
    assert policy.networks.unused_for == timedelta(days=1)
    assert policy.schedule.disk is not None
    assert policy.schedule.disk.critical == 0.95
    assert policy.images is not None  # unchanged by the other sections
    assert len(policy.images.keep) == 5


# --- the safety limits of each kind ---------------------------------------------------------

SECTIONS = {
    Kind.IMAGE: "images:\n  keep: []\n",
    Kind.CONTAINER: CONTAINERS,
    Kind.VOLUME: VOLUMES,
    Kind.BUILD_CACHE: "build_cache:\n  unused_for: 7d\n",
    Kind.NETWORK: "networks:\n  unused_for: 1d\n",
}


@pytest.mark.parametrize("kind", list(SECTIONS), ids=str)
def test_a_section_sets_its_own_limits_for_its_kind_alone(kind: Kind) -> None:
    text = (
        "safety: {max_deletions_per_run: 50, max_delete_fraction: 80%}\n"
        + SECTIONS[kind]
        + "  max_deletions_per_run: 3\n  max_delete_fraction: 1\n"
    )
    safety = parse_policy(text, "p.yaml").safety
    own = safety.limits(kind)
    assert (own.max_deletions_per_run, own.max_delete_fraction) == (3, 1.0)
    section = text.split("\n")[1].rstrip(":")
    assert own.fraction_key == f"{section}.max_delete_fraction"
    assert own.deletions_key == f"{section}.max_deletions_per_run"
    for other in set(Kind) - {kind}:
        theirs = safety.limits(other)
        assert (theirs.max_deletions_per_run, theirs.max_delete_fraction) == (50, 0.8)
        assert theirs.fraction_key == "safety.max_delete_fraction"


@pytest.mark.parametrize("kind", list(SECTIONS), ids=str)
def test_without_its_own_limits_a_section_obeys_safety(kind: Kind) -> None:
    text = "safety: {max_deletions_per_run: 50}\n" + SECTIONS[kind]
    limits = parse_policy(text, "p.yaml").safety.limits(kind)
    assert (limits.max_deletions_per_run, limits.max_delete_fraction) == (50, 0.9)
    assert (limits.deletions_key, limits.fraction_key) == (
        "safety.max_deletions_per_run",
        "safety.max_delete_fraction",
    )


def test_one_own_limit_leaves_the_other_to_safety() -> None:
    text = "build_cache:\n  unused_for: 7d\n  max_delete_fraction: 100%\n"
    limits = parse_policy(text, "p.yaml").safety.limits(Kind.BUILD_CACHE)
    assert (limits.max_deletions_per_run, limits.max_delete_fraction) == (500, 1.0)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "build_cache:\n  unused_for: 7d\n  max_delete_fraction: 150%\n",
            "p.yaml:3:24: build_cache.max_delete_fraction: expected a share above 0 and at "
            'most 1 (100%), got "150%"',
        ),
        (
            "networks: {unused_for: 1d, max_delete_fraction: true}\n",
            "p.yaml:1:49: networks.max_delete_fraction: expected a share such as 0.9 or 90%, "
            "got true",
        ),
        (
            CONTAINERS + "  max_deletions_per_run: 0\n",
            "p.yaml:3:26: containers.max_deletions_per_run: expected a whole number from 1 to "
            "1000000, got 0",
        ),
        (
            "images:\n  max_deletions_per_run: 1.5\n",
            "p.yaml:2:26: images.max_deletions_per_run: expected a whole number from 1 to "
            "1000000, got 1.5",
        ),
        (
            VOLUMES + "  max_deletions_per_run: '10'\n",
            "p.yaml:3:26: volumes.max_deletions_per_run: expected a whole number from 1 to "
            '1000000, got "10"',
        ),
        (
            "networks: {unused_for: 1d, max_delete_fractoin: 1}\n",
            "p.yaml:1:28: networks.max_delete_fractoin: unknown key; did you mean "
            "`max_delete_fraction`?",
        ),
    ],
    ids=["share-over-1", "share-bool", "cap-0", "cap-float", "cap-text", "typo"],
)
def test_a_kind_s_own_limit_is_validated_as_safety_s_at_its_position(
    text: str, problem: str
) -> None:
    assert problems(text) == [problem]


def test_limits_alone_do_not_make_a_section_that_removes_something() -> None:
    (problem,) = problems("build_cache: {max_delete_fraction: 1}\n")
    assert "this build_cache section would remove nothing" in problem


def test_the_examples_build_cache_may_go_whole_and_the_other_kinds_obey_safety() -> None:
    safety = parse_policy(example(uncommented=True), "policy.example.yaml").safety
    assert safety.limits(Kind.BUILD_CACHE).max_delete_fraction == 1.0
    assert safety.limits(Kind.BUILD_CACHE).max_deletions_per_run == 500
    for kind in set(Kind) - {Kind.BUILD_CACHE}:
        assert safety.limits(kind).max_delete_fraction == 0.9, kind
