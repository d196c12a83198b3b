"""First sight with the layer store out of reach (gcd.engine.first_sight) on the real engine of
the leg: the layers and bytes found with one request for most images (sizes by subtraction
from the listed `Size`) are the ones each image's own history gives, the layer database's
where there is one, and the freed bytes the engine's `LayersSize` shows. The same on hand-built
data: tests/unit/test_first_sight.py."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import pytest

from gcd.core.accounting import StorageAccount
from gcd.engine.client import Engine
from gcd.engine.layers import LayerStore, chain_ids
from gcd.engine.snapshot import take_snapshot
from gcd.engine.timeouts import Wait
from gcd.host.state import State
from tests.integration.engines import Traits
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load

pytestmark = pytest.mark.core  # the sizes' meaning differs per engine

NOW = datetime.now(UTC)


class KindCounting(Engine):
    """Counts the requests sent, by kind."""

    def __init__(self, host: str) -> None:
        super().__init__(host)
        self.kinds: Counter[str] = Counter()

    def _send(self, kind: str, wait: Wait, request: Callable[[], Any]) -> Any:
        self.kinds[kind] += 1
        return super()._send(kind, wait, request)


def by_history(api: docker.APIClient, image_id: str, *, own_bytes: bool) -> dict[str, int]:
    """An image's (layer key → bytes) from its own inspect and history alone, as gcd read
    every unseen image before the subtraction (its layers here are never empty)."""
    inspected = api.inspect_image(image_id)
    chains = chain_ids(inspected["RootFS"]["Layers"])
    sizes = [e["Size"] for e in reversed(api.history(image_id)) if e["Size"] > 0]
    assert len(sizes) == len(chains)
    units = dict(zip(chains, sizes, strict=True))
    listed = next(i["Size"] for i in api.images() if i["Id"] == image_id)
    if own_bytes and listed > sum(sizes):
        units[image_id] = listed - sum(sizes)
    return units


def test_first_sight_by_subtraction_gives_each_image_s_history_and_the_freed_bytes(
    clean_engine: PrivateEngine, api: docker.APIClient, traits: Traits, tmp_path: Path
) -> None:
    base = [layer(30_000 + 1_000 * n, f"fs-base{n}") for n in range(3)]
    specs = [image(*base, layer(2_000 + n, f"fs-own{n}"), tags=(f"fs/app:{n}",)) for n in range(5)]
    specs.append(image(*base, layer(3_000, "fs-c1"), layer(4_000, "fs-c2"), tags=("fs/two:1",)))
    specs.append(image(layer(5_000, "fs-alone"), tags=("fs/alone:1",)))
    ids = load(api, *specs)

    counting = KindCounting(clean_engine.host)
    snapshot = take_snapshot(
        counting, State.load(tmp_path / "api"), NOW, LayerStore(use_disk=False)
    )
    containerd = not traits.layer_db and not counting.podman
    expected = {i: by_history(api, i, own_bytes=not containerd) for i in ids}
    assert {i.id: dict.fromkeys(i.layers) for i in snapshot.images} == {
        i: dict.fromkeys(units) for i, units in expected.items()
    }
    assert snapshot.unit_sizes == {k: v for units in expected.values() for k, v in units.items()}
    assert counting.kinds["GET /images/{id}/json"] == len(ids)
    if traits.layer_db:
        # One history for the five on the shared base, one for the image with two layers of
        # its own; the lone one-layer image is its listed `Size`.
        assert counting.kinds["GET /images/{id}/history"] == 2
        from_disk = take_snapshot(Engine(clean_engine.host), State.load(tmp_path / "disk"), NOW)
        assert snapshot.unit_sizes == from_disk.unit_sizes
        assert {i.id: i.layers for i in snapshot.images} == {
            i.id: i.layers for i in from_disk.images
        }
    else:  # Podman's and the containerd store's `Size` is not the sum of the layers
        assert counting.kinds["GET /images/{id}/history"] == len(ids)

    gone = [i for i in snapshot.images if i.id != ids[0]]
    predicted = StorageAccount.of(snapshot).freed_by(gone)
    before = api.df()["LayersSize"]
    for image_id in ids[1:]:
        api.remove_image(image_id)
    assert before - api.df()["LayersSize"] == predicted
