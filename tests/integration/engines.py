"""The engines of the integration matrix (`docs/engines.md`), chosen by `GCD_TEST_ENGINE`.

`engine_for(name)` gives an unstarted `PrivateEngine` (or the Podman variant, which is one):
`docker-20.10` is the system's dockerd; `docker-26` and `docker-26-containerd` (the containerd
image store) are Debian trixie's dockerd 26.1; `podman-5` is `podman system service` on its
own storage. The extra engines are unpacked by `scripts/engines`. Free of pytest, like the
harness.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import docker

from tests.integration.harness import DOCKERD, EngineStartError, PrivateEngine, _mounts_under

ENGINES_DIR = Path(os.environ.get("GCD_ENGINES_DIR", "/var/cache/gcd-tests/engines"))
DEFAULT_ENGINE = "docker-20.10"
ENGINE_NAMES = ("docker-20.10", "docker-26", "docker-26-containerd", "podman-5")
CONTAINERD_STORE = '{"features": {"containerd-snapshotter": true}}'


@dataclass(frozen=True)
class Traits:
    """Where an engine of the matrix behaves differently, as the tests rely on it; each is
    described in docs/engines.md."""

    layer_db: bool
    """gcd reads layers and sizes from the graphdriver's databases: no per-image calls."""
    last_tag_time: bool
    """`Metadata.LastTagTime` says when the image was last tagged (Podman's is always 0001)."""
    retag_stamps_time: bool
    """Tagging an image with a tag it already has moves `LastTagTime` too."""
    load_drops_replaced: bool
    """Loading an image under a tag another image has deletes that image (it is not left
    dangling)."""
    exited_states: tuple[str, ...]
    """How `GET /containers/json` names the state of a container that ran and exited (Podman
    says `stopped` until it has cleaned up after the container, then `exited`)."""
    year_one_listed: bool
    """An image whose config says `created: 0001-01-01` is listed so (Podman lists the time
    it was loaded)."""


_GRAPHDRIVER = Traits(
    layer_db=True,
    last_tag_time=True,
    retag_stamps_time=True,
    load_drops_replaced=False,
    exited_states=("exited",),
    year_one_listed=True,
)
TRAITS = {
    "docker-20.10": _GRAPHDRIVER,
    "docker-26": _GRAPHDRIVER,
    "docker-26-containerd": Traits(
        layer_db=False,
        last_tag_time=True,
        retag_stamps_time=False,
        load_drops_replaced=True,
        exited_states=("exited",),
        year_one_listed=True,
    ),
    "podman-5": Traits(
        layer_db=False,
        last_tag_time=False,
        retag_stamps_time=False,
        load_drops_replaced=False,
        exited_states=("stopped", "exited"),
        year_one_listed=False,
    ),
}


def selected_engine() -> str:
    """The engine named by `GCD_TEST_ENGINE`, checked against the known names."""
    name = os.environ.get("GCD_TEST_ENGINE") or DEFAULT_ENGINE
    if name not in ENGINE_NAMES:
        raise EngineStartError(
            f"GCD_TEST_ENGINE={name!r} is not an engine of the matrix; "
            f"choose one of {', '.join(ENGINE_NAMES)}"
        )
    return name


def _installed(folder: str) -> Path:
    root = ENGINES_DIR / folder
    if not (root / ".installed").is_file():
        raise EngineStartError(f"{root} is missing: run `scripts/engines {folder}` (as root) first")
    return root


def engine_for(name: str, data_root: Path | None = None) -> PrivateEngine:
    """An unstarted private engine of kind `name` (one of `ENGINE_NAMES`)."""
    if name == "docker-20.10":
        return PrivateEngine(data_root, dockerd=DOCKERD, name=name)
    if name in ("docker-26", "docker-26-containerd"):
        root = _installed("docker-26")
        engine = PrivateEngine(
            data_root,
            dockerd=str(root / "usr/sbin/dockerd"),
            path_prefix=str(root / "usr/bin"),
            name=name,
        )
        if name == "docker-26-containerd":
            config = engine.dir / "daemon.json"
            config.write_text(CONTAINERD_STORE)
            engine.extra_args = ("--config-file", str(config))
        return engine
    if name == "podman-5":
        return PrivatePodman(_installed("podman-5"), data_root)
    raise EngineStartError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")


