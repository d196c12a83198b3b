"""A crafted build host of any size, for the plan table's tests (and for looking at it:
`python -m tests.unit.sample_plans 300`).

Repositories of releases (`reg.example.com/team/svcN:1.K`, each on a shared base), branch
builds, two classic builds sharing an untagged parent's layers, dangling images, and a
container using one release; the policy keeps releases by reference and the newest three.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import timedelta

from gcd.core.evaluate import evaluate
from gcd.core.plan import Plan
from gcd.core.records import ContainerState, Image, Snapshot
from gcd.render import write_plan_table
from tests.unit.builders import NOW, container, days, hours, image, policy, rule, snapshot

RELEASES = rule(0, references=("reg.example.com/team/**:v*",))
NEWEST = rule(1, newest=3)


def host(images: int) -> Snapshot:
    """About `images` images: per repository eight releases and four branch builds."""
    parent = ("classic-from", "classic-run-1")
    made: list[Image] = [
        image("ci/tool:a", age=days(20), layers=(*parent, "classic-a")),
        image("ci/tool:b", age=days(19), layers=(*parent, "classic-b")),
        image(age=days(12), seed="dangling-1", layers=("dangling-1",)),
        image(age=timedelta(minutes=20), seed="dangling-2", layers=("dangling-2",)),
    ]
    repository = 0
    while len(made) < images:
        name = f"reg.example.com/team/svc{repository}"
        base = (f"base-{repository % 3}-a", f"base-{repository % 3}-b")
        for release in range(8):
            made.append(
                image(
                    f"{name}:1.{release}",
                    *([f"{name}:latest"] if release == 7 else []),
                    age=days(40 - 5 * release) + hours(repository),
                    layers=(*base, f"{name}-r{release}"),
                )
            )
        for branch in range(4):
            made.append(
                image(
                    f"{name}:feature-{branch}",
                    age=days(3 * branch + 1) + hours(repository),
                    layers=(*base, f"{name}-b{branch}"),
                )
            )
        repository += 1
    used = made[4]
    running = container(used, name="svc0-prod", state=ContainerState.RUNNING)
    layer = 40 * 2**20
    sized = [replace(i, size_bytes=layer * len(i.layers)) for i in made[:images]]
    return snapshot(*sized, containers=(running,), layer_size=layer)


def sample_plan(images: int) -> Plan:
    return evaluate(host(images), policy(NEWEST, min_age=hours(1)), NOW)


if __name__ == "__main__":  # pragma: no cover - for looking at the table
    write_plan_table(sample_plan(int(sys.argv[1]) if len(sys.argv) > 1 else 20), sys.stdout)
