"""`gcd test-pattern` for containers and volumes: which rule of the policy would decide one,
said without an engine, in the order the kinds' judges decide."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from gcd.cli import main
from gcd.config.loader import parse_policy
from gcd.core.explain import container_named, explain_container, explain_volume, volume_named
from gcd.core.kinds.containers import is_service
from gcd.errors import ExitCode

POLICY = parse_policy(
    """
containers:
  keep:
    - label: {gc.keep: "true"}
    - name: ["db-*", "*-debug"]
    - image: ["postgres:*"]
    - {name: "ci-*", image: "redis:*"}
  remove_exited_after: 2d
  remove_services_named: ["ci-svc-*"]
volumes:
  keep:
    - label: {gc.keep: "true"}
    - name: keep-*
  anonymous_unused_for: 7d
  named: ["ci-cache-*"]
  named_unused_for: 14d
""",
    "p.yaml",
)
CONTAINERS, VOLUMES = POLICY.containers, POLICY.volumes
GOES = (
    "goes once stopped for longer than 2d (delete.exited); never while running, paused, "
    "restarting or being removed"
)
LABEL_RULE = "containers.keep[0] label gc.keep=true (keep.label) if it has those labels"


def about(name: str, image: str = "", restart: str = "no", **labels: str) -> str:
    return explain_container(CONTAINERS, container_named(name, image, labels, restart))


class TestContainers:
    def test_the_first_keep_rule_that_holds_is_named(self) -> None:
        assert about("x", **{"gc.keep": "true"}) == (
            "kept by containers.keep[0] label gc.keep=true (keep.label)"
        )
        assert about("db-main") == (
            f"kept by containers.keep[1] name db-*,*-debug (keep.name); earlier, {LABEL_RULE}"
        )
        assert about("web", "postgres:16").startswith(
            "kept by containers.keep[2] image postgres:* (keep.image)"
        )
        assert about("/web-debug").startswith("kept by containers.keep[1]")  # as docker names it

    def test_image_rules_match_references_as_image_rules_do(self) -> None:
        assert about("web", "docker.io/library/postgres:16").startswith(
            "kept by containers.keep[2]"
        )
        assert not about("web", "mysql:8").startswith("kept by")

    def test_rules_that_need_what_was_not_given_are_said_as_conditions(self) -> None:
        # No image given: the image rules may hold; the name+image rule only for its names.
        assert about("web") == (
            f"kept only by {LABEL_RULE}; or containers.keep[2] image postgres:* (keep.image) "
            f"if its image matches; otherwise not a service (restart policy no, no Compose "
            f"project); {GOES}"
        )
        assert "containers.keep[3]" in about("ci-build")
        # Given, an image that does not match rules those out.
        assert about("web", "nginx:1") == (
            f"kept only by {LABEL_RULE}; otherwise not a service (restart policy no, no "
            f"Compose project); {GOES}"
        )

    def test_all_conditions_of_one_rule_must_hold(self) -> None:
        assert about("ci-build", "redis:7").startswith("kept by containers.keep[3] name ci-*")
        assert not about("ci-build", "nginx:1").startswith("kept by")
        assert not about("web", "redis:7").startswith("kept by")

    def test_a_service_is_kept_unless_a_pattern_opts_it_in(self) -> None:
        assert about("web", "nginx:1", "unless-stopped").endswith(
            "otherwise a service (restart policy unless-stopped): kept (keep.service), as no "
            "containers.remove_services_named pattern names it"
        )
        compose = about("shop-web-1", "nginx:1", **{"com.docker.compose.project": "shop"})
        assert "a service (Compose project shop): kept (keep.service)" in compose
        assert about("ci-svc-db", "nginx:1", "always").endswith(
            "otherwise a service (restart policy always), opted in by "
            f"containers.remove_services_named[0] ci-svc-*; {GOES}"
        )

    def test_what_counts_as_a_service_is_the_kinds_own_reading(self) -> None:
        for restart, labels, service in [
            ("no", {}, False),
            ("", {}, False),
            ("on-failure", {}, True),
            ("no", {"com.docker.compose.project": "p"}, True),
        ]:
            container = container_named("c", "", labels, restart)
            assert is_service(container) is service
            said = explain_container(CONTAINERS, container)
            assert ("not a service" not in said) is service

    def test_without_a_section_containers_are_not_touched(self) -> None:
        assert explain_container(None, container_named("db")) == (
            "not touched: the policy has no containers section"
        )


VOLUME_LABEL_RULE = "volumes.keep[0] label gc.keep=true (keep.label) if it has those labels"


class TestVolumes:
    @pytest.mark.parametrize(
        ("name", "labels", "answer"),
        [
            ("x", {"gc.keep": "true"}, "kept by volumes.keep[0] label gc.keep=true (keep.label)"),
            (
                "keep-1",
                {},
                f"kept by volumes.keep[1] name keep-* (keep.name); earlier, {VOLUME_LABEL_RULE}",
            ),
            (
                "f" * 64,
                {},
                f"kept only by {VOLUME_LABEL_RULE}; otherwise anonymous: goes once no container "
                "has used it for 1w (delete.unused); never while any container mounts it "
                "(keep.in_use)",
            ),
            (
                "ci-cache-go",
                {"team": "ci"},
                f"kept only by {VOLUME_LABEL_RULE}; otherwise named by volumes.named[0] "
                "ci-cache-*: goes once no container has used it for 2w (delete.unused); never "
                "while any container mounts it (keep.in_use)",
            ),
            (
                "data",
                {},
                f"kept only by {VOLUME_LABEL_RULE}; otherwise named, and no volumes.named "
                "pattern names it: kept (keep.named)",
            ),
        ],
    )
    def test_each_part_of_the_section_is_named(
        self, name: str, labels: dict[str, str], answer: str
    ) -> None:
        assert explain_volume(VOLUMES, volume_named(name, labels)) == answer

    def test_anonymous_by_label_or_by_a_generated_name(self) -> None:
        assert volume_named("f" * 64).anonymous
        assert volume_named("x", {"com.docker.volume.anonymous": ""}).anonymous
        assert not volume_named("F" * 64).anonymous
        assert not volume_named("data").anonymous

    def test_anonymous_volumes_untouched_without_anonymous_unused_for(self) -> None:
        only_named = parse_policy("volumes: {named: x-*, named_unused_for: 1d}\n", "p").volumes
        assert explain_volume(only_named, volume_named("a" * 64)) == (
            "anonymous: not touched (volumes.anonymous_unused_for is not set)"
        )
        assert explain_volume(None, volume_named("x")) == (
            "not touched: the policy has no volumes section"
        )


@pytest.fixture
def logging_reset() -> Iterator[None]:
    """`main` points structlog at this test's captured stderr; later tests must not log there."""
    yield
    structlog.reset_defaults()


