"""An in-memory engine for unit tests, as httpx's `MockTransport` is for httpx: the same
interface as `gcd.engine.client.Engine` (`gcd.engine.api.EngineApi`), answering as Docker
20.10/26.1 on a graphdriver or Podman 5 do (engine-facts.md §1.1, docs/engines.md; the
texts were read off those engines, and tests/integration/test_fake_engine.py sends the same
removals to the real engines and to this one and compares the answers).

It models the engine's rules and never scripts an answer per test:

- Docker, `DELETE /images/{name}` (moby `daemon/images/image_delete.go`): by id, an image
  with one reference (one tag, plus digests of its repository) or none is checked for a
  running container (hard: "cannot be forced") and, without force, a stopped one ("must be
  forced"); with more references, without force, the answer is "referenced in multiple
  repositories"; `force` lifts only the soft conflicts, so a forced delete with a stopped
  container deletes the image and the container keeps its layers. By name, the name is
  untagged (409 when it is the last one and a container uses the image) and the image goes
  when no reference is left and nothing uses it. The answer lists `Untagged` references
  (familiar spelling) and `Deleted` ids: the image, then each layer chain nobody else holds.
- Podman (libimage): names are fully qualified; a delete by id of an image with several
  names is a 500 "please force removal"; a container in any state is a 409 "in use";
  `force` removes the image's containers and then the image, which is why gcd must never send
  it; `untag_image_by_id` removes the name from that image only, and a name that is not on it
  is "tag not known". `LastTagTime` is always the zero time.
- Containers and volumes (moby `daemon/delete.go`, `volume/service`; Podman libpod): a
  container has labels, the reference it was made from, its creation, start and exit times
  (Go's zero time until they happen), a restart policy, volume mounts, networks and a `SizeRw`;
  `DELETE /containers/{id}` without force is a 409 while it runs, is paused or restarts
  (20.10's text; 26.1 words it otherwise; Podman answers 500 "container state improper"),
  and never takes its volumes (gcd never sends `v`); `DELETE /volumes/{name}` is a 409
  "volume is in use" while any container, in any state, mounts it. An anonymous volume is
  named by 64 hex digits and, from Docker 23 (`anonymous_label`), labelled
  `com.docker.volume.anonymous`. `system_df` answers `SizeRw` and `UsageData` as listed
  (all parts, as API 1.41 does; the `images` flag is recorded, not obeyed).
- Another client's moves, between gcd's calls, through the methods without an API name:
  `add_image` (a load: a name another image had moves to the new one), `tag` (moves a name,
  and on Docker stamps `LastTagTime`), `drop_image`, `create_container` (which creates the
  named volumes it mounts that do not exist, as `docker run -v name:/path` does), `start`,
  `stop`, `drop_container`, `create_volume`, `drop_volume`.
- Faults and races without a seam in production code: `before(call, action)` runs `action`
  right before the next `call` (e.g. "before the first remove_image, create a container"),
  and `fail(call, fault)` makes it fail as the facade reports a timeout, a 500 or a lost
  engine. `calls` records what gcd sent, in order.
- `data_root`: the engine is local and keeps the graphdriver's image and layer databases
  there (`image/overlay2/imagedb`, `layerdb`), as the layer store reads them when root.

Not modelled: child images (the graphdriver's "dependent child images" conflict), the
containerd image store beyond what `GET /info` says of it (`containerd_store`), prune,
pulls and builds, id prefixes, concurrency (calls happen one at a time, hooks in between),
`force` and `v` of container removal and `force` of volume removal (gcd never sends them),
volume drivers other than `local` beyond their name and options, the `removing` and `dead`
states' own rules, `type` restrictions of `system_df`, and the facade's own refusal of
`force` by name or on Podman (`Engine` raises before sending; this engine does what the real
one would do if it got the request).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from gcd.core.references import InvalidReferenceError, parse_reference
from gcd.engine.api import EngineApi, RemoveResult, RemoveStatus, refused
from gcd.engine.timeouts import Timeouts
from gcd.errors import EngineError, EngineUnreachableError

if TYPE_CHECKING:
    from gcd.engine.client import Engine

ZERO_TIME = "0001-01-01T00:00:00Z"
"""`Metadata.LastTagTime` of an image never tagged (loaded or pulled), and always on Podman."""
RUNNING = frozenset({"running", "paused", "restarting"})
"""Docker's `IsRunning()`: a hard conflict, even with force."""
READ_TIMEOUT = (
    "UnixHTTPConnectionPool(host='localhost', port=None): Read timed out. (read timeout=60)"
)
START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def digest_of(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def _short(object_id: str) -> str:
    return object_id.removeprefix("sha256:")[:12]


def _full_id(name: str) -> bool:
    return name.startswith("sha256:") and len(name) == 71


def _normal(name: str) -> str:
    """The engine's stored form of a name: `app` is `docker.io/library/app:latest`. A name
    it would not accept is kept as written, so that a test can make the engine list one."""
    try:
        reference = parse_reference(name)
    except InvalidReferenceError:
        return name
    text = str(reference)
    return f"{text}:latest" if reference.tag is None and reference.digest is None else text


def _familiar(name: str) -> str:
    try:
        return parse_reference(name).familiar
    except InvalidReferenceError:
        return name


def _repository(name: str) -> str:
    try:
        return parse_reference(name).repository
    except InvalidReferenceError:
        return name


def _go_time(when: datetime | None) -> str:
    return ZERO_TIME if when is None else when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The layer store's keys: each chain digests its parent's chain and its diff id."""
    chains: list[str] = []
    for diff_id in diff_ids:
        parent = chains[-1] if chains else None
        chains.append(diff_id if parent is None else digest_of(f"{parent} {diff_id}"))
    return chains


@dataclass
class FakeImage:
    id: str
    tags: list[str]
    """Stored names (`docker.io/library/app:1`); listed familiar on Docker, as is on Podman."""
    digests: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    created: Any = 1767225600
    """`Created` as listed: Unix seconds, or anything an engine might send."""
    last_tag_time: datetime | None = None
    layers: list[tuple[str, int]] = field(default_factory=list)
    """(diff id, bytes), bottom first."""
    empty_steps: int = 1
    """History entries without a layer (`CMD`, `ENV`), on top of the layers."""
    size: int | None = None
    """The listed `Size`; the sum of the layers when None."""
    history: list[dict[str, Any]] | None = None
    """`GET /history` as the engine sends it; made from the layers when None."""
    parent: str = ""
    """`ParentId`: the classic builder's previous step's image ("" for any other image)."""

    @property
    def chains(self) -> list[str]:
        return chain_ids([diff_id for diff_id, _ in self.layers])

    @property
    def references(self) -> list[str]:
        return sorted(self.tags + self.digests)


ACTIVE = RUNNING | {"removing"}
"""States in which gcd never removes a container."""
ANONYMOUS_LABEL = "com.docker.volume.anonymous"


@dataclass
class FakeContainer:
    id: str
    name: str | None
    image_id: str | None
    state: str = "created"
    chains: tuple[str, ...] = ()
    """The layers its own layer sits on: kept while it exists, even when the image goes."""
    image: str = ""
    """The reference it was created from, as typed; its image id when empty."""
    labels: dict[str, str] = field(default_factory=dict)
    created: datetime = START
    started_at: datetime | None = None
    finished_at: datetime | None = None
    restart_policy: str = "no"
    volumes: list[str] = field(default_factory=list)
    """Names of the volumes it mounts (`Mounts` of `Type` volume)."""
    networks: dict[str, str] = field(default_factory=dict)
    """Network name → id."""
    size_rw: int = 0
    command: str = ""
    """`Command` as listed (`/bin/sh -c #(nop) COPY ...` for a classic-build COPY step)."""
    health_test: list[str] | None = None
    """`Config.Healthcheck.Test` (`["NONE"]`: a classic-build RUN step); None: not sent."""


@dataclass
class FakeVolume:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    driver: str = "local"
    options: dict[str, str] = field(default_factory=dict)
    created: datetime = START
    size: int = 0
    """`UsageData.Size` in `system_df`; -1 as an engine says it does not know."""


@dataclass(frozen=True)
class Fault:
    kind: Literal["timeout", "server_error", "unreachable", "conflict"]
    message: str = ""
    done: bool = False
    """A timeout whose request the engine carried out; only its answer was lost."""


def timeout(*, done: bool = False) -> Fault:
    return Fault("timeout", READ_TIMEOUT, done)


def server_error(message: str = "500 Server Error: Internal Server Error") -> Fault:
    return Fault("server_error", message)


def conflict(message: str = "conflict: unable to delete (cannot be forced)") -> Fault:
    """A 409 of the engine's own (a removal only)."""
    return Fault("conflict", message)


def unreachable() -> Fault:
    return Fault("unreachable", "Connection aborted: FileNotFoundError(2, 'No such file')")


@dataclass
class _Due:
    call: str
    arg: str | None
    times: int | None
    action: Callable[[], object] | None = None
    fault: Fault | None = None

    def matches(self, call: str, args: tuple[Any, ...]) -> bool:
        if self.call != call or self.times == 0:
            return False
        return self.arg is None or (bool(args) and args[0] == self.arg)


class FakeEngine:
    """`FakeEngine()` is Docker 20.10/26.1 on overlay2; `FakeEngine(podman=True)` Podman 5."""

    def __init__(
        self,
        *,
        podman: bool = False,
        containerd_store: bool = False,
        data_root: Path | None = None,
        clock: datetime = START,
        anonymous_label: bool = True,
    ) -> None:
        self.podman = podman
        self.anonymous_label = anonymous_label and not podman
        """Docker 23+ labels anonymous volumes; 20.10 and Podman name them only."""
        self.containerd_store = containerd_store
        self.data_root = data_root
        self.clock = clock
        """Advanced by a second at each change another client makes, which it stamps."""
        self.host = f"unix://{data_root}/docker.sock" if data_root else "tcp://fake-engine:2375"
        self.images: dict[str, FakeImage] = {}
        self.containers: dict[str, FakeContainer] = {}
        self.volumes: dict[str, FakeVolume] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._events: list[dict[str, Any]] = []
        self._due: list[_Due] = []
        self.lock = threading.RLock()
        self._overlap: threading.Barrier | None = None
        self._overlap_left = 0

    timeouts = Timeouts(settle=0.0)
    """No create is ever in flight here: the orphan check lists at once."""
    removal_workers = 1
    """Image deletions the executor runs at once (`Engine.removal_workers`); a test that sets
    more gets them on threads, each call of the fake taken whole under its lock."""

    def new_run(self) -> None:
        """`Engine.new_run` clears the strikes of stalled requests; the fake never stalls."""

    # -- races and faults ------------------------------------------------------------------

    def before(
        self,
        call: str,
        action: Callable[[], object],
        *,
        arg: str | None = None,
        times: int | None = 1,
    ) -> None:
        """Run `action` right before each of the next `times` calls of the method `call`
        (whose first argument is `arg`, when given); None: before every one."""
        self._due.append(_Due(call, arg, times, action=action))

    def fail(
        self, call: str, fault: Fault, *, arg: str | None = None, times: int | None = 1
    ) -> None:
        """Make each of the next `times` calls of `call` (with `arg`) meet `fault`."""
        self._due.append(_Due(call, arg, times, fault=fault))

    def overlap_removals(self, count: int) -> None:
        """The next `count` image removals wait for each other before they proceed, so that
        they run at once, as on an engine that takes its time (a pooled executor's)."""
        self._overlap = threading.Barrier(count, timeout=30)
        self._overlap_left = count

    def sent(self, call: str) -> list[tuple[Any, ...]]:
        """The arguments of each `call` gcd made, in order."""
        return [args for name, args in self.calls if name == call]

    def _enter(self, call: str, *args: Any) -> Fault | None:
        """Record the call and run its hooks. The bookkeeping is under the lock; the hooks
        run under it only where the caller holds it (inspect_image does not: a test's hook
        may wait there for another call in flight)."""
        fault: Fault | None = None
        actions: list[Callable[[], object]] = []
        with self.lock:
            self.calls.append((call, args))
            for due in [d for d in self._due if d.matches(call, args)]:
                if due.times is not None:
                    due.times -= 1
                if due.action is not None:
                    actions.append(due.action)
                if due.fault is not None and fault is None:
                    fault = due.fault
        for action in actions:
            action()
        return fault

    def _raise(self, fault: Fault, what: str) -> NoReturn:
        """A fault of a call that is not a removal, as `Engine._call` reports it."""
        if fault.kind == "unreachable":
            raise EngineUnreachableError(f"cannot reach the Docker engine at {self.host}: x")
        raise EngineError(f"{what} failed: {fault.message}")

    def _removal(self, fault: Fault | None, perform: Callable[[], RemoveResult]) -> RemoveResult:
        """A removal's fault, as `Engine._removal` classifies it; None: the engine's answer."""
        if fault is None:
            return perform()
        if fault.kind == "unreachable":
            self._raise(fault, "")
        if fault.kind == "timeout":
            if fault.done:
                perform()
            return RemoveResult(RemoveStatus.TIMEOUT, fault.message)
        return refused(409 if fault.kind == "conflict" else 500, fault.message)

    # -- what another client does ---------------------------------------------------------

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def add_image(
        self,
        seed: str,
        *tags: str,
        image_id: str | None = None,
        digests: tuple[str, ...] = (),
        layers: list[tuple[str, int]] | None = None,
        **record: Any,
    ) -> FakeImage:
        """A load: the image with `tags`; a name another image had moves to this one."""
        image = FakeImage(
            id=image_id or digest_of(seed),
            tags=[],
            digests=[_normal(d) for d in digests],
            layers=layers if layers is not None else [(digest_of(f"layer-{seed}"), 1000)],
            **record,
        )
        self.images[image.id] = image
        for tag in tags:
            self._move(_normal(tag), image)
        self._write(image)
        return image

    def tag(self, image_id: str, name: str) -> None:
        """`docker tag`: the name moves to this image; Docker stamps `LastTagTime`."""
        image = self.images[image_id]
        self._move(_normal(name), image)
        if not self.podman:
            image.last_tag_time = self.tick()
        self._write(image)

    def drop_image(self, image_id: str) -> None:
        """Another client deletes the image, whatever uses it."""
        self._delete(self.images[image_id])

    def create_container(
        self,
        image_id: str | None,
        name: str | None = None,
        state: str = "created",
        *,
        image: str = "",
        labels: dict[str, str] | None = None,
        restart_policy: str = "no",
        volumes: tuple[str, ...] = (),
        anonymous_volumes: int = 0,
        networks: dict[str, str] | None = None,
        size_rw: int = 0,
    ) -> FakeContainer:
        """A container (`docker create`; `state` other than created: as if it had got
        there, running since now or exited now). Named `volumes` that do not exist are
        created; each anonymous volume is a new one."""
        found = self.images.get(image_id or "")
        number = len(self.containers)
        mounts = list(volumes)
        for name_ in volumes:
            if name_ not in self.volumes:
                self.create_volume(name_)
        for _ in range(anonymous_volumes):
            mounts.append(self.create_volume(anonymous=True).name)
        container = FakeContainer(
            id=digest_of(f"container-{number}-{name}").removeprefix("sha256:"),
            name=name if name is not None else f"fake_{number}",
            image_id=image_id,
            state=state,
            chains=tuple(found.chains) if found else (),
            image=image,
            labels=dict(labels or {}),
            created=self.tick(),
            restart_policy=restart_policy,
            volumes=mounts,
            networks=dict(networks or {}),
            size_rw=size_rw,
        )
        if state != "created":
            container.started_at = self.tick()
        if state not in ACTIVE and state != "created":
            container.finished_at = self.tick()
        self.containers[container.id] = container
        self._event(container, "create")
        return container

    def start(self, container_id: str) -> None:
        container = self.containers[container_id]
        container.state = "running"
        container.started_at = self.tick()
        self._event(container, "start")

    def stop(self, container_id: str) -> None:
        """The container's process ends: `exited`, stamped with its exit time."""
        container = self.containers[container_id]
        container.state = "exited"
        container.finished_at = self.tick()
        self._event(container, "die")

    def drop_container(self, container_id: str) -> None:
        """Another client removes the container (`docker rm -f`); its volumes stay."""
        del self.containers[container_id]

    def create_volume(
        self,
        name: str | None = None,
        *,
        anonymous: bool = False,
        labels: dict[str, str] | None = None,
        driver: str = "local",
        options: dict[str, str] | None = None,
        size: int = 0,
    ) -> FakeVolume:
        """`docker volume create`; `anonymous`: as the engine makes one for a container."""
        number = len(self.volumes)
        if name is None:
            name = digest_of(f"volume-{number}").removeprefix("sha256:")
        volume = FakeVolume(
            name=name,
            labels=dict(labels or {}),
            driver=driver,
            options=dict(options or {}),
            created=self.tick(),
            size=size,
        )
        if anonymous and self.anonymous_label:
            volume.labels[ANONYMOUS_LABEL] = ""
        self.volumes[name] = volume
        return volume

    def drop_volume(self, name: str) -> None:
        del self.volumes[name]

    def _event(self, container: FakeContainer, action: str) -> None:
        when = self.tick()
        self._events.append(
            {
                "Type": "container",
                "Action": action,
                "Actor": {"ID": container.id, "Attributes": {"image": container.image_id}},
                "time": int(when.timestamp()),
                "timeNano": int(when.timestamp()) * 1_000_000_000,
            }
        )

    def _move(self, name: str, image: FakeImage) -> None:
        for other in self.images.values():
            if name in other.tags:
                other.tags.remove(name)
        if self.podman:  # Podman lists the newest name first
            image.tags.insert(0, name)
        else:
            image.tags.append(name)

    def _users(self, image: FakeImage) -> list[FakeContainer]:
        return [c for c in self.containers.values() if c.image_id == image.id]

    def _delete(self, image: FakeImage) -> tuple[str, ...]:
        """The image goes; so does each of its layers that no image or container holds."""
        del self.images[image.id]
        held = {c for i in self.images.values() for c in i.chains}
        held |= {c for container in self.containers.values() for c in container.chains}
        released = tuple(c for c in reversed(image.chains) if c not in held)
        self._erase(image, released)
        return (image.id, *released)

    # -- the graphdriver's databases, when local ------------------------------------------

    def _image_root(self) -> Path | None:
        if self.data_root is None or self.podman or self.containerd_store:
            return None
        return self.data_root / "image" / "overlay2"

    def _write(self, image: FakeImage) -> None:
        root = self._image_root()
        if root is None:
            return
        digest = image.id.removeprefix("sha256:")
        config = {"rootfs": {"type": "layers", "diff_ids": [d for d, _ in image.layers]}}
        content = root / "imagedb/content/sha256"
        content.mkdir(parents=True, exist_ok=True)
        (content / digest).write_text(json.dumps(config))
        if image.last_tag_time is not None:
            metadata = root / "imagedb/metadata/sha256" / digest
            metadata.mkdir(parents=True, exist_ok=True)
            (metadata / "lastUpdated").write_text(_go_time(image.last_tag_time))
        for chain, (_, size) in zip(image.chains, image.layers, strict=True):
            layer = root / "layerdb/sha256" / chain.removeprefix("sha256:")
            layer.mkdir(parents=True, exist_ok=True)
            (layer / "size").write_text(str(size))

    def _erase(self, image: FakeImage, released: tuple[str, ...]) -> None:
        root = self._image_root()
        if root is None:
            return
        (root / "imagedb/content/sha256" / image.id.removeprefix("sha256:")).unlink()
        for chain in released:
            layer = root / "layerdb/sha256" / chain.removeprefix("sha256:")
            (layer / "size").unlink()
            layer.rmdir()

    # -- the interface: what gcd calls ----------------------------------------------------

    def _shown(self, names: list[str]) -> list[str]:
        return list(names) if self.podman else [_familiar(n) for n in names]

    def info(self) -> dict[str, Any]:
        fault = self._enter("info")
        if fault is not None:
            self._raise(fault, "GET /info")
        if self.podman:
            return {"ID": "fake", "Driver": "overlay", "DockerRootDir": "/var/lib/containers"}
        status = [["driver-type", "io.containerd.snapshotter.v1"]] if self.containerd_store else []
        return {
            "ID": "fake",
            "Driver": "overlayfs" if self.containerd_store else "overlay2",
            "DriverStatus": status or [["Backing Filesystem", "extfs"]],
            "DockerRootDir": str(self.data_root or "/nonexistent/docker"),
        }

    def list_images(self) -> list[dict[str, Any]]:
        fault = self._enter("list_images")
        if fault is not None:
            self._raise(fault, "GET /images/json")
        listed = []
        for image in self.images.values():
            tags = self._shown(image.tags)
            digests = self._shown(image.digests)
            if not tags and not self.podman:  # API 1.41's spelling of "none"
                tags, digests = ["<none>:<none>"], digests or ["<none>@<none>"]
            listed.append(
                {
                    "Id": image.id,
                    "ParentId": image.parent,
                    "RepoTags": tags,
                    "RepoDigests": digests or None,
                    "Created": image.created,
                    "Size": self._size(image),
                    "Labels": dict(image.labels) or None,
                    "Containers": -1,
                }
            )
        return listed

    def _size(self, image: FakeImage) -> int:
        return sum(size for _, size in image.layers) if image.size is None else image.size

    def list_containers(
        self, *, sizes: bool = False, of_image: str | None = None
    ) -> list[dict[str, Any]]:
        with self.lock:
            args = (*(("sizes",) if sizes else ()), *((of_image,) if of_image else ()))
            fault = self._enter("list_containers", *args)
            if fault is not None:
                self._raise(fault, "GET /containers/json")
            listed = []
            for container in self.containers.values():
                if of_image is not None and container.image_id != of_image:
                    continue  # Docker's `ancestor` filter, by exact id (the fake has no children)
                entry: dict[str, Any] = {"Id": container.id, "State": container.state}
                if container.name is not None:
                    entry["Names"] = [f"/{container.name}"]
                if container.image_id is not None:
                    entry["Image"] = container.image or container.image_id
                    entry["ImageID"] = container.image_id
                # Attached through `attach` (the network model below) or given at creation.
                networks = self._network_settings(container.id)["NetworkSettings"]["Networks"]
                networks.update({n: {"NetworkID": i} for n, i in container.networks.items()})
                entry.update(
                    Labels=dict(container.labels),
                    Created=int(container.created.timestamp()),
                    Mounts=self._mounts(container),
                    NetworkSettings={"Networks": networks},
                )
                if container.command:
                    entry["Command"] = container.command
                if sizes:
                    entry["SizeRw"] = container.size_rw
                listed.append(entry)
            return listed

    def _mounts(self, container: FakeContainer) -> list[dict[str, Any]]:
        return [
            {
                "Type": "volume",
                "Name": name,
                "Source": f"/var/lib/docker/volumes/{name}/_data",
                "Destination": f"/mnt/{n}",
                "Driver": "local",
            }
            for n, name in enumerate(container.volumes)
        ]

    def inspect_image(self, image: str) -> dict[str, Any] | None:
        fault = self._enter("inspect_image", image)
        with self.lock:
            if fault is not None:
                self._raise(fault, f"GET /images/{image}/json")
            found = self._find(image)
            if found is None:
                return None
            try:
                created = _go_time(datetime.fromtimestamp(found.created, UTC))
            except (TypeError, ValueError, OverflowError, OSError):
                created = ZERO_TIME
            return {
                "Id": found.id,
                "RepoTags": self._shown(found.tags),
                "RepoDigests": self._shown(found.digests),
                "Created": created,
                "Size": self._size(found),
                "Config": {"Labels": dict(found.labels) or None},
                "RootFS": {"Type": "layers", "Layers": [diff_id for diff_id, _ in found.layers]},
                "Metadata": {
                    "LastTagTime": ZERO_TIME if self.podman else _go_time(found.last_tag_time)
                },
            }

    def image_history(self, image: str) -> list[dict[str, Any]] | None:
        fault = self._enter("image_history", image)
        if fault is not None:
            self._raise(fault, f"GET /images/{image}/history")
        found = self._find(image)
        if found is None:
            return None
        if found.history is not None:
            return found.history
        steps = [(f"COPY layer-{n} /", size) for n, (_, size) in enumerate(found.layers)]
        steps += [("CMD sh", 0)] * found.empty_steps
        entries = [
            {"Id": "<missing>", "Created": found.created, "CreatedBy": how, "Size": size}
            for how, size in reversed(steps)
        ]
        if entries:
            entries[0].update(Id=found.id, Tags=self._shown(found.tags))
        return entries

    def inspect_container(self, container: str) -> dict[str, Any] | None:
        fault = self._enter("inspect_container", container)
        if fault is not None:
            self._raise(fault, f"GET /containers/{container}/json")
        found = self.containers.get(container)
        if found is None:
            return None
        return {
            "Id": found.id,
            "Name": f"/{found.name}",
            "Image": found.image_id,
            "Created": _go_time(found.created),
            "State": {
                "Status": found.state,
                "Running": found.state in ("running", "paused"),
                "Paused": found.state == "paused",
                "Restarting": found.state == "restarting",
                "StartedAt": _go_time(found.started_at),
                "FinishedAt": _go_time(found.finished_at),
            },
            "HostConfig": {"RestartPolicy": {"Name": found.restart_policy}},
            "Config": {
                "Labels": dict(found.labels),
                "Image": found.image or found.image_id,
                **({"Healthcheck": {"Test": found.health_test}} if found.health_test else {}),
            },
            "Mounts": self._mounts(found),
        }

    def list_volumes(self) -> list[dict[str, Any]]:
        fault = self._enter("list_volumes")
        if fault is not None:
            self._raise(fault, "GET /volumes")
        return [self._volume(v) for v in self.volumes.values()]

    def _volume(self, volume: FakeVolume) -> dict[str, Any]:
        return {
            "Name": volume.name,
            "Driver": volume.driver,
            "Mountpoint": f"/var/lib/docker/volumes/{volume.name}/_data",
            "CreatedAt": _go_time(volume.created.replace(microsecond=0)),
            "Labels": dict(volume.labels) or None,
            "Options": dict(volume.options) or None,
            "Scope": "local",
        }

    def inspect_volume(self, name: str) -> dict[str, Any] | None:
        fault = self._enter("inspect_volume", name)
        if fault is not None:
            self._raise(fault, f"GET /volumes/{name}")
        volume = self.volumes.get(name)
        return None if volume is None else self._volume(volume)

    def system_df(self, *, images: bool = True) -> dict[str, Any]:
        fault = self._enter("system_df", images)
        if fault is not None:
            self._raise(fault, "GET /system/df")
        users = {
            name: sum(name in c.volumes for c in self.containers.values()) for name in self.volumes
        }
        chains = {
            chain: size
            for i in self.images.values()
            for chain, (_, size) in zip(i.chains, i.layers, strict=True)
        }
        return {
            "LayersSize": sum(chains.values()),
            "Images": [],
            "Containers": [
                {"Id": c.id, "Names": [f"/{c.name}"], "SizeRw": c.size_rw, "State": c.state}
                for c in self.containers.values()
            ],
            "Volumes": [
                {**self._volume(v), "UsageData": {"Size": v.size, "RefCount": users[v.name]}}
                for v in self.volumes.values()
            ],
            "BuildCache": [],
        }

    def remove_container(self, container_id: str) -> RemoveResult:
        """`DELETE /containers/{id}` without force or `v`, as gcd sends it."""
        fault = self._enter("remove_container", container_id)
        return self._removal(fault, lambda: self._remove_container(container_id))

    def _remove_container(self, container_id: str) -> RemoveResult:
        container = self.containers.get(container_id)
        if container is None:
            return refused(404, f"No such container: {container_id}")
        if container.state in RUNNING:
            if self.podman:  # a 500, not a 409
                return refused(
                    500,
                    f"cannot remove container {container.id} as it is {container.state} - "
                    "running or paused containers cannot be removed without force: container "
                    "state improper",
                )
            procedure = "Stop the container before attempting removal or force remove"
            if container.state == "paused":
                procedure = "Unpause and then " + procedure[0].lower() + procedure[1:]
            return refused(
                409,
                f"You cannot remove a {container.state} container {container.id}. {procedure}",
            )
        del self.containers[container_id]
        return RemoveResult(RemoveStatus.REMOVED)

    def remove_volume(self, name: str) -> RemoveResult:
        """`DELETE /volumes/{name}` without force."""
        fault = self._enter("remove_volume", name)
        return self._removal(fault, lambda: self._remove_volume(name))

    def _remove_volume(self, name: str) -> RemoveResult:
        if name not in self.volumes:
            if self.podman:
                return refused(404, f'no volume with name "{name}" found: no such volume')
            return refused(404, f"get {name}: no such volume")
        users = [c.id for c in self.containers.values() if name in c.volumes]
        if users:
            if self.podman:
                return refused(
                    409,
                    f"volume {name} is being used by the following container(s): "
                    f"{', '.join(users)}: volume is being used",
                )
            return refused(409, f"remove {name}: volume is in use - [{', '.join(users)}]")
        del self.volumes[name]
        return RemoveResult(RemoveStatus.REMOVED)

    def events(self, since: int | None = None, **filters: list[str]) -> Iterator[dict[str, Any]]:
        """The recorded events; the stream then ends, as the SDK's does when dockerd stops."""
        fault = self._enter("events", since)
        if fault is not None:
            self._raise(fault, "GET /events")
        wanted_types = filters.get("type")
        wanted_actions = filters.get("event")
        return iter(
            [
                e
                for e in self._events
                if (since is None or e["time"] >= since)
                and (wanted_types is None or e["Type"] in wanted_types)
                and (wanted_actions is None or e["Action"] in wanted_actions)
            ]
        )

    def _find(self, name: str) -> FakeImage | None:
        if _full_id(name):
            return self.images.get(name)
        stored = _normal(name)
        return next((i for i in self.images.values() if stored in i.references), None)

    def remove_image(self, name: str, *, force: bool = False) -> RemoveResult:
        with self.lock:
            overlap, self._overlap_left = self._overlap, max(self._overlap_left - 1, 0)
            if not self._overlap_left:
                self._overlap = None
        if overlap is not None:
            overlap.wait()  # outside the lock: the others arrive meanwhile
        with self.lock:
            fault = self._enter("remove_image", name, force)
            if self.podman:
                return self._removal(fault, lambda: self._podman_remove(name, force))
            return self._removal(fault, lambda: self._docker_remove(name, force))

    def untag_image_by_id(self, image_id: str, repository: str, tag: str) -> RemoveResult:
        with self.lock:
            fault = self._enter("untag_image_by_id", image_id, repository, tag)
            return self._removal(fault, lambda: self._untag(image_id, repository, tag))

    # -- Docker's rules (moby daemon/images/image_delete.go) ------------------------------

    def _docker_remove(self, name: str, force: bool) -> RemoveResult:
        image = self._find(name)
        if image is None:
            return refused(404, f"No such image: {name}")
        if not _full_id(name):
            return self._docker_remove_reference(image, _normal(name), name, force)
        untagged: list[str] = []
        if self._single_reference(image):
            conflict = self._conflict(image, soft=not force, active=False)
            if conflict is not None:
                return conflict
            untagged = self._untag_all(image)
        return self._delete_helper(image, force, untagged, quiet=False)

    def _docker_remove_reference(
        self, image: FakeImage, stored: str, name: str, force: bool
    ) -> RemoveResult:
        users = self._users(image)
        if not force and self._single_reference(image) and users:
            return refused(
                409,
                f'conflict: unable to remove repository reference "{name}" (must force) - '
                f"container {_short(users[0].id)} is using its referenced image "
                f"{_short(image.id)}",
            )
        untagged = [_familiar(stored)]
        if stored in image.tags:
            image.tags.remove(stored)
        else:
            image.digests.remove(stored)
        repository = _repository(stored)
        if not any(_repository(t) == repository for t in image.tags):
            for digest in [d for d in image.digests if _repository(d) == repository]:
                image.digests.remove(digest)
                untagged.append(_familiar(digest))
        if image.references:
            return RemoveResult(RemoveStatus.REMOVED, untagged=tuple(untagged))
        return self._delete_helper(image, force, untagged, quiet=True)

    @staticmethod
    def _single_reference(image: FakeImage) -> bool:
        """moby's `isSingleReference`: one tag, plus digests of its repository only."""
        if len(image.references) <= 1:
            return len(image.references) == 1
        if len(image.tags) > 1:
            return False
        repositories = {_repository(d) for d in image.digests}
        single = image.tags[0] if image.tags else image.digests[0]
        return repositories == {_repository(single)}

    def _conflict(self, image: FakeImage, *, soft: bool, active: bool) -> RemoveResult | None:
        """moby's `checkImageDeleteConflict`, in its order: running container (hard), other
        references and stopped containers (soft, only when not forced)."""
        users = self._users(image)
        running = [c for c in users if c.state in RUNNING]
        if running:
            problem, forced = (
                f"image is being used by running container {_short(running[0].id)}",
                False,
            )
        elif active and image.references:
            problem, forced = "image is referenced in multiple repositories", True
        elif soft and users:
            problem, forced = (
                f"image is being used by stopped container {_short(users[0].id)}",
                True,
            )
        else:
            return None
        how = "must be forced" if forced else "cannot be forced"
        return refused(409, f"conflict: unable to delete {_short(image.id)} ({how}) - {problem}")

    def _untag_all(self, image: FakeImage) -> list[str]:
        untagged = [_familiar(name) for name in image.references]
        image.tags.clear()
        image.digests.clear()
        return untagged

    def _delete_helper(
        self, image: FakeImage, force: bool, untagged: list[str], *, quiet: bool
    ) -> RemoveResult:
        conflict = self._conflict(image, soft=not force, active=not force)
        if conflict is not None:
            if quiet and self._users(image):  # the untag did what was asked; the image stays
                return RemoveResult(RemoveStatus.REMOVED, untagged=tuple(untagged))
            return conflict
        untagged = untagged + self._untag_all(image)
        return RemoveResult(
            RemoveStatus.REMOVED, untagged=tuple(untagged), deleted=self._delete(image)
        )

    # -- Podman's rules (libimage) -------------------------------------------------------

    def _podman_remove(self, name: str, force: bool) -> RemoveResult:
        image = self._find(name)
        if image is None:
            return refused(404, f"failed to find image {name}: {_normal(name)}: image not known")
        if force:  # Podman's force: the image's containers go first, running or not
            for container in self._users(image):
                del self.containers[container.id]
        elif _full_id(name) and len(image.tags) > 1:
            return refused(
                500,
                f'unable to delete image "{image.id.removeprefix("sha256:")}" by ID with more '
                f"than one tag ([{' '.join(image.tags)}]): please force removal",
            )
        elif not _full_id(name) and len(image.tags) > 1:
            image.tags.remove(_normal(name))
            return RemoveResult(RemoveStatus.REMOVED, untagged=(_normal(name),))
        elif self._users(image):
            return refused(
                409,
                f"image {name} is in use: image used by {self._users(image)[0].id}: image is in "
                "use by a container: consider listing external containers and force-removing "
                "image",
            )
        names = tuple(image.tags)
        deleted = self._delete(image)
        return RemoveResult(
            RemoveStatus.REMOVED,
            untagged=names,
            deleted=(deleted[0].removeprefix("sha256:"), *deleted[1:]),
        )

    def _untag(self, image_id: str, repository: str, tag: str) -> RemoveResult:
        if not self.podman:  # Docker has no libpod API
            return refused(404, "page not found")
        image = self.images.get(image_id)
        if image is None:
            return refused(404, f"failed to find image {image_id}: image not known")
        first = repository.split("/", 1)[0]
        qualified = "." in first or ":" in first or first == "localhost"
        name = f"{repository}:{tag}" if qualified else f"localhost/{repository}:{tag}"
        if name not in image.tags:
            # 500 "tag not known", which `Engine.untag_image_by_id` reports as not found.
            return RemoveResult(RemoveStatus.NOT_FOUND, f"{name}: tag not known")
        image.tags.remove(name)
        return RemoveResult(RemoveStatus.REMOVED, untagged=(f"{repository}:{tag}",))

    # -- build cache and networks (BuildKit's prune, libnetwork's removal) --------------------
    #
    # Kept apart so that it merges with the container and volume bits above; the state lives
    # in lazily made attributes for the same reason.
    #
    # Build cache (BuildKit `cache/manager.go` `prune`, as `Engine.prune_build_cache_record`
    # sends it: one full id): a record goes only when no build holds it (`InUse`) and no
    # other record has it as a parent; without `all` (`keep_shared`) not when it is shared,
    # nor of the internal or frontend type. The answer lists `CachesDeleted` and
    # `SpaceReclaimed` (its size; a shared record's data stays with the image: 0). Prunes are
    # single-flight: while another client's prune runs (`prune_elsewhere`), 409.
    # `build_cache_by_type = False` is an API 1.41 engine: no `?type=build-cache`.
    #
    # Networks (libnetwork, Docker 20.10/26): `bridge`, `host` and `none` always listed
    # (Podman's compatible API lists its `podman` network as `bridge`, and nothing else),
    # refused as pre-defined; `GET /networks` lists `Containers` empty, an inspect lists the
    # running endpoints; Docker refuses a removal (403, "has active endpoints") only for a
    # running container: a stopped or never-started one attached does not stop it, as on the
    # real engine; Podman refuses for any container attached (500, "network is being used").
    # A never-started container's `NetworkSettings.Networks` entry has an empty `NetworkID`.

    build_cache_by_type: bool = True

    @property
    def build_cache(self) -> dict[str, FakeCacheRecord]:
        cache: dict[str, FakeCacheRecord] = self.__dict__.setdefault("_build_cache", {})
        return cache

    @property
    def networks(self) -> dict[str, FakeNetwork]:
        found: dict[str, FakeNetwork] | None = self.__dict__.get("_networks")
        if found is None:
            found = {}
            builtin = (
                [("bridge", "bridge")]
                if self.podman
                else [("bridge", "bridge"), ("host", "host"), ("none", "null")]
            )
            for name, driver in builtin:
                network = FakeNetwork(digest_of(f"network-{name}")[7:], name, driver, self.clock)
                found[network.id] = network
            self.__dict__["_networks"] = found
        return found

    @property
    def attachments(self) -> dict[str, list[str]]:
        """Container id → the ids of the networks it is attached to."""
        attached: dict[str, list[str]] = self.__dict__.setdefault("_attachments", {})
        return attached

    def add_cache_record(
        self,
        seed: str,
        size: int = 1000,
        *,
        parents: tuple[str, ...] = (),
        in_use: bool = False,
        shared: bool = False,
        record_type: str = "regular",
        last_used: datetime | None = None,
    ) -> FakeCacheRecord:
        """A record a build made (ids are 25 base-36 characters, as BuildKit's)."""
        record = FakeCacheRecord(
            id=hashlib.sha256(seed.encode()).hexdigest()[:25],
            type=record_type,
            description=f"fake step {seed}",
            size=size,
            created=self.tick(),
            last_used=last_used,
            in_use=in_use,
            shared=shared,
            parents=parents,
        )
        self.build_cache[record.id] = record
        return record

    def prune_elsewhere(self, running: bool = True) -> None:
        """Another client's prune (`docker system prune`) starts, or ends."""
        self.__dict__["_pruning"] = running

    def _build_cache_df(self) -> dict[str, Any]:
        """`GET /system/df`'s `BuildCache` part (API 1.42+ shape: `Parents`)."""
        return {"BuildCache": [r.listed() for r in self.build_cache.values()]}

    def build_cache_records(self) -> list[dict[str, Any]] | None:
        fault = self._enter("build_cache_records")
        if fault is not None:
            self._raise(fault, "GET /system/df?type=build-cache")
        if not self.build_cache_by_type:
            return None
        listed: list[dict[str, Any]] = self._build_cache_df()["BuildCache"]
        return listed

    def prune_build_cache_record(self, record_id: str, *, keep_shared: bool = True) -> RemoveResult:
        fault = self._enter("prune_build_cache_record", record_id, keep_shared)
        return self._removal(fault, lambda: self._prune(record_id, keep_shared))

    def _prune(self, record_id: str, keep_shared: bool) -> RemoveResult:
        if self.__dict__.get("_pruning"):
            return refused(409, "a prune operation is already running")
        record = self.build_cache.get(record_id)
        parent_of_another = any(record_id in r.parents for r in self.build_cache.values())
        # all=false: BuildKit skips shared records and the internal and frontend types.
        skipped = keep_shared and (
            record is None or record.shared or record.type in ("internal", "frontend")
        )
        if record is None or record.in_use or parent_of_another or skipped:
            return RemoveResult(RemoveStatus.REMOVED, deleted=(), reclaimed_bytes=0)
        del self.build_cache[record_id]
        reclaimed = 0 if record.shared else record.size
        return RemoveResult(RemoveStatus.REMOVED, deleted=(record_id,), reclaimed_bytes=reclaimed)

    def create_network(
        self, name: str, driver: str = "bridge", labels: dict[str, str] | None = None
    ) -> FakeNetwork:
        network = FakeNetwork(
            digest_of(f"network-{name}-{len(self.networks)}")[7:],
            name,
            driver,
            self.tick(),
            labels=labels or {},
        )
        self.networks[network.id] = network
        return network

    def attach(self, container_id: str, network_id: str) -> None:
        """`docker create --network` / `docker network connect`."""
        self.attachments.setdefault(container_id, []).append(network_id)

    def _network_settings(self, container_id: str) -> dict[str, Any]:
        """A listed container's `NetworkSettings`: `NetworkID` empty until it has started."""
        container = self.containers[container_id]
        started = container.state != "created"
        networks = {
            self.networks[n].name: {"NetworkID": n if started else "", "EndpointID": ""}
            for n in self.attachments.get(container_id, ())
            if n in self.networks
        }
        return {"NetworkSettings": {"Networks": networks}}

    def _find_network(self, name: str) -> FakeNetwork | None:
        return self.networks.get(name) or next(
            (n for n in self.networks.values() if n.name == name), None
        )

    def _endpoints(self, network: FakeNetwork) -> dict[str, Any]:
        return {
            c: {"Name": self.containers[c].name, "EndpointID": digest_of(c)[7:]}
            for c, attached in self.attachments.items()
            if network.id in attached
            and c in self.containers
            and self.containers[c].state in RUNNING
        }

    def list_networks(self) -> list[dict[str, Any]]:
        fault = self._enter("list_networks")
        if fault is not None:
            self._raise(fault, "GET /networks")
        return [n.listed({}) for n in self.networks.values()]

    def inspect_network(self, network_id: str) -> dict[str, Any] | None:
        fault = self._enter("inspect_network", network_id)
        if fault is not None:
            self._raise(fault, f"GET /networks/{network_id}")
        network = self._find_network(network_id)
        return None if network is None else network.listed(self._endpoints(network))

    def remove_network(self, network_id: str) -> RemoveResult:
        fault = self._enter("remove_network", network_id)
        return self._removal(fault, lambda: self._remove_network(network_id))

    def _remove_network(self, network_id: str) -> RemoveResult:
        network = self._find_network(network_id)
        if network is None:
            return refused(404, f"network {network_id} not found")
        if network.name in ("bridge", "host", "none"):
            return refused(403, f"{network.name} is a pre-defined network and cannot be removed")
        if self.podman and any(network.id in a for a in self.attachments.values()):
            return RemoveResult(
                RemoveStatus.CONFLICT,
                f'"{network.name}" has associated containers with it. Use -f to forcibly '
                "delete containers and pods: network is being used",
            )
        if self._endpoints(network):
            return RemoveResult(
                RemoveStatus.CONFLICT,
                f"error while removing network: network {network.name} id {network.id} has "
                "active endpoints",
            )
        del self.networks[network.id]
        return RemoveResult(RemoveStatus.REMOVED)


@dataclass
class FakeCacheRecord:
    id: str
    type: str
    description: str
    size: int
    created: datetime
    last_used: datetime | None
    in_use: bool
    shared: bool
    parents: tuple[str, ...]
    usage_count: int = 1

    def listed(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Parents": list(self.parents) or None,
            "Type": self.type,
            "Description": self.description,
            "InUse": self.in_use,
            "Shared": self.shared,
            "Size": self.size,
            "CreatedAt": _go_time(self.created),
            "LastUsedAt": None if self.last_used is None else _go_time(self.last_used),
            "UsageCount": self.usage_count,
        }


@dataclass
class FakeNetwork:
    id: str
    name: str
    driver: str
    created: datetime
    labels: dict[str, str] = field(default_factory=dict)
    scope: str = "local"
    ingress: bool = False

    def listed(self, endpoints: dict[str, Any]) -> dict[str, Any]:
        return {
            "Name": self.name,
            "Id": self.id,
            "Created": _go_time(self.created),
            "Scope": self.scope,
            "Driver": self.driver,
            "Internal": False,
            "Ingress": self.ingress,
            "Containers": endpoints,
            "Labels": dict(self.labels),
        }


if TYPE_CHECKING:  # both implement the interface the engine-facing modules are written for
    _fake: type[EngineApi] = FakeEngine
    _real: type[EngineApi] = Engine
