"""Holds (`gcd hold`) on the suite's own engine: a held image survives a policy that would
delete it and a real `docker image prune -a -f` run beside gcd; the hold expires and the image
goes in the next cycle; release by reference (this owner's holds, `--any-owner` all) and
`--all-mine`; `gcd holds --output json`; the
hold commands work from a second process, another user with only the socket; holding a
missing image is an error. Then what a hold protects against, with the real Docker CLI: the
table in the README ("Holds for CI jobs")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import pytest

from gcd.core.holds import HOLD_LABEL
from gcd.engine.client import Engine
from gcd.engine.holds import place
from gcd.errors import ExitCode
from tests.integration.conftest import wipe
from tests.integration.gcd_command import gcd
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load
from tests.integration.proxy import EngineProxy

DOCKER_CLI = "/usr/local/bin/docker"
POLICY = """\
version: 1
safety: {min_age: 1s}
images:
  max_delete_fraction: 1
  dangling: {keep_within: 1s}
  keep:
    - reference: ["hd/keep:*"]
"""
"""Every image but `hd/keep` goes once 1 s old (the last one too, once `docker image prune -a`
took hd/keep); no `containers:` section: holds are gcd's own."""


def docker_cli(host: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKER_CLI, "-H", host, *args], capture_output=True, text=True, check=False, timeout=60
    )


def hold_containers(api: docker.APIClient) -> list[dict[str, object]]:
    return list(api.containers(all=True, filters={"label": f"{HOLD_LABEL}=1"}))


def image_ids(api: docker.APIClient) -> set[str]:
    return {str(i["Id"]) for i in api.images()}


@pytest.fixture
def three(clean_engine: PrivateEngine, api: docker.APIClient) -> dict[str, str]:
    """hd/keep:1 (kept by the policy), hd/app:1 and hd/spare:1 (neither kept)."""
    ids = load(
        api,
        image(layer(2048, "hd-keep"), tags=("hd/keep:1",)),
        image(layer(2048, "hd-app"), tags=("hd/app:1",)),
        image(layer(2048, "hd-spare"), tags=("hd/spare:1",)),
    )
    return dict(zip(("keep", "app", "spare"), ids, strict=True))


def rules(host: str, state: Path, policy: Path) -> dict[str, tuple[str, str]]:
    result = gcd(host, state, "plan", "--policy", str(policy), "-o", "json")
    assert result.returncode == ExitCode.OK, result.stderr
    return {d["id"]: (d["rule"], d["detail"]) for d in json.loads(result.stdout)["decisions"]}


def plan_until(
    host: str, state: Path, policy: Path, want: dict[str, str]
) -> dict[str, tuple[str, str]]:
    """Plans until every id in `want` has its rule (first-seen ages and expiries pass)."""
    deadline = time.monotonic() + 30
    while True:
        planned = rules(host, state, policy)
        if all(planned.get(i, ("",))[0] == rule for i, rule in want.items()):
            return planned
        assert time.monotonic() < deadline, json.dumps(planned, indent=1)
        time.sleep(0.3)


@pytest.mark.core
def test_a_held_image_survives_gcd_and_image_prune_all_then_expires_and_goes(
    clean_engine: PrivateEngine, api: docker.APIClient, three: dict[str, str], tmp_path: Path
) -> None:
    host, state = clean_engine.host, tmp_path / "state"
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    rules(host, state, policy)  # gcd's first sight of the images: their local age starts
    # Each gcd process takes ~2 s to start on a loaded CI machine: 10 s covers plan and run.
    held = gcd(host, state, "hold", "hd/app:1", "--for", "10s", "--reason", "stage 3 runs it")
    assert held.returncode == ExitCode.OK, held.stderr
    assert held.stdout.startswith(f"held {three['app']} (hd/app:1) until "), held.stdout
    [hold] = hold_containers(api)
    assert hold["State"] == "created"
    assert hold["ImageID"] == three["app"]

    planned = plan_until(
        host, state, policy, {three["spare"]: "delete.unkept", three["app"]: "keep.hold"}
    )
    assert planned[str(hold["Id"])][0] == "keep.hold"
    assert "reason 'stage 3 runs it'" in planned[three["app"]][1]
    ran = gcd(host, state, "run", "--once", "--policy", str(policy))
    assert ran.returncode == ExitCode.OK, ran.stderr
    # Someone else's `docker image prune -a` beside gcd: the hold's container keeps it too.
    pruned = docker_cli(host, "image", "prune", "-a", "-f")
    assert pruned.returncode == 0, pruned.stderr
    assert image_ids(api) == {three["app"]}  # hd/keep went to the prune, hd/spare to gcd

    expired = plan_until(host, state, policy, {str(hold["Id"]): "delete.hold_expired"})
    # The containerd image store's prune took the tag of the held image (README table).
    assert expired[three["app"]][0] in ("delete.unkept", "delete.dangling")
    assert "released by container" in expired[three["app"]][1]
    ran = gcd(host, state, "run", "--once", "--policy", str(policy))
    assert ran.returncode == ExitCode.OK, ran.stderr
    assert hold_containers(api) == []
    assert image_ids(api) == set()