@pytest.mark.usefixtures("logging_reset")
def test_the_command_answers_for_references_a_container_and_a_volume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "images:\n  keep:\n    - reference: alpine:*\n"
        "containers:\n  remove_exited_after: 2d\n  remove_services_named: ci-svc-*\n"
        "volumes:\n  anonymous_unused_for: 7d\n"
    )
    policy.chmod(0o644)
    args = [str(policy), "alpine:3", "--container", "ci-svc-db", "--restart-policy", "always"]
    assert main(["test-pattern", *args, "--label", "team=ci", "--image", "redis:7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "alpine:3: kept by images.keep[0] reference alpine:* (keep.reference)",
        "container ci-svc-db: a service (restart policy always), opted in by "
        f"containers.remove_services_named[0] ci-svc-*; {GOES}",
    ]
    assert main(["test-pattern", str(policy), "--volume", "data"]) == 0
    assert capsys.readouterr().out == (
        "volume data: named, and no volumes.named pattern names it: kept (keep.named)\n"
    )
    assert main(["test-pattern", str(policy), "--container", "c", "--image", "Bad/Ref"]) == 2
    assert "--image Bad/Ref: error: repository names must be lowercase" in capsys.readouterr().out
    for wrong in (
        [],
        ["alpine:3", "--image", "redis:7"],
        ["alpine:3", "--label", "a=b"],
        ["--container", "c", "--label", "novalue"],
    ):
        assert main(["test-pattern", str(policy), *wrong]) == ExitCode.BAD_POLICY_OR_USAGE
        assert capsys.readouterr().err.startswith("gcd: ")
