"""What the policy would say about one container or volume, without an engine
(`gcd test-pattern --container/--volume`). Pure.

An operator asks before a run: would this container be kept, by which rule, does it count as
a service, does `remove_services_named` opt it in? The answer follows the order the kind's
judge decides in (keep rules, then services, then age) and names every rule by its place in
the file, so a wrong pattern shows here and not as a deletion. What only the engine knows
(the container's state, which containers mount a volume, ages) is said as a condition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from gcd.core.kinds.containers import (
    COMPOSE_PROJECT_LABEL,
    ContainerKeepRule,
    ContainerPolicy,
    is_service,
)
from gcd.core.kinds.volumes import ANY_VALUE, VolumeKeepRule, VolumePolicy
from gcd.core.kinds.volumes import describe as describe_volume_rule
from gcd.core.kinds.volumes import rule_id as volume_rule_id
from gcd.core.records import EPOCH, Container, ContainerState, Volume, is_anonymous_volume
from gcd.core.rules import RuleId
from gcd.core.units import spell_duration


def _labels_hold(wanted: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(
        key in labels and (value == ANY_VALUE or labels[key] == value)
        for key, value in wanted.items()
    )


def _container_conditional(rule: ContainerKeepRule, container: Container) -> str | None:
    """A rule that would hold if the container had the labels or the image it names: what is
    missing; None when it cannot hold (its name, or its given image, does not match)."""
    if rule.names and not any(p.matches(container.name) for p in rule.names):
        return None
    missing = []
    if not _labels_hold(rule.labels, container.labels):
        missing.append("it has those labels")
    if rule.images and not replace(rule, labels={}, names=()).holds(container):
        if container.image:
            return None
        missing.append("its image matches")
    return f"{rule.describe()} ({rule.rule_id.value}) if " + " and ".join(missing)


def _service(section: ContainerPolicy, container: Container) -> tuple[str, bool]:
    """Whether it counts as a service, why, and whether an opt-in names it."""
    reasons = []
    if container.restart_policy not in ("", "no"):
        reasons.append(f"restart policy {container.restart_policy}")
    if COMPOSE_PROJECT_LABEL in container.labels:
        reasons.append(f"Compose project {container.labels[COMPOSE_PROJECT_LABEL]}")
    opted = next(
        (
            f"containers.remove_services_named[{i}] {p.text}"
            for i, p in enumerate(section.remove_services_named)
            if p.matches(container.name)
        ),
        None,
    )
    if opted is None:
        return (
            f"a service ({', '.join(reasons)}): kept ({RuleId.SERVICE.value}), as no "
            "containers.remove_services_named pattern names it",
            False,
        )
    return f"a service ({', '.join(reasons)}), opted in by {opted}", True


def explain_container(section: ContainerPolicy | None, container: Container) -> str:
    """The first keep rule that holds, else whether it is a service and opted in, else when
    it goes; conditional rules (labels or image not given) before the answer."""
    if section is None:
        return "not touched: the policy has no containers section"
    conditional: list[str] = []
    for rule in section.keep:
        if rule.holds(container):
            answer = f"kept by {rule.describe()} ({rule.rule_id.value})"
            return answer + ("; earlier, " + "; ".join(conditional) if conditional else "")
        condition = _container_conditional(rule, container)
        if condition is not None:
            conditional.append(condition)
    if is_service(container):
        said, opted_in = _service(section, container)
        parts = [said]
    else:
        parts, opted_in = ["not a service (restart policy no, no Compose project)"], True
    if opted_in:
        parts.append(
            f"goes once stopped for longer than {spell_duration(section.remove_exited_after)}"
            f" ({RuleId.EXITED.value}); never while running, paused, restarting or being "
            "removed"
        )
    answer = "; ".join(parts)
    return (
        f"kept only by {'; or '.join(conditional)}; otherwise {answer}" if conditional else answer
    )


def container_named(
    name: str, image: str = "", labels: Mapping[str, str] | None = None, restart_policy: str = "no"
) -> Container:
    """A stopped container as an operator describes it (`docker ps` shows `/name` as `name`)."""
    return Container(
        id="",
        name=name.removeprefix("/"),
        image_id="",
        state=ContainerState.EXITED,
        image=image,
        labels=dict(labels or {}),
        restart_policy=restart_policy,
        details_known=True,
    )


def volume_named(name: str, labels: Mapping[str, str] | None = None) -> Volume:
    """A volume as an operator describes it: anonymous as the engine marks it (the label,
    engines ≥ 23) or names it (64 hex digits, older engines)."""
    labels = dict(labels or {})
    anonymous = is_anonymous_volume(name, labels)
    return Volume(name=name, driver="local", seen_at=EPOCH, anonymous=anonymous, labels=labels)


def _volume_rule(rule: VolumeKeepRule) -> tuple[str, RuleId]:
    return describe_volume_rule(rule), volume_rule_id(rule)


def explain_volume(section: VolumePolicy | None, volume: Volume) -> str:
    """The first keep rule that holds, else which part of the section applies to it;
    label rules for labels not given are said as conditions first."""
    if section is None:
        return "not touched: the policy has no volumes section"
    conditional: list[str] = []
    for rule in section.keep:
        if rule.names and not any(p.matches(volume.name) for p in rule.names):
            continue
        text, rule_id = _volume_rule(rule)
        if _labels_hold(rule.labels, volume.labels):
            answer = f"kept by {text} ({rule_id.value})"
            return answer + ("; earlier, " + "; ".join(conditional) if conditional else "")
        conditional.append(f"{text} ({rule_id.value}) if it has those labels")
    answer = _volume_section(section, volume)
    if conditional:
        return f"kept only by {'; or '.join(conditional)}; otherwise {answer}"
    return answer


def _volume_section(section: VolumePolicy, volume: Volume) -> str:
    """Which part of the section applies to a volume no keep rule keeps."""
    guard = f"; never while any container mounts it ({RuleId.IN_USE.value})"
    if volume.anonymous:
        if section.anonymous_unused_for is None:
            return "anonymous: not touched (volumes.anonymous_unused_for is not set)"
        after = spell_duration(section.anonymous_unused_for)
        return (
            f"anonymous: goes once no container has used it for {after} "
            f"({RuleId.UNUSED.value}){guard}"
        )
    named = next(
        (
            f"volumes.named[{i}] {p.text}"
            for i, p in enumerate(section.named)
            if p.matches(volume.name)
        ),
        None,
    )
    if named is None or section.named_unused_for is None:
        return f"named, and no volumes.named pattern names it: kept ({RuleId.NAMED.value})"
    after = spell_duration(section.named_unused_for)
    return (
        f"named by {named}: goes once no container has used it for {after} "
        f"({RuleId.UNUSED.value}){guard}"
    )
