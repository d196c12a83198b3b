"""A real systemd booted with systemd-nspawn, to run gcd's units the way a host does.

Layers, all under CACHE_DIR (default /var/cache/gcd-tests, or $GCD_TEST_CACHE):

- `nspawn-root`: a debootstrapped Debian bookworm (minbase + systemd, dbus, python3-venv, and
  procps for the /bin/kill of ExecReload=, as on any real host),
  built once (~1-2 min) into a temporary directory and renamed into place, so a half-built tree
  is never used; `.gcd-test-recipe` inside records what it was built from.
- `wheels-<key>`: wheels of gcd's dependencies, built on the host with `pip wheel`. The host's
  Python (pyenv 3.11.7) and the container's (Debian 3.11.2) share the cp311 tag and glibc 2.36,
  so the same wheels install in both. A venv cannot be shared: it points at its interpreter.
- `venv-<key>`: an overlayfs upper layer holding /opt/gcd, a venv made by the container's own
  python3 with those dependencies installed from the wheels (no index).

Each boot mounts an overlay (upper in a fresh temporary directory) over the two cached layers,
so tests never change the cache and need no copy. gcd itself is a wheel built from the working
tree for each test session and installed into /opt/gcd by the container's pip after boot.

Boot flags as in /work/shared/real-parts.md: `--register=no --keep-unit` (no machined on the
host), `--system-call-filter=bpf` (so IPAddressDeny= is enforced inside), the host engine's
socket *directory* bound at /run/docker-host (a bound socket file goes stale when dockerd
restarts) with /run/docker.sock linked to it by tmpfiles.d, and a `docker` group with the
socket's gid. Commands run in the container through `nsenter` into its PID 1.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

RELEASE = "bookworm"
PACKAGES = ("systemd", "systemd-sysv", "dbus", "procps", "python3", "python3-venv")
RECIPE = f"debootstrap --variant=minbase --include={','.join(PACKAGES)} {RELEASE}"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
VENV = "/opt/gcd"
GCD = f"{VENV}/bin/gcd"
REPO_MOUNT = "/src"
ENGINE_MOUNT = "/run/docker-host"
CONTAINER_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "SYSTEMD_COLORS": "0"}
TOOLS = ("systemd-nspawn", "debootstrap", "nsenter", "mount", "umount")

T = TypeVar("T")


class RigError(RuntimeError):
    """The container could not be built, booted or driven; the message says what failed."""


def cache_dir() -> Path:
    return Path(os.environ.get("GCD_TEST_CACHE", "/var/cache/gcd-tests"))


def unavailable_reason() -> str | None:
    """Why this machine cannot boot the rig (None when it can)."""
    if sys.platform != "linux":
        return "systemd-nspawn needs Linux"
    if os.geteuid() != 0:
        return "booting a container with systemd-nspawn needs root"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)}: apt-get install -y systemd-container debootstrap"
    return None


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Poll `probe` until it returns something other than None, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise RigError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _run(argv: Sequence[str | Path]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RigError(
            f"{' '.join(map(str, argv))} exited {result.returncode}:\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result


@contextlib.contextmanager
def _cache_lock() -> Iterator[Path]:
    """Serialise cache builds between concurrent test sessions."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield root


def apt_mirror() -> str:
    """The Debian mirror the host's apt sources already name (deb822 or one-line format)."""
    files = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    files += sorted(Path("/etc/apt/sources.list.d").glob("*.list"))
    files.append(Path("/etc/apt/sources.list"))
    for path in files:
        text = path.read_text() if path.is_file() else ""
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:(.*)$", stanza, re.MULTILINE)
            if uris and suites and RELEASE in suites.group(1).split():
                return uris.group(1)
        line = re.search(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{RELEASE}\s", text, re.MULTILINE)
        if line:
            return line.group(1)
    return DEFAULT_MIRROR


def base_root() -> Path:
    """The cached debootstrapped tree, built on first use."""
    with _cache_lock() as root:
        target = root / "nspawn-root"
        stamp = target / ".gcd-test-recipe"
        if stamp.is_file() and stamp.read_text() == RECIPE:
            return target
        building = Path(tempfile.mkdtemp(prefix="nspawn-root.tmp-", dir=root))
        tree = building / "root"
        argv = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}"]
        _run([*argv, RELEASE, tree, apt_mirror()])
        (tree / ".gcd-test-recipe").write_text(RECIPE)
        if target.exists():  # built from another recipe: replace it
            target.rename(building / "stale")
        tree.rename(target)
        shutil.rmtree(building)
        return target


