"""A small sample build host: what `scripts/demo` shows and the end-to-end test checks.

Every image says which rule of `policy.example.yaml` decides it. Local ages are set by writing
gcd's own state file, as if gcd had been watching this host for weeks: a fresh engine cannot
make an image older than the moment it was loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker

from gcd.core.rules import RuleId
from tests.integration.images import ImageSpec, image, layer, load, runnable_layer
from tests.integration.state_seed import engine_state

MiB = 2**20
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
YEAR_ONE = datetime(1, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SampleImage:
    spec: ImageSpec
    seen_days_ago: float
    expected: RuleId
    why: str
    labels: Mapping[str, str] = field(default_factory=dict)


def _now() -> datetime:
    return datetime.now(UTC)


def sample_images(now: datetime | None = None) -> list[SampleImage]:
    now = now or _now()
    base_os = layer(3 * MiB, "base-os")
    python = layer(2 * MiB, "python-runtime")
    busybox = runnable_layer()

    def ago(days: float) -> datetime:
        return now - timedelta(days=days)

    images: list[SampleImage] = [
        SampleImage(
            image(base_os, tags=("alpine:3.19",), created=ago(400)),
            60,
            RuleId.REFERENCE,
            "pinned base image",
        ),
        SampleImage(
            image(layer(2 * MiB, "debian"), tags=("debian:12",), created=ago(300)),
            60,
            RuleId.REFERENCE,
            "pinned base image",
        ),
        SampleImage(
            image(
                base_os,
                python,
                tags=("registry.example.com/team/base/python:3.12",),
                created=ago(90),
            ),
            45,
            RuleId.REFERENCE,
            "**/base/*:* pin",
        ),
        SampleImage(
            image(
                layer(1 * MiB, "golden"),
                tags=("tools/golden:1",),
                created=EPOCH,
                labels={"gc.keep": "true"},
            ),
            90,
            RuleId.LABEL,
            "gc.keep label, reproducible 1970 Created",
        ),
    ]
    # Twelve releases: the 10 newest stay by the release rule, the 2 oldest go.
    for n in range(1, 13):
        images.append(
            SampleImage(
                image(
                    base_os,
                    python,
                    layer(MiB // 2, f"app-release-{n}"),
                    tags=(f"registry.example.com/team/app:v{n}",),
                    created=ago(40 - 2 * n),
                ),
                40 - 2 * n,
                RuleId.NEWEST if n >= 3 else RuleId.UNKEPT,
                "release" if n >= 3 else "release beyond the 10 newest",
            )
        )
    # Branch builds: the repository's 2 newest stay by `newest: 2`, a third by `younger_than`.
    for name, days, rule in (
        ("hotfix-db", 1, RuleId.NEWEST),
        ("feature-login", 2, RuleId.NEWEST),
        ("feature-search", 4, RuleId.YOUNGER_THAN),
    ):
        images.append(
            SampleImage(
                image(
                    base_os,
                    python,
                    layer(MiB, f"app-branch-{name}"),
                    tags=(f"registry.example.com/team/app:{name}",),
                    created=ago(days),
                ),
                days,
                rule,
                f"branch build from {days} days ago",
            )
        )
    images += [
        SampleImage(
            image(
                base_os,
                python,
                layer(MiB, "app-branch-stale"),
                tags=(
                    "registry.example.com/team/app:feature-old",
                    "registry.example.com/team/app:pr-17",
                ),
                created=ago(20),
            ),
            20,
            RuleId.UNKEPT,
            "stale branch build with two tags",
        ),
        SampleImage(
            image(busybox, layer(MiB // 4, "runner"), tags=("ci/runner:stable",), created=ago(30)),
            30,
            RuleId.IN_USE,
            "a running container uses it",
        ),
        SampleImage(
            image(busybox, layer(MiB // 4, "migrate"), tags=("ci/migrate:old",), created=ago(50)),
            50,
            RuleId.IN_USE,
            "only a stopped container uses it",
        ),
        SampleImage(
            image(
                layer(MiB, "nightly"), tags=("ci/nightly:future",), created=now + timedelta(days=30)
            ),
            20,
            RuleId.CREATED_IN_FUTURE,
            "Created lies in the future (clock skew on the builder)",
        ),
        SampleImage(
            image(layer(MiB, "cache-1"), tags=("ci/cache:build-1",), created=YEAR_ONE),
            30,
            RuleId.UNKEPT,
            "third newest of its repository, 0001 Created",
        ),
        SampleImage(
            image(layer(MiB, "cache-2"), tags=("ci/cache:build-2",), created=YEAR_ONE),
            25,
            RuleId.NEWEST,
            "second newest of its repository",
        ),
        SampleImage(
            image(layer(MiB, "cache-3"), tags=("ci/cache:build-3",), created=YEAR_ONE),
            10,
            RuleId.NEWEST,
            "newest of its repository",
        ),
        SampleImage(
            image(base_os, python, layer(MiB, "dangling-old"), created=ago(3)),
            3,
            RuleId.DANGLING,
            "dangling for 3 days",
        ),
        SampleImage(
            image(base_os, layer(MiB, "dangling-new"), created=ago(0.01)),
            0.01,
            RuleId.MIN_AGE,
            "dangling, seen 15 minutes ago",
        ),
    ]
    return images


@dataclass(frozen=True)
class SampleHost:
    images: list[SampleImage]
    ids: dict[str, SampleImage]
    running: str
    stopped: str


def seed(api: docker.APIClient, state_dir: Path, now: datetime | None = None) -> SampleHost:
    """Load the sample images, start a running and a stopped container, and backdate gcd's
    first-seen records."""
    now = now or _now()
    images = sample_images(now)
    ids = load(api, *(s.spec for s in images))
    by_id = dict(zip(ids, images, strict=True))
    running = api.create_container(
        "ci/runner:stable", command=["sleep", "100000"], network_disabled=True, name="runner"
    )["Id"]
    api.start(running)
    stopped = api.create_container(
        "ci/migrate:old", command=["true"], network_disabled=True, name="migrate-done"
    )["Id"]
    api.start(stopped)
    api.wait(stopped)  # ran and exited: a stopped container, as after a finished CI job
    state = engine_state(api, state_dir)
    for image_id, sample in by_id.items():
        state.mark_seen(image_id, now - timedelta(days=sample.seen_days_ago))
    state.save()
    return SampleHost(images, by_id, running, stopped)