class PrivatePodman(PrivateEngine):
    """`podman system service` on its own socket, storage (`--root`, `--runroot`, `--tmpdir`)
    and configuration files, with cgroupfs, file events and no network. Its containers run
    under conmon, outside the service: `stop` removes them through the API first, then kills
    what is left by the pids in conmon's own pid files."""

    def __init__(self, install: Path, data_root: Path | None = None) -> None:
        super().__init__(data_root, dockerd=str(install / "bin/podman"), name="podman-5")
        self.install = install

    def _write_config(self) -> dict[str, str]:
        bin_dir = self.install / "bin"
        home = self.dir / "home"
        (home / ".config/containers").mkdir(parents=True, exist_ok=True)
        (home / ".config/containers/policy.json").write_text(
            json.dumps({"default": [{"type": "insecureAcceptAnything"}]})
        )
        for sub in ("tmp", "run", "net"):
            (self.dir / sub).mkdir(exist_ok=True)
        conf = self.dir / "containers.conf"
        conf.write_text(
            "[containers]\n"
            'netns = "none"\n'
            f'seccomp_profile = "{self.install}/root/usr/share/containers/seccomp.json"\n'
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'events_logfile_path = "{self.dir}/events.log"\n'
            f'conmon_path = ["{bin_dir}/conmon"]\n'
            f'helper_binaries_dir = ["{bin_dir}"]\n'
            f'image_copy_tmp_dir = "{self.dir}/tmp"\n'
            'runtime = "runc"\n'
            "[engine.runtimes]\n"
            'runc = ["/usr/sbin/runc"]\n'
            "[network]\n"
            f'network_config_dir = "{self.dir}/net"\n'
        )
        registries = self.dir / "registries.conf"
        registries.write_text("unqualified-search-registries = []\n")
        storage = self.dir / "storage.conf"
        storage.write_text(
            f'[storage]\ndriver = "overlay"\ngraphroot = "{self.data_root}"\n'
            f'runroot = "{self.dir}/run"\n'
        )
        return {
            "HOME": str(home),
            "CONTAINERS_CONF": str(conf),
            "CONTAINERS_REGISTRIES_CONF": str(registries),
            "CONTAINERS_STORAGE_CONF": str(storage),
            "XDG_RUNTIME_DIR": str(self.dir / "run"),
            "TMPDIR": str(self.dir / "tmp"),
            "PODMAN_IGNORE_CGROUPSV1_WARNING": "1",
        }

    def start(self) -> Self:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "CONTAINERS_"))}
        env.update(self._write_config())
        command = [
            self.dockerd,
            "--root",
            str(self.data_root),
            "--runroot",
            str(self.dir / "run"),
            "--tmpdir",
            str(self.dir / "tmp"),
            "--storage-driver",
            "overlay",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "system",
            "service",
            "--time=0",
            self.host,
        ]
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self.pid_file.write_text(f"{self._process.pid}\n")
        self._wait_until_ready()
        return self

    def _conmon_pids(self) -> list[int]:
        pids = []
        for pid_file in (self.dir / "run").glob("overlay-containers/*/userdata/conmon.pid"):
            with contextlib.suppress(OSError, ValueError):
                pids.append(int(pid_file.read_text().strip()))
        return pids

    def stop_engine(self, timeout: float = 30.0) -> None:
        super().stop_engine(timeout)
        self.pid_file.unlink(missing_ok=True)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._remove_containers()
        self.stop_engine()
        for pid in self._conmon_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for mount in _mounts_under(self.dir):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        super().stop()

    def _remove_containers(self) -> None:
        client = docker.APIClient(base_url=self.host, version="auto", timeout=60)
        try:
            for container in client.containers(all=True):
                with contextlib.suppress(docker.errors.APIError):
                    if container["State"] == "running":  # force alone waits 10 s for PID 1
                        client.kill(container["Id"])
                    client.remove_container(container["Id"], force=True, v=True)
        except docker.errors.DockerException:
            pass
        finally:
            client.close()