def dependencies(repo: Path) -> list[str]:
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    return [str(spec) for spec in project["dependencies"]]


def _pip_wheel(args: Sequence[str | Path]) -> None:
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", *args])


def _key(repo: Path) -> str:
    return hashlib.sha256(json.dumps([RECIPE, dependencies(repo)]).encode()).hexdigest()[:16]


def _wheels(root: Path, repo: Path) -> Path:
    """Under the cache lock: the directory of gcd's dependency wheels, built once."""
    wheels = root / f"wheels-{_key(repo)}"
    if not wheels.is_dir():
        building = Path(tempfile.mkdtemp(prefix="wheels.tmp-", dir=root))
        _pip_wheel(["-w", building, *dependencies(repo)])
        building.rename(wheels)
    return wheels


def dependency_wheels(repo: Path) -> Path:
    """The cached wheels of gcd's dependencies (built on first use; never written after)."""
    with _cache_lock() as root:
        return _wheels(root, repo)


def venv_layer(repo: Path) -> Path:
    """An overlay layer with /opt/gcd: a container-made venv with gcd's dependencies."""
    base = base_root()
    deps = dependencies(repo)
    key = _key(repo)
    with _cache_lock() as root:
        layer = root / f"venv-{key}"
        if layer.is_dir():
            return layer
        wheels = _wheels(root, repo)
        work = Path(tempfile.mkdtemp(prefix="venv.tmp-", dir=root))
        with _overlay([base], work) as merged:
            script = (
                f"python3 -m venv {VENV} && {VENV}/bin/pip install -q --disable-pip-version-check"
                " --no-index --find-links /wheels " + " ".join(f"'{d}'" for d in deps)
            )
            nspawn = ["systemd-nspawn", "-q", "--register=no", "--keep-unit", "--pipe"]
            _run([*nspawn, "-D", merged, f"--bind-ro={wheels}:/wheels", "/bin/sh", "-c", script])
        (work / "upper").rename(layer)
        shutil.rmtree(work)
        return layer


def build_gcd_wheel(repo: Path, dest: Path) -> Path:
    """A wheel of gcd from the working tree, built from a copy so the tree stays clean."""
    source = dest / "source"
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (repo / name).is_file():
            shutil.copy2(repo / name, source / name)
    shutil.copytree(repo / "gcd", source / "gcd", ignore=shutil.ignore_patterns("__pycache__"))
    _pip_wheel(["--no-deps", "-w", dest, source])
    (wheel,) = dest.glob("gcd-*.whl")
    return wheel


