"""Race load (docs/reliability.md): for a bounded time, while a daemon runs a cycle every
second, threads race it the way a busy CI host does: they create containers from the very
images gcd is about to delete, move kept tags onto and off deletion candidates, load and
build new images under moving tags, and remove their own containers. Then an independent
check of the final engine (the docker SDK) against the race's own bookkeeping and gcd's JSON
log: nothing a rule or the in-use guard kept is gone, no container lost its image, every
image that disappeared was removed and logged by gcd, and the log holds no traceback.

The one window README ("Several tags: one request by id, and the one moment left") admits, a
tag or container put on a planned multi-tag image in the round trip between gcd's last check
and its delete, is logged by gcd as an error (`image_removed_with_unplanned_references`,
`image_removed_under_container`); the test counts such hits and requires each to be logged."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest
from structlog.testing import capture_logs

from gcd.core.references import parse_reference
from gcd.engine.client import Engine
from gcd.engine.executor import execute
from gcd.engine.timeouts import TIMEOUTS_ENV
from tests.figures import Figure, record
from tests.integration.builds import build, context, no_buildkit
from tests.integration.daemon_process import DaemonProcess
from tests.integration.engines import Traits
from tests.integration.harness import PrivateEngine
from tests.integration.images import archive, image, image_id, layer, load
from tests.integration.proxy import EngineProxy
from tests.integration.reliability import backdate, has_traceback, image_ids, short
from tests.integration.test_executor import plan_now

RACE_SECONDS = 45.0
TRIALS = 8
"""Deletes raced by a dozen creates each: before the run-end check, every case lost
containers unreported in its first or second trial."""
REAL_SETTLE = {TIMEOUTS_ENV: "settle=2"}
"""The production settle of the orphan check (the suite's conftest shortens it elsewhere)."""
POLICY = (
    "version: 1\n"
    "safety: {min_age: 5s, max_delete_fraction: 1, max_deletions_per_run: 1000}\n"
    "images:\n"
    "  keep:\n"
    "    - reference: ['keep/**']\n"
    "    - reference: ['rel/**']\n"
    "      newest: 2\n"
    "    - younger_than: 10s\n"
    "  dangling: {keep_within: 5s}\n"
    "schedule:\n"
    "  every: 1s\n"
)
MOVING_KEPT = ("keep/mv:a", "keep/mv:b")
RELEASES = ("rel/app:latest", "rel/app:main")
BUILT = "rel/built:latest"


@dataclass
class Bookkeeping:
    """What the race did, for the checks afterwards: every image id it made or saw, where it
    last put each moving name, the containers it made (and removed), and counters."""

    candidates: list[str]
    ids: set[str] = field(default_factory=set)
    last: dict[str, str] = field(default_factory=dict)
    containers: dict[str, str] = field(default_factory=dict)
    removed_containers: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[BaseException] = field(default_factory=list)
    incidents: list[tuple[str, str, str]] = field(default_factory=list)
    """(what, name or container, image id): a kept object found gone during the race."""
    checks: int = 0
    """Times a kept object was looked for (each one at risk at that moment)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def gone(self, image: str) -> None:
        """`image` was removed (a create or tag found it missing): no candidate any more."""
        with self.lock:
            if image in self.candidates:
                self.candidates.remove(image)

    def still_holds(self, api: docker.APIClient, name: str) -> None:
        """The name is where the race last put it: a rule kept that image meanwhile."""
        with self.lock:
            holder = self.last.get(name)
            self.checks += holder is not None
        if holder is None:
            return
        try:
            actual = str(api.inspect_image(name)["Id"])
        except docker.errors.NotFound:
            actual = ""
        if actual != holder:
            with self.lock:
                self.incidents.append(("name", name, holder))


def _exists(api: docker.APIClient, image_id: str) -> bool:
    try:
        api.inspect_image(image_id)
    except docker.errors.NotFound:
        return False
    return True


def racer(
    book: Bookkeeping, stop: threading.Event, pace: float, step: Callable[[random.Random], None]
) -> threading.Thread:
    def loop() -> None:
        rng = random.Random(threading.get_ident())
        try:
            while not stop.is_set():
                step(rng)
                stop.wait(rng.uniform(0, pace))
        except BaseException as exc:  # reported by the test
            book.failures.append(exc)

    return threading.Thread(target=loop, daemon=True)


def test_a_race_load_never_costs_a_kept_image_or_a_containers_image(
    clean_engine: PrivateEngine, api: docker.APIClient, traits: Traits, tmp_path: Path
) -> None:
    if traits.load_drops_replaced:
        pytest.skip("this engine deletes an image itself when a load takes its last name")
    state_dir = tmp_path / "state"
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    # Old, unkept: 40 single-tag images and 20 with two tags (deleted by id with force,
    # where README's one moment lies); old and kept: 6 pinned ones.
    junk = load(
        api,
        *(image(layer(1_000, f"r-junk-{n}"), tags=(f"junk/r:{n}",)) for n in range(40)),
        *(
            image(layer(1_000, f"r-pair-{n}"), tags=(f"junk/p:{n}", f"junk/q:{n}"))
            for n in range(20)
        ),
    )
    pinned = set(
        load(api, *(image(layer(1_000, f"r-pin-{n}"), tags=(f"keep/pin:{n}",)) for n in range(6)))
    )
    backdate(api, state_dir, [*junk, *pinned])
    book = Bookkeeping(candidates=list(junk))
    book.ids |= set(junk) | pinned
    engine_api = docker.APIClient(base_url=clean_engine.host, version="auto", timeout=60)

    def create_container(rng: random.Random) -> None:
        """A created container of a deletion candidate: the in-use guard must keep it."""
        with book.lock:
            target = rng.choice(book.candidates)
        try:
            made = engine_api.create_container(
                target,
                command=["true"],
                host_config=engine_api.create_host_config(network_mode="none"),
            )
        except docker.errors.APIError as exc:  # a 500 as for a tag (move_kept_tag)
            if not isinstance(exc, docker.errors.NotFound) and _exists(engine_api, target):
                raise
            book.count("too late for a container")  # gcd was first: fine
            book.gone(target)
            return
        with book.lock:
            book.containers[str(made["Id"])] = target
        book.count("containers created from candidates")

    def remove_container(rng: random.Random) -> None:
        with book.lock:
            mine = sorted(set(book.containers) - book.removed_containers)
        if len(mine) < 5:
            return
        victim = rng.choice(mine)
        held = str(engine_api.inspect_container(victim)["Image"])
        try:  # the in-use guard kept its image for as long as the container existed
            engine_api.inspect_image(held)
        except docker.errors.NotFound:
            with book.lock:
                book.incidents.append(("container", victim, held))
        with book.lock:
            book.checks += 1
        engine_api.remove_container(victim)
        with book.lock:
            book.removed_containers.add(victim)
        book.count("own containers removed")

    def move_kept_tag(rng: random.Random) -> None:
        """A kept name onto a deletion candidate (or back off it, to the next one)."""
        name = rng.choice(MOVING_KEPT)
        with book.lock:
            target = rng.choice(book.candidates)
        reference = parse_reference(name)
        book.still_holds(engine_api, name)
        try:
            engine_api.tag(target, reference.familiar.split(":")[0], reference.tag)
        except docker.errors.APIError as exc:
            # 404 when gcd deleted the image first; 20.10 answers 500 when the delete is still
            # under way in the engine (seen once in CI): gone afterwards, that is the same.
            if not isinstance(exc, docker.errors.NotFound) and _exists(engine_api, target):
                raise
            book.count("too late for a tag")
            book.gone(target)
            return
        with book.lock:
            book.last[name] = target
        book.count("kept tags moved onto candidates")

    n_loads = [0]

    def load_release(rng: random.Random) -> None:
        """A new image under a moving release name; the one it replaces turns dangling."""
        n_loads[0] += 1
        tags = (rng.choice(RELEASES),)
        book.still_holds(engine_api, tags[0])
        spec = image(layer(1_000, f"r-load-{n_loads[0]}"), tags=tags)
        for _ in engine_api.load_image(archive(spec)):
            pass
        new = image_id(spec)
        with book.lock:
            book.ids.add(new)
            book.last[tags[0]] = new
            book.candidates.append(new)  # once replaced and old, gcd may delete it
        book.count("images loaded under moving names")

    stop = threading.Event()
    threads = [
        racer(book, stop, 0.2, create_container),
        racer(book, stop, 0.4, remove_container),
        racer(book, stop, 0.3, move_kept_tag),
        racer(book, stop, 0.3, load_release),
    ]
    builder_api = docker.APIClient(base_url=clean_engine.host, version="auto", timeout=60)
    facade = Engine(clean_engine.host)
    can_build = no_buildkit(facade) is None
    facade.close()
    if can_build:

        def build_release(_rng: random.Random) -> None:
            book.still_holds(builder_api, BUILT)
            build(clean_engine, context(tmp_path, "FROM scratch\nCOPY token /token\n"), BUILT)
            built = str(builder_api.inspect_image(BUILT)["Id"])
            with book.lock:
                book.ids.add(built)
                book.last[BUILT] = built
                book.candidates.append(built)
            book.count("images built under a moving name")

        threads.append(racer(book, stop, 2.0, build_release))

    with DaemonProcess(clean_engine.host, policy, state_dir, env=REAL_SETTLE) as daemon:
        daemon.wait_for("daemon_ready")
        for thread in threads:
            thread.start()
        stop.wait(RACE_SECONDS)
        stop.set()
        for thread in threads:
            thread.join(60)
        settled = len(daemon.named("run_finished"))
        daemon.wait_for("run_finished", count=settled + 2, timeout=60)  # a whole cycle after
        assert daemon.process.poll() is None, "the daemon died under the race"
    assert daemon.process.returncode == 0
    assert not book.failures, book.failures
    raw = "".join(daemon.raw)
    assert not has_traceback(raw), raw[-3000:]

    removed = {str(e["image"]) for e in daemon.named("image_removed")}
    removals = [str(e["image"]) for e in daemon.named("image_removed")]
    assert len(removals) == len(removed), "an image was removed twice"
    tagged_late = {str(e["image"]) for e in daemon.named("image_removed_with_unplanned_references")}
    under_container = {str(e["image"]) for e in daemon.named("image_removed_under_container")}
    present = image_ids(api)

    # Nothing a rule kept is gone: the pinned images, and where each moving name was last put
    # (checked before each move and now), unless README's one moment hit that image, which
    # gcd must then have logged. No container lost its image (the in-use guard; checked
    # before each removal of one and now), unless gcd logged that very moment.
    assert pinned <= present, "a pinned image is gone"
    for name in book.last:
        book.still_holds(api, name)
    containers = api.containers(all=True)
    for container in containers:
        held = str(api.inspect_container(container["Id"])["Image"])
        book.checks += 1
        if held not in present:
            book.incidents.append(("container", str(container["Id"]), held))
    # A container whose create was in flight when gcd deleted its image loses it too: the
    # engine resolves a create's image on arrival and registers the container only when it is
    # made, and neither its own in-use check nor gcd's container list after a forced delete
    # sees it yet. Such a loss is excused only for an image gcd removed (and logged), and is
    # counted: gcd's run-end container list (gcd.engine.orphans) must report each, and
    # test_a_container_created_during_a_delete_is_reported pins that down.
    excused = {"name": tagged_late, "container": under_container | removed}
    lost = [i for i in book.incidents if short(i[2]) not in excused[i[0]]]
    assert not lost, f"kept objects lost their images: {lost}"
    unlogged = [
        i for i in book.incidents if i[0] == "container" and short(i[2]) not in under_container
    ]
    kept_refs = [
        e
        for e in daemon.named("image_removed")
        if any(parse_reference(r).familiar.startswith("keep/") for r in e.get("references", ()))
    ]
    assert not kept_refs, f"gcd planned to remove kept names: {kept_refs}"
    # Every disappearance is gcd's, and logged.
    vanished = {short(i) for i in book.ids - present}
    assert vanished <= removed, f"gone without gcd's removal: {sorted(vanished - removed)}"
    assert removed & {short(i) for i in junk}, "gcd removed nothing: the race proved little"
    assert book.counts.get("containers created from candidates", 0) >= 20
    assert book.counts.get("kept tags moved onto candidates", 0) >= 20
    # At risk: the pinned images, and each kept name's holder and container's image looked
    # for during the race and at its end.
    at_risk = len(pinned) + book.checks
    races = sum(book.counts.values())
    record(
        Figure(
            area="race load",
            scenario=(
                f"{RACE_SECONDS:.0f} s: containers from candidates, kept tags moved, "
                "images loaded and built under moving names, a cycle every second"
            ),
            at_risk=at_risk,
            wrongly_removed=len(lost) + len(pinned - present),
            faults=races,
            removed=len(removed),
        )
    )
    print(  # the run's own account, for docs/reliability.md (pytest -s shows it)
        f"race load: {races} races {dict(sorted(book.counts.items()))}, {len(removed)} removed, "
        f"{at_risk} kept at risk, {len(book.incidents)} excused incidents "
        f"({len(unlogged)} unlogged), README's moment "
        f"hit {len(tagged_late)}x (tag) "
        f"{len(under_container)}x (container), cycles {len(daemon.named('run_finished'))}"
    )
    engine_api.close()
    builder_api.close()


def forced_delete(method: str, path: str) -> bool:
    """gcd's `DELETE /images/sha256:…?force=True` of a multi-tag image (docker-py spells it)."""
    query = path.partition("?")[2].lower()
    return method == "DELETE" and "/images/sha256:" in path and "force=true" in query


def any_delete(method: str, path: str) -> bool:
    """gcd's `DELETE /images/sha256:…` (without force for a single-tag image)."""
    return method == "DELETE" and "/images/sha256:" in path


@pytest.mark.parametrize(
    ("tags", "request_match"),
    [(1, any_delete), (2, forced_delete)],
    ids=["single-tag-no-force", "two-tags-forced"],
)
def test_a_container_created_during_a_delete_is_reported(
    clean_engine: PrivateEngine,
    api: docker.APIClient,
    tmp_path: Path,
    tags: int,
    request_match: Callable[[str, str], bool],
) -> None:
    """README ("Several tags"): a container created from a planned image in the moment of
    gcd's delete either makes the engine refuse (409) or, after a forced delete, is logged as
    `image_removed_under_container`. But the engine resolves a create's image when the
    request arrives and registers the container only when it is made, and does not serialise
    the two: a create in flight during the delete is seen neither by the engine's own in-use
    check (so even a delete without force succeeds) nor by gcd's container list after a
    forced one. The container keeps its layers and starts, but its image is gone and nothing
    says so (the race load met it: 1–2 containers in some 45 s runs; Docker 20.10, 26.1 and
    26.1 with the containerd store alike). Here the proxy fires a dozen creates, 4 ms apart,
    right before the DELETE, up to 20 times."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(TIMEOUTS_ENV, REAL_SETTLE[TIMEOUTS_ENV])
        _race_creates_against_deletes(clean_engine, api, tmp_path, tags, request_match)


def _race_creates_against_deletes(
    clean_engine: PrivateEngine,
    api: docker.APIClient,
    tmp_path: Path,
    tags: int,
    request_match: Callable[[str, str], bool],
) -> None:
    facade = Engine(clean_engine.host)
    podman = facade.podman
    facade.close()
    if podman:
        pytest.skip("Podman deletes without force: its answer to a new container is a conflict")
    unlogged: list[str] = []
    for trial in range(TRIALS):
        (target,) = load(
            api, image(layer(1_000, f"fd-{trial}"), tags=(f"fd/a:{trial}", f"fd/b:{trial}")[:tags])
        )
        made: list[str] = []
        creators: list[threading.Thread] = []

        def create(delay: float, target: str = target, made: list[str] = made) -> None:
            time.sleep(delay)
            config = api.create_host_config(network_mode="none")
            # NotFound, or a 500 when the image went in the middle of the engine's create.
            with contextlib.suppress(docker.errors.APIError):
                made.append(str(api.create_container(target, ["true"], host_config=config)["Id"]))

        def fire(_method: str, _path: str, creators: list[threading.Thread] = creators) -> None:
            for k in range(12):
                creators.append(threading.Thread(target=create, args=(k * 0.004,)))
                creators[-1].start()
            time.sleep(0.02)

        with EngineProxy(clean_engine.socket) as proxy:
            engine = Engine(proxy.host)
            plan = plan_now(engine, tmp_path / f"s{trial}")
            proxy.before(request_match, fire)
            with capture_logs() as logs:
                execute(plan, engine)
            engine.close()
        for creator in creators:
            creator.join(30)
        logged = sum(
            len(e["containers"]) for e in logs if e["event"] == "image_removed_under_container"
        )
        if target not in image_ids(api) and len(made) > logged:
            unlogged.append(f"trial {trial}: {len(made) - logged} of {len(made)} unlogged")
        for container in made:
            api.remove_container(container)
        if unlogged:
            break
    assert not unlogged, unlogged
