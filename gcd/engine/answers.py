"""The engine's JSON answers, checked at the edge before anything reads them.

Each endpoint gcd reads has a shape here: the fields gcd uses, with the types the code that
reads them relies on (everything else passes through unchecked, so a newer engine's extra
fields never matter). An answer of another shape — `{"message": "x"}` where a list belongs,
`null`, an entry without `Id`, `Size: "big"` — is an `EngineError` naming the endpoint and
what was wrong ("GET /images/json: entry 3: Id: field required"), never a KeyError or
TypeError deep in the snapshot: gcd does not act on an answer it cannot read, so nothing is
removed on its strength.

The checked answer is returned as it came (not a converted copy): the readers downstream
keep their own tolerant parsing of optional fields.
"""

from __future__ import annotations

from typing import Any, Required

from pydantic import ConfigDict, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from gcd.errors import EngineError

__all__ = ["Shape", "check", "describe"]

_OPEN = ConfigDict(extra="allow")
Labels = dict[str, str] | None


class _Image(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    Id: Required[str]
    ParentId: str | None
    Size: int | None
    RepoTags: list[str] | None
    RepoDigests: list[str] | None
    Created: int | str | None
    Labels: Labels


class _Container(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    Id: Required[str]
    Names: list[str] | None
    Image: str | None
    ImageID: str | None
    State: str | dict[str, Any] | None
    Labels: Labels
    Created: int | str | None
    Mounts: list[dict[str, Any]] | None
    NetworkSettings: dict[str, Any] | None
    SizeRw: int | None


class _ContainerDetails(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    Id: str
    Image: str | None
    State: dict[str, Any] | None
    HostConfig: dict[str, Any] | None
    Mounts: list[dict[str, Any]] | None
    NetworkSettings: dict[str, Any] | None


class _ImageDetails(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    Id: str
    RepoTags: list[str] | None
    Metadata: dict[str, Any] | None
    RootFS: dict[str, Any] | None


class _HistoryEntry(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    Size: int | None


class _Info(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    ID: str | None
    Driver: str | None
    DockerRootDir: str | None
    DriverStatus: list[list[str]] | None


class _Version(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    ApiVersion: str | None
    Components: list[dict[str, Any]] | None


class _Volume(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    Name: Required[str]
    Driver: str | None
    Labels: Labels
    Options: Labels
    CreatedAt: str | None


class _Volumes(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    Volumes: list[_Volume] | None


class _Network(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    Id: Required[str]
    Name: str | None
    Driver: str | None
    Scope: str | None
    Labels: Labels
    Created: str | None
    Containers: dict[str, dict[str, Any]] | None


class _BuildRecord(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    ID: Required[str]
    Parents: list[str] | None
    Parent: str | None
    Type: str | None
    Description: str | None
    Size: int | None
    CreatedAt: str | None
    LastUsedAt: str | None
    UsageCount: int | None


class _DfContainer(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    Id: Required[str]
    SizeRw: int | None


class _DfVolume(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    Name: Required[str]
    UsageData: dict[str, Any] | None


class _DiskUsage(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    Containers: list[_DfContainer] | None
    Volumes: list[_DfVolume] | None
    BuildCache: list[_BuildRecord] | None
    Images: list[dict[str, Any]] | None
    LayersSize: int | None


class _Deleted(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    Untagged: str
    Deleted: str


class _Pruned(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    CachesDeleted: list[str] | None
    SpaceReclaimed: int | None


class _Event(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    Type: str | None
    Action: str | None
    Actor: dict[str, Any] | None
    id: str | None
    time: int | None
    timeNano: int | None


class _Created(TypedDict, total=False):
    __pydantic_config__ = _OPEN  # type: ignore[misc]
    Id: Required[str]
    Warnings: list[str] | None


class Shape:
    """One TypeAdapter per answer shape, built once at import."""

    IMAGES: TypeAdapter[Any] = TypeAdapter(list[_Image])
    IMAGE: TypeAdapter[Any] = TypeAdapter(_ImageDetails)
    HISTORY: TypeAdapter[Any] = TypeAdapter(list[_HistoryEntry])
    CONTAINERS: TypeAdapter[Any] = TypeAdapter(list[_Container])
    CONTAINER: TypeAdapter[Any] = TypeAdapter(_ContainerDetails)
    INFO: TypeAdapter[Any] = TypeAdapter(_Info)
    VERSION: TypeAdapter[Any] = TypeAdapter(_Version)
    VOLUMES: TypeAdapter[Any] = TypeAdapter(_Volumes)
    VOLUME: TypeAdapter[Any] = TypeAdapter(_Volume)
    NETWORKS: TypeAdapter[Any] = TypeAdapter(list[_Network])
    NETWORK: TypeAdapter[Any] = TypeAdapter(_Network)
    DISK_USAGE: TypeAdapter[Any] = TypeAdapter(_DiskUsage)
    DELETED: TypeAdapter[Any] = TypeAdapter(list[_Deleted] | None)
    PRUNED: TypeAdapter[Any] = TypeAdapter(_Pruned | None)
    EVENT: TypeAdapter[Any] = TypeAdapter(_Event)
    CREATED: TypeAdapter[Any] = TypeAdapter(_Created)


_MAX_QUOTED = 60
_BRANCHES = frozenset({"int", "str", "bool", "list", "dict", "none", "nullable", "typed-dict"})
"""Names pydantic gives the branches of a union in an error's location: not fields."""


def _quote(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_QUOTED else text[:_MAX_QUOTED] + "…"


def _where(loc: tuple[int | str, ...]) -> str:
    """pydantic's location → "entry 3: Size" (entries counted from 1, as people count);
    union branches (`list[...]`, `none`) are pydantic's own words and dropped."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"entry {item + 1}")
        elif "[" in item or item in _BRANCHES:
            continue
        else:
            parts.append(item)
    return ": ".join(parts)


def describe(exc: ValidationError) -> str:
    """The first problem of a validation error, in words (the first is enough to act on)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = _where(tuple(first["loc"]))
    problem = str(first["msg"]).lower()
    if first["type"] == "missing":
        text = f"{where}: missing"
    elif not where:
        text = f"{problem}, got {_quote(first.get('input'))}"
    else:
        text = f"{where}: {problem}, got {_quote(first.get('input'))}"
    more = len(errors) - 1
    return text + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def check(endpoint: str, shape: TypeAdapter[Any], answer: Any) -> Any:
    """`answer` itself if it has `shape`, else an `EngineError` saying which endpoint gave
    what. The message ends with what to do: the engine (or something in front of it) is not
    speaking the Engine API."""
    try:
        shape.validate_python(answer)
    except ValidationError as exc:
        raise EngineError(
            f"{endpoint}: the engine's answer is not what the Engine API documents: "
            f"{describe(exc)}. gcd acts on nothing it cannot read; check the engine "
            "(docker version, its log) and any proxy in front of its socket"
        ) from None
    return answer
