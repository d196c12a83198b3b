"""The Debian package (scripts/package), checked by lintian and installed on a real system:
the debootstrapped bookworm root of nspawn.py, booted under systemd-nspawn with the suite's
private engine bound in (host_engine.py). One boot walks the package's whole life: install
(the daemon enabled, started and READY), a cycle under an edited policy, reload, an upgrade
to the next build, remove, purge.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration import images
from tests.system import debian_package, host_engine, nspawn
from tests.system.debian_package import Packages
from tests.system.host_engine import HostEngine
from tests.system.nspawn import Container, wait_for

pytestmark = [pytest.mark.system, debian_package.needs_package_and_engine()]

REPO = debian_package.REPO
POLICY = "/etc/gcd/policy.yaml"
STATE = "/var/lib/private/gcd"
# The operator's edit: dangling images go at once, tagged ones only by label; cycles every 5 s.
EDITED = """\
# edited by the operator
version: 1
safety: {min_age: 0s, max_delete_fraction: 1}
images:
  keep:
    - label: {gc.keep: "true"}
  dangling: {keep_within: 0s}
schedule: {every: 5s, jitter: 0s}
"""


def contents(deb: Path) -> dict[str, str]:
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True)
    found = {}
    for line in listing.stdout.splitlines():
        fields = line.split(None, 5)
        found[fields[5].split(" -> ")[0].removeprefix(".")] = fields[0]
    return found


def test_the_package_ships_the_units_policy_rules_dashboard_and_man_page(
    packages: Packages,
) -> None:
    files = contents(packages.new)
    for path in (
        "/usr/bin/gcd",
        "/opt/venvs/gcd/bin/gcd",
        "/lib/systemd/system/gcd.service",
        "/lib/systemd/system/gcd-run.service",
        "/lib/systemd/system/gcd.timer",
        POLICY,
        "/usr/share/gcd/prometheus/gcd.rules.yaml",
        "/usr/share/gcd/grafana/gcd.json",
        "/usr/share/man/man1/gcd.1.gz",
    ):
        assert path in files, path
    conffiles = subprocess.run(
        ["dpkg-deb", "--ctrl-tarfile", packages.new], capture_output=True, check=True
    ).stdout
    assert b"conffiles" in conffiles
    shown = subprocess.run(
        ["dpkg-deb", "-I", packages.new, "conffiles"], capture_output=True, text=True, check=True
    )
    assert shown.stdout.split() == [POLICY]
    assert packages.version(packages.new).endswith("+test2")


def unit_text(deb: Path, unit: str, dest: Path) -> str:
    subprocess.run(["dpkg-deb", "-x", deb, dest], check=True)
    return (dest / "lib/systemd/system" / unit).read_text()


@pytest.mark.parametrize("unit", ["gcd.service", "gcd-run.service", "gcd.timer"])
def test_the_packaged_units_are_the_repositorys_but_for_the_entry_point(
    packages: Packages, tmp_path: Path, unit: str
) -> None:
    packaged = unit_text(packages.new, unit, tmp_path).splitlines()
    shipped = (REPO / "deploy/systemd" / unit).read_text().splitlines()
    assert packaged[0].startswith("# Installed by the gcd Debian package")
    expected = [
        line.replace("ExecStart=/usr/local/bin/gcd ", "ExecStart=/usr/bin/gcd ") for line in shipped
    ]
    assert packaged[1:] == expected


@pytest.fixture(scope="module")
def engine() -> Iterator[HostEngine]:
    with host_engine.private_engine() as started:
        yield started


def copy_in(container: Container, deb: Path) -> str:
    inside = f"/var/tmp/{deb.name}"
    (container.root / inside.lstrip("/")).write_bytes(deb.read_bytes())
    return inside


def apt_get(container: Container, *args: str) -> subprocess.CompletedProcess[str]:
    # Without recommends: the engine is the suite's, bound in; apt would otherwise install the
    # recommended docker.io, whose docker.socket takes /run/docker.sock over.
    return container.run(
        *("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-y", "-q"),
        *("--no-install-recommends", *args),
        timeout=300,
    )


def journal_events(container: Container) -> list[dict[str, object]]:
    found = []
    for line in container.journal("gcd.service"):
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found


def count(container: Container, name: str) -> int:
    return sum(1 for event in journal_events(container) if event.get("event") == name)


def wait_for_count(container: Container, name: str, at_least: int) -> None:
    def probe() -> bool | None:
        return True if count(container, name) >= at_least else None

    wait_for(f"{at_least} {name!r} event(s) in gcd.service's journal", probe, timeout=120)


def scrape(container: Container) -> str:
    """GET /metrics on the daemon's default loopback address, from inside the container."""
    script = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:9795/metrics').read())"
    return container.run("python3", "-c", script).stdout


def installed_version(container: Container) -> str:
    shown = container.run("dpkg-query", "-W", "-f", "${Version} ${db:Status-Abbrev}", "gcd")
    return shown.stdout.strip()