@pytest.mark.core
def test_release_by_reference_and_all_mine_and_the_json_listing(
    clean_engine: PrivateEngine,
    api: docker.APIClient,
    three: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, state = clean_engine.host, tmp_path / "state"
    for ref in ("hd/app:1", "hd/spare:1"):
        assert gcd(host, state, "hold", ref, "--for", "1h").returncode == 0
    monkeypatch.setenv("GCD_HOLD_OWNER", "job-42")  # the gcd subprocesses inherit it
    mine = gcd(host, state, "hold", three["keep"], "hd/app:1", "--for", "30m")
    monkeypatch.delenv("GCD_HOLD_OWNER")
    assert mine.returncode == 0, mine.stderr
    assert mine.stdout.startswith(f"held {three['keep']} until "), mine.stdout  # by id: no ref

    listed = gcd(host, state, "holds", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    holds = json.loads(listed.stdout)["holds"]
    assert sorted((h["reference"], h["owner"] == "job-42") for h in holds) == [
        ("hd/app:1", False),
        ("hd/app:1", True),
        ("hd/spare:1", False),
        (three["keep"], True),
    ]
    assert all(not h["expired"] and h["expires"].endswith("Z") for h in holds)

    released = gcd(host, state, "release", "hd/spare:1")
    assert released.returncode == 0
    assert released.stdout.count("released ") == 1
    monkeypatch.setenv("GCD_HOLD_OWNER", "job-42")
    out = gcd(host, state, "release", "--all-mine")
    monkeypatch.delenv("GCD_HOLD_OWNER")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("released ") == 2, out.stdout
    [left] = hold_containers(api)
    assert left["ImageID"] == three["app"]
    again = gcd(host, state, "release", "hd/spare:1")
    assert again.returncode == ExitCode.BAD_POLICY_OR_USAGE
    assert "no hold matches hd/spare:1" in again.stderr
    # Another job's hold of the same image is not this job's to end, unless it insists.
    monkeypatch.setenv("GCD_HOLD_OWNER", "job-43")
    theirs = gcd(host, state, "release", "hd/app:1")
    assert theirs.returncode == ExitCode.BAD_POLICY_OR_USAGE
    assert "hd/app:1 is held only by other owners" in theirs.stderr
    assert len(hold_containers(api)) == 1
    forced = gcd(host, state, "release", "hd/app:1", "--any-owner")
    assert forced.returncode == ExitCode.OK, forced.stderr
    assert hold_containers(api) == []


@pytest.mark.core
def test_holding_a_missing_image_is_an_error(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    load(api, image(layer(1024, "hd-present"), tags=("hd/present:1",)))
    result = gcd(
        clean_engine.host, tmp_path / "state", "hold", "hd/present:1", "hd/none:1", "--for", "1h"
    )
    assert result.returncode == ExitCode.BAD_POLICY_OR_USAGE
    assert "cannot hold hd/none:1: no such image on this engine" in result.stderr
    assert "nothing was held" in result.stderr
    assert hold_containers(api) == []
    bad = gcd(clean_engine.host, tmp_path / "state", "hold", "x", "--for", "31d")
    assert bad.returncode == ExitCode.BAD_POLICY_OR_USAGE
    assert "1s to 30d" in bad.stderr


DOCKER_GROUP = 4242
"""The group the proxy's socket belongs to, as the engine's belongs to `docker`."""
UNPRIVILEGED = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner")
"""Root without the capabilities that bypass file permissions: it can read only what its uid
and groups may (the suite's interpreter lives under /root, which no other user can read)."""


@pytest.fixture
def socket_only(clean_engine: PrivateEngine) -> Iterator[EngineProxy]:
    """A socket to the engine that only group 4242 may use, as the `docker` group does."""
    with EngineProxy(clean_engine.socket) as proxy:
        os.chown(proxy.socket, 4244, DOCKER_GROUP)
        proxy.socket.chmod(0o660)
        yield proxy


def test_holds_work_from_a_process_with_only_the_socket(
    api: docker.APIClient, three: dict[str, str], socket_only: EngineProxy, tmp_path: Path
) -> None:
    proxy = socket_only
    private = tmp_path / "state"  # another user's, mode 0700: the job cannot even look inside
    private.mkdir(mode=0o700)
    os.chown(private, 4243, 4243)

    def as_ci_job(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "gcd", "--host", proxy.host, "--state-dir", str(private)]
        return subprocess.run(
            [*UNPRIVILEGED, "--groups", str(DOCKER_GROUP), "--", *command, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "PYTHONPATH": os.getcwd()},
        )

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    planned = as_ci_job("plan", "--policy", str(policy))  # gcd itself needs its state
    assert planned.returncode == ExitCode.SOME_FAILED
    assert str(private) in planned.stderr
    held = as_ci_job("hold", "hd/app:1", "--for", "1h", "--reason", "ci")
    assert held.returncode == 0, held.stderr
    listed = as_ci_job("holds", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    [hold] = json.loads(listed.stdout)["holds"]
    assert (hold["image"], hold["reason"]) == (three["app"], "ci")
    released = as_ci_job("release", "--all-mine")
    assert released.returncode == 0, released.stderr
    assert "released gcd-hold-" in released.stdout
    assert hold_containers(api) == []
    assert {m for m, _ in proxy.requests} == {"GET", "POST", "DELETE"}  # through the socket


def _scenario(
    api: docker.APIClient, engine: Engine, host: str, commands: list[list[str]]
) -> tuple[str, bool, bool, bool]:
    """Load `hd/t:1` and `hd/other:1`, hold hd/t:1, run `commands` with the real Docker CLI:
    (first command's outcome, image still present, still tagged, hold still present)."""
    wipe(api)
    [held_id, _] = load(
        api,
        image(layer(1024, "hd-t"), tags=("hd/t:1",)),
        image(layer(1024, "hd-other"), tags=("hd/other:1",)),
    )
    place(engine, "hd/t:1", timedelta(hours=1), "table", datetime.now(UTC))
    outcome = ""
    for command in commands:
        args = [held_id if a == "{id}" else a for a in command]
        done = docker_cli(host, *args)
        outcome = outcome or ("ok" if done.returncode == 0 else done.stderr.strip())
    present = api.inspect_image(held_id) if held_id in image_ids(api) else None
    tagged = bool(present and present.get("RepoTags"))
    return outcome, present is not None, tagged, bool(hold_containers(api))


PRUNE_ALL = ["image", "prune", "-a", "-f"]
MOVE_TAG = ["tag", "hd/other:1", "hd/t:1"]
KEEP_HOLDS = ["--filter", f"label!={HOLD_LABEL}"]
PROTECTION: list[tuple[list[list[str]], tuple[bool, bool, bool]]] = [
    # (what someone else runs, (the held image is left, its tag is left, the hold is left)),
    # on Docker's graphdriver engines (20.10, 26).
    ([["image", "prune", "-f"]], (True, True, True)),
    ([PRUNE_ALL], (True, True, True)),
    # The tag moved away (a rebuild): the held image is dangling now, and still held.
    ([MOVE_TAG, ["image", "prune", "-f"]], (True, False, True)),
    ([MOVE_TAG, PRUNE_ALL], (True, False, True)),
    ([["rmi", "hd/t:1"]], (True, True, True)),
    ([["rmi", "-f", "hd/t:1"]], (False, False, True)),
    ([["rmi", "-f", "{id}"]], (False, False, True)),
    ([["container", "prune", "-f"], PRUNE_ALL], (False, False, False)),
    ([["container", "prune", "-f", *KEEP_HOLDS], PRUNE_ALL], (True, True, True)),
    ([["system", "prune", "-f"]], (True, True, False)),
    ([["system", "prune", "-f", *KEEP_HOLDS]], (True, True, True)),
    ([["system", "prune", "-a", "-f"]], (False, False, False)),
]
DIFFERENCES: dict[str, dict[int, tuple[bool, bool, bool]]] = {
    # The containerd image store keeps an image a container uses, but not its tag: `image
    # prune -a` and `rmi -f` by tag leave it dangling (a `moby-dangling@` record).
    "docker-26-containerd": {
        1: (True, False, True),
        5: (True, False, True),
        8: (True, False, True),
    },
    # Podman's force removes the image's containers too, the hold with them.
    "podman-5": {5: (False, False, False), 6: (False, False, False)},
}
"""Rows of PROTECTION that differ on other engines, by index."""


def test_what_a_hold_protects_against(
    clean_engine: PrivateEngine, api: docker.APIClient, engine: Engine
) -> None:
    """The README's table, on the real engine with the real Docker CLI."""
    differences = DIFFERENCES.get(clean_engine.name, {})
    expected = [differences.get(i, left) for i, (_, left) in enumerate(PROTECTION)]
    found = []
    for commands, _ in PROTECTION:
        outcome, *left = _scenario(api, engine, clean_engine.host, commands)
        found.append(tuple(left))
        if commands == [["rmi", "hd/t:1"]]:
            assert outcome.startswith("Error response from daemon:")  # a 409, worded per engine
            assert "is using its referenced image" in outcome or "in use" in outcome
    assert found == expected
