"""Engine answers of the wrong shape are an `EngineError` naming the endpoint and the problem,
checked at the edge; answers of the right shape pass as they came."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from gcd.engine.answers import Shape, check
from gcd.errors import EngineError

GOOD: list[tuple[TypeAdapter[Any], Any]] = [
    (Shape.IMAGES, [{"Id": "sha256:a", "Size": 1, "RepoTags": None, "Labels": None, "X": [1]}]),
    (Shape.IMAGES, []),
    (Shape.CONTAINERS, [{"Id": "c", "Names": ["/c"], "State": "running", "Mounts": []}]),
    (Shape.INFO, {"ID": "x", "Driver": "overlay2", "DriverStatus": [["a", "b"]]}),
    (Shape.VERSION, {"ApiVersion": "1.45", "Components": [{"Name": "Engine"}]}),
    (Shape.VOLUMES, {"Volumes": None, "Warnings": None}),
    (Shape.VOLUMES, {"Volumes": [{"Name": "v", "Labels": {"a": "b"}, "Options": None}]}),
    (Shape.NETWORKS, [{"Id": "n", "Name": "bridge", "Containers": {}}]),
    (Shape.DISK_USAGE, {"Containers": None, "Volumes": [], "BuildCache": [{"ID": "r"}]}),
    (Shape.DELETED, [{"Untagged": "a:1"}, {"Deleted": "sha256:a"}]),
    (Shape.DELETED, None),
    (Shape.PRUNED, {"CachesDeleted": None, "SpaceReclaimed": 0}),
    (Shape.EVENT, {"Type": "container", "Action": "start", "Actor": {"ID": "c"}}),
    (Shape.HISTORY, [{"Size": 0, "CreatedBy": ""}]),
    (Shape.CONTAINER, {"Id": "c", "State": {"Status": "exited"}, "HostConfig": None}),
    (Shape.IMAGE, {"Id": "sha256:a", "RootFS": {"Layers": []}, "Metadata": {}}),
]


@pytest.mark.parametrize(("shape", "answer"), GOOD)
def test_answers_of_the_documented_shape_pass_unchanged(
    shape: TypeAdapter[Any], answer: Any
) -> None:
    assert check("GET /x", shape, answer) is answer


BAD: list[tuple[str, TypeAdapter[Any], Any, str]] = [
    ("GET /containers/json", Shape.CONTAINERS, {"message": "x"}, "valid list"),
    ("GET /containers/json", Shape.CONTAINERS, None, "valid list"),
    ("GET /images/json", Shape.IMAGES, [{"Id": "a", "Size": "big"}], "entry 1: Size"),
    ("GET /images/json", Shape.IMAGES, [{"Id": "a"}, {"Id": "b"}, {"Size": 1}], "entry 3: Id"),
    ("GET /images/json", Shape.IMAGES, {"Id": "a"}, "valid list"),
    ("GET /images/json", Shape.IMAGES, [{"Id": "a", "Labels": ["x"]}], "Labels"),
    ("GET /info", Shape.INFO, [], "valid dictionary"),
    ("GET /images/a/json", Shape.IMAGE, [1], "valid dictionary"),
    ("GET /containers/c/json", Shape.CONTAINER, {"State": "x"}, "State"),
    ("GET /volumes", Shape.VOLUMES, {"Volumes": [{"Name": 3}]}, "Volumes: entry 1: Name"),
    ("GET /volumes", Shape.VOLUMES, [], "valid dictionary"),
    ("GET /networks", Shape.NETWORKS, [{"Name": "x"}], "entry 1: Id"),
    ("GET /system/df", Shape.DISK_USAGE, {"BuildCache": [{"Size": 1}]}, "BuildCache"),
    ("GET /system/df", Shape.DISK_USAGE, "x", "valid dictionary"),
    ("DELETE /images/{id}", Shape.DELETED, [{"Untagged": 5}], "Untagged"),
    ("POST /build/prune", Shape.PRUNED, {"SpaceReclaimed": "lots"}, "SpaceReclaimed"),
    ("GET /events", Shape.EVENT, [1], "valid dictionary"),
    ("GET /version", Shape.VERSION, {"ApiVersion": 1.45}, "ApiVersion"),
]


@pytest.mark.parametrize(("endpoint", "shape", "answer", "problem"), BAD)
def test_a_garbled_answer_is_an_engine_error_naming_endpoint_and_problem(
    endpoint: str, shape: TypeAdapter[Any], answer: Any, problem: str
) -> None:
    with pytest.raises(EngineError) as caught:
        check(endpoint, shape, answer)
    message = str(caught.value)
    assert message.startswith(f"{endpoint}: ")
    assert problem in message
    assert "check the engine" in message  # what to do
    assert caught.value.__cause__ is None  # no pydantic traceback chained to it


def test_a_long_garbled_value_is_quoted_short() -> None:
    with pytest.raises(EngineError) as caught:
        check("GET /images/json", Shape.IMAGES, [{"Id": "a", "Size": "x" * 10_000}])
    assert len(str(caught.value)) < 400


def test_the_count_of_further_problems_is_said() -> None:
    with pytest.raises(EngineError, match=r"and 2 more problems"):
        check("GET /images/json", Shape.IMAGES, [{}, {}, {}])