def test_install_cycle_reload_upgrade_remove_purge(packages: Packages, engine: HostEngine) -> None:
    api = docker.APIClient(base_url=f"unix://{engine.socket}", version="auto")
    with nspawn.booted(REPO, engine.socket_dir, engine.socket_gid, bare=True) as host:
        # Images first: the install's first cycle sees them.
        kept_id, dangling_id = _load_pair(api)
        # Install: Debian's default for a daemon, enabled and started; gcd.timer, the
        # alternative to the daemon, is shipped disabled. Type=notify: active means READY=1.
        apt_get(host, "install", copy_in(host, packages.old))
        assert installed_version(host).startswith(f"{packages.version(packages.old)} ii")
        assert host.show("gcd.service", "UnitFileState") == "enabled"
        assert host.show("gcd.service", "ActiveState") == "active"
        assert host.show("gcd.timer", "UnitFileState") == "disabled"
        wait_for_count(host, "daemon_ready", 1)
        assert "usage: gcd" in host.run("/usr/bin/gcd", "--help").stdout
        # A first scrape, as Prometheus makes it: the first cycle waits for one (up to 60 s).
        assert "gcd_" in scrape(host)

        # The shipped policy deletes nothing: its plan, as the service's user (the README's
        # first step), deletes nothing although a dangling image is there.
        plan = host.run(
            *("systemd-run", "--quiet", "--pipe", "--wait", "--collect"),
            *("-p", "DynamicUser=yes", "-p", "User=gcd", "-p", "SupplementaryGroups=docker"),
            *("-p", "StateDirectory=gcd", "/usr/bin/gcd", "plan", "--policy", POLICY),
            *("--output", "json"),
        )
        assert json.loads(plan.stdout)["summary"]["delete"] == 0
        assert api.inspect_image(dangling_id)["Id"] == dangling_id

        # The operator edits the policy and reloads: the next cycle removes the dangling image.
        host.write_file(POLICY, EDITED)
        host.systemctl("reload", "gcd.service")
        wait_for_count(host, "policy_reloaded", 1)
        assert host.show("gcd.service", "ActiveState") == "active"

        def gone() -> bool | None:
            return True if not api.images(all=True, filters={"dangling": True}) else None

        wait_for("the daemon's cycle to remove the dangling image", gone, timeout=120)
        assert api.inspect_image(kept_id)["Id"] == kept_id
        state_files = set(host.run("ls", STATE).stdout.split())
        assert state_files, "the daemon keeps its state in /var/lib/private/gcd"

        # Upgrade to the next build: the edited policy and the state stay; the daemon restarts.
        pid_before = host.show("gcd.service", "MainPID")
        apt_get(host, "install", copy_in(host, packages.new))
        assert installed_version(host).startswith(f"{packages.version(packages.new)} ii")
        assert host.run("cat", POLICY).stdout == EDITED
        assert state_files <= set(host.run("ls", STATE).stdout.split())
        assert host.show("gcd.service", "ActiveState") == "active"
        assert host.show("gcd.service", "MainPID") != pid_before
        wait_for_count(host, "daemon_ready", 2)

        # Remove: the service stops and the program goes; policy (a conffile) and state stay.
        apt_get(host, "remove", "gcd")
        assert host.show("gcd.service", "ActiveState") in ("inactive", "failed")
        assert host.run("test", "-e", "/usr/bin/gcd", check=False).returncode != 0
        assert host.run("cat", POLICY).stdout == EDITED
        assert host.run("test", "-d", STATE, check=False).returncode == 0
        assert installed_version(host).endswith("rc")

        # Purge: the policy and the state go too.
        apt_get(host, "purge", "gcd")
        for path in ("/etc/gcd", STATE, "/var/lib/gcd", "/opt/venvs/gcd"):
            assert host.run("test", "-e", path, check=False).returncode != 0, path
        listed = host.run("dpkg-query", "-W", "gcd", check=False)
        assert listed.returncode != 0 or not listed.stdout.strip().split()[1:]


def _load_pair(api: docker.APIClient) -> tuple[str, str]:
    """A labelled image tagged team/app:1, loaded over an older one, which is left dangling."""
    old = images.image(images.layer(64, "dangling"), tags=("team/app:1",))
    new = images.image(images.layer(64, "kept"), tags=("team/app:1",), labels={"gc.keep": "true"})
    (dangling_id,) = images.load(api, old)
    (kept_id,) = images.load(api, new)
    return kept_id, dangling_id


# Last in the module: lintian runs in the background meanwhile (conftest.py).
def test_lintian_passes_with_the_listed_overrides(packages: Packages) -> None:
    assert packages.lintian is not None
    stdout, stderr = packages.lintian.communicate(timeout=600)
    reported = [line for line in stdout.splitlines() if re.match(r"^[EWIPX]: ", line)]
    assert packages.lintian.returncode == 0, "\n".join(reported) or stderr
    assert not [line for line in reported if line.startswith(("E:", "W:"))], reported
    # An override that matches nothing any more is reported too: the list stays exact.
    assert not [line for line in reported if "unused-override" in line], reported
