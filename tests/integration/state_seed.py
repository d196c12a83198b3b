"""The state of the engine a test talks to, bound to the scope gcd itself will use for it (its
`GET /info` engine ID and image store, `gcd.engine.identity`), so that first sightings and
last uses a test writes are the ones gcd reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker

from gcd.engine.client import is_podman
from gcd.engine.identity import engine_scope
from gcd.host.state import Scope, State


class _Api:
    def __init__(self, api: docker.APIClient) -> None:
        self.api = api

    @property
    def podman(self) -> bool:
        return is_podman(self.api.version())

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = self.api.info()
        return info


def scope_of(api: docker.APIClient) -> Scope:
    return engine_scope(_Api(api))


def engine_state(api: docker.APIClient, state_dir: Path) -> State:
    """`State.load` of `state_dir` for the engine behind `api`."""
    return State.load(state_dir, scope_of(api))
