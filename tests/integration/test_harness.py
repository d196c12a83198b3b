"""The harness itself: a private engine, and crafted images that load exactly as specified."""

from __future__ import annotations

from datetime import UTC, datetime

import docker
import pytest

from gcd.core.references import parse_reference
from tests.integration.engines import Traits
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, image_id, layer, load


@pytest.mark.core
def test_crafted_images_load_with_exact_dates_sizes_and_shared_layers(
    clean_engine: PrivateEngine, api: docker.APIClient, traits: Traits
) -> None:
    base = layer(10_000, "harness-base")
    one, two, dangling = load(
        api,
        image(
            base, layer(3_000, "h1"), tags=("h/one:1",), created=datetime(1970, 1, 1, tzinfo=UTC)
        ),
        image(base, tags=("h/two:1", "h/two:2"), created=datetime(1, 1, 1, tzinfo=UTC)),
        image(layer(7, "h-dangling")),
    )
    listed = {i["Id"]: i for i in api.images()}
    assert listed[one]["Created"] == 0
    if traits.year_one_listed:
        assert listed[two]["Created"] == -62135596800
    assert sorted(parse_reference(t).familiar for t in listed[two]["RepoTags"]) == [
        "h/two:1",
        "h/two:2",
    ]
    assert listed[dangling]["RepoTags"] in (None, [], ["<none>:<none>"])
    if not traits.layer_db:
        return  # sizes and ids on the other engines: test_engines.py
    assert listed[one]["Size"] == 13_000
    # The shared base layer is stored once.
    assert api.df()["LayersSize"] == 10_000 + 3_000 + 7
    # Ids come from the config alone: tags do not change them.
    year_one = datetime(1, 1, 1, tzinfo=UTC)
    assert image_id(image(base, tags=("other:1",), created=year_one)) == two