@contextlib.contextmanager
def _overlay(lower: Sequence[Path], work: Path) -> Iterator[Path]:
    """An overlayfs over `lower` (topmost first), its upper layer in `work`/upper."""
    for name in ("upper", "work", "merged"):
        (work / name).mkdir()
    merged = work / "merged"
    options = f"lowerdir={':'.join(map(str, lower))},upperdir={work}/upper,workdir={work}/work"
    _run(["mount", "-t", "overlay", "overlay", "-o", options, merged])
    try:
        yield merged
    finally:
        if subprocess.run(["umount", merged], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", merged], check=False)


def _children(pid: int) -> list[tuple[int, str]]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            comm = text[text.index("(") + 1 : text.rindex(")")]
            ppid = int(text[text.rindex(")") + 2 :].split()[1])
            if ppid == pid:
                found.append((int(stat.parent.name), comm))
    return found


@dataclass
class Container:
    """A booted container: host-side `root` (persistent paths only) and its PID 1."""

    name: str
    root: Path
    process: subprocess.Popen[bytes]
    pid1: int
    console: Path

    def run(
        self, *argv: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside, in all of PID 1's namespaces, with a clean environment."""
        result = subprocess.run(
            ["nsenter", "-t", str(self.pid1), "-a", "-r", "-w", *argv],
            capture_output=True,
            text=True,
            input=input,
            env=CONTAINER_ENV,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RigError(
                f"in {self.name}: {' '.join(argv)} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        return result

    def boot_state(self) -> str | None:
        """The state once boot has finished; None while PID 1 has no bus yet."""
        state = self.run("systemctl", "is-system-running", "--wait", check=False).stdout.strip()
        # "offline": systemctl could not reach PID 1's bus yet, early in boot; ask again.
        return None if state in ("", "offline") else state

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("systemctl", "--no-pager", *args, check=check)

    def show(self, unit: str, prop: str) -> str:
        return self.systemctl("show", "--value", "-p", prop, unit).stdout.strip()

    def journal(self, unit: str) -> list[str]:
        """The unit's journal as message lines (gcd's JSON log lines among them)."""
        self.run("journalctl", "--sync", check=False)
        return self.run("journalctl", "-u", unit, "-o", "cat", "--no-pager").stdout.splitlines()

    def write_file(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write a file in a persistent path (/etc, /opt, /var; not /run or /tmp) from the host."""
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    def install_gcd(self, wheel: Path) -> None:
        """Install the session's gcd wheel into the cached venv (dependencies are there)."""
        (self.root / "var/tmp/wheels").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wheel, self.root / "var/tmp/wheels" / wheel.name)
        self.run(
            f"{VENV}/bin/pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-index",
            "--no-deps",
            f"/var/tmp/wheels/{wheel.name}",
        )


def _prepare(root: Path, docker_gid: int | None) -> None:
    if docker_gid is None:
        return
    (root / "etc/tmpfiles.d/gcd-test-engine.conf").write_text(
        f"L /run/docker.sock - - - - {ENGINE_MOUNT}/docker.sock\n"
    )
    group = root / "etc/group"
    lines = [line for line in group.read_text().splitlines() if not line.startswith("docker:")]
    taken = [line for line in lines if line.split(":")[2] == str(docker_gid)]
    if taken:
        raise RigError(f"gid {docker_gid} of the engine socket is taken in the container: {taken}")
    group.write_text("\n".join([*lines, f"docker:x:{docker_gid}:"]) + "\n")


def _shutdown(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to nspawn's process group halts the container cleanly; SIGKILL if it hangs."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@contextlib.contextmanager
def booted(
    repo: Path,
    engine_dir: Path | None = None,
    docker_gid: int | None = None,
    *,
    bare: bool = False,
) -> Iterator[Container]:
    """Boot a throwaway container over the cached layers; always halted and removed after.

    `engine_dir` is the host directory holding the engine's `docker.sock`; it is bound at
    /run/docker-host and linked as /run/docker.sock, with a `docker` group of `docker_gid`.
    The repository is bound read-only at /src. `bare`: the debootstrapped root alone, without
    the cached /opt/gcd venv (for the Debian package, which brings its own).
    """
    layers = [base_root()] if bare else [venv_layer(repo), base_root()]
    work = Path(tempfile.mkdtemp(prefix="gcd-nspawn-"))
    name = f"gcdtest-{os.getpid()}-{secrets.token_hex(3)}"  # letters, digits, "-" only
    console = work / "console.log"
    try:
        with _overlay(layers, work) as merged:
            _prepare(merged, docker_gid if engine_dir is not None else None)
            argv = ["systemd-nspawn", "-b", "-D", str(merged), "-M", name, "--register=no"]
            argv += ["--keep-unit", "--console=read-only", "--system-call-filter=bpf"]
            argv += [f"--bind-ro={repo}:{REPO_MOUNT}"]
            if engine_dir is not None:
                argv += [f"--bind-ro={engine_dir}:{ENGINE_MOUNT}"]
            env = {**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
            with console.open("wb") as log:
                process = subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            try:
                container = Container(name, merged, process, _find_pid1(process, console), console)
                state = wait_for("systemd's bus in the container", container.boot_state)
                if state != "running":
                    failed = container.systemctl("--failed", check=False).stdout
                    raise RigError(f"{name} booted {state!r}, not 'running':\n{failed}")
                yield container
            finally:
                _shutdown(process)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _find_pid1(process: subprocess.Popen[bytes], console: Path) -> int:
    def probe() -> int | None:
        if process.poll() is not None:
            raise RigError(f"systemd-nspawn exited {process.returncode}:\n{console.read_text()}")
        return next((pid for pid, comm in _children(process.pid) if comm == "systemd"), None)

    return wait_for("the container's systemd to start", probe, timeout=30)
