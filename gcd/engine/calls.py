"""How `Engine` sends a request and reads its answer, in one place: each request bounded by
its kind's timeout (`timeouts.py`) and counted against the give-up rule (`transport.py`);
every docker and requests exception translated into gcd's own outcomes and errors
(`engine-facts.md` §1.1 for the status codes per engine version); every answer checked
against its shape (`answers.py`) before anything reads it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import docker
import docker.errors
import requests.exceptions
import structlog
from pydantic import TypeAdapter

from gcd.engine.answers import Shape, check
from gcd.engine.api import RemoveResult, RemoveStatus, refused
from gcd.engine.timeouts import Timeouts, Wait
from gcd.engine.transport import Strikes, describe_error, is_no_answer, waiting
from gcd.errors import (
    EngineDownError,
    EngineError,
    EngineNoAnswerError,
    EngineUnreachableError,
)

__all__ = ["CheckedEvents", "EngineCalls", "answer_of", "unreachable"]

log = structlog.get_logger("gcd.engine")

LISTINGS = frozenset(
    {"GET /images/json", "GET /containers/json", "GET /volumes", "GET /networks", "GET /system/df"}
)
"""The requests that list a kind (their strike keys): a 404 from one is a race, retried."""
LISTING_RETRIES = 3
LISTING_BACKOFF_SECONDS = 0.1
"""Waits of 0.1, 0.3 and 0.9 s between the tries."""


def answer_of(body: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`DELETE /images/{name}`'s body (checked): (`Untagged` references, `Deleted` ids)."""
    items = body if isinstance(body, list) else []
    untagged = tuple(str(i["Untagged"]) for i in items if isinstance(i, dict) and i.get("Untagged"))
    deleted = tuple(str(i["Deleted"]) for i in items if isinstance(i, dict) and i.get("Deleted"))
    return untagged, deleted


def unreachable(host: str, exc: BaseException) -> EngineUnreachableError:
    return EngineUnreachableError(
        f"cannot reach the Docker engine at {host}: {describe_error(exc)}. Is dockerd running, "
        "and may this user open its socket? Set --host or DOCKER_HOST to choose another engine"
    )


class EngineCalls:
    """The request plumbing under `Engine`: `_send` one bounded request, counting strikes;
    `_call` a read, its failures made gcd's errors and its answer checked; `_removal` a
    modifying request, classified into a `RemoveResult`. The subclass provides `client`."""

    host: str
    timeouts: Timeouts
    _strikes: Strikes

    @property
    def client(self) -> docker.APIClient:
        raise NotImplementedError

    def _send(self, kind: str, wait: Wait, request: Callable[[], Any]) -> Any:
        """One request of `kind` (its strike key, `DELETE /images/{id}`), bounded by `wait`.
        A timed-out one raises `EngineNoAnswerError` (or `EngineDownError` at the limit), and
        so does a removal whose connection was lost after it was sent (the kind re-inspects);
        a refused connection, or a read's lost one (dockerd stopped under it), raises
        `EngineUnreachableError`, which ends a run at once. The SDK's own errors pass
        through."""
        self._strikes.check()
        _ = self.client
        bound = self.timeouts.seconds(wait)
        try:
            with waiting(bound):
                result = request()
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as exc:
            timed_out = isinstance(exc, requests.exceptions.Timeout)
            modifying = wait in (Wait.REMOVE, Wait.PRUNE)
            if not is_no_answer(exc) or not (timed_out or modifying):
                raise unreachable(self.host, exc) from exc
            raise self._strikes.missed(kind, exc, bound[1]) from exc
        except docker.errors.APIError:
            self._strikes.answered(kind)
            raise
        self._strikes.answered(kind)
        return result

    def _call(
        self,
        kind: str,
        wait: Wait,
        shape: TypeAdapter[Any] | None,
        request: Callable[[], Any],
        what: str | None = None,
    ) -> Any:
        """`_send`, with every other failure an `EngineError` saying what failed, and the
        answer checked against `shape`. `what` names the request in messages (with its id)."""
        what = what or kind
        try:
            answer = self._send_listing(kind, wait, request)
        except docker.errors.APIError as exc:  # before RequestException: it is one
            raise EngineError(f"{what} failed: {describe_error(exc.explanation or exc)}") from exc
        except requests.exceptions.RequestException as exc:
            # A truncated body, invalid JSON (requests' JSONDecodeError), a broken chunk.
            raise EngineError(
                f"{what}: the engine's answer could not be read: {describe_error(exc)}. "
                "Check the engine's log and any proxy in front of its socket"
            ) from exc
        except docker.errors.DockerException as exc:
            raise unreachable(self.host, exc) from exc
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # The SDK reading an answer of the wrong shape itself (never seen from dockerd).
            raise EngineError(f"{what}: the engine's answer could not be read: {exc!r}") from exc
        return answer if shape is None else check(what, shape, answer)

    def _send_listing(self, kind: str, wait: Wait, request: Callable[[], Any]) -> Any:
        """`_send`; a listing that answers 404 is sent again, up to `LISTING_RETRIES` times.
        A list has nothing to be missing, but the containerd image store answers
        `GET /images/json` with 404 "content digest …: not found" when an image goes while
        it lists (seen beside a daemon's cycle): a race with another client, over in
        milliseconds, not an engine gcd cannot use."""
        for attempt in range(LISTING_RETRIES + 1):
            try:
                return self._send(kind, wait, request)
            except docker.errors.NotFound as exc:
                if kind not in LISTINGS or attempt == LISTING_RETRIES:
                    raise
                log.warning(
                    "engine_listing_retried",
                    request=kind,
                    attempt=attempt + 1,
                    error=describe_error(exc.explanation or exc),
                )
                time.sleep(LISTING_BACKOFF_SECONDS * 3**attempt)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _call_or_none(
        self, kind: str, what: str, shape: TypeAdapter[Any], method: Callable[[], Any]
    ) -> Any:
        """`_call` of a read, with None for a 404: the object does not (or no longer) exist."""
        try:
            return self._call(kind, Wait.READ, shape, method, what)
        except EngineError as exc:
            if isinstance(exc.__cause__, docker.errors.NotFound):
                return None
            raise

    def _removal(
        self,
        kind: str,
        request: Callable[[], Any],
        *,
        shape: TypeAdapter[Any] | None = None,
        wait: Wait = Wait.REMOVE,
    ) -> RemoveResult:
        """A modifying request, classified. A request without an answer — timed out, or its
        connection lost after it was sent — is `TIMEOUT` or `CONNECTION_LOST`, for the kind
        to re-inspect (the engine may have carried it out); an unreadable answer is a
        `SERVER_ERROR`, re-inspected too. Only a refused connection, or gcd giving up on the
        engine (`EngineDownError`), raises."""
        try:
            body = self._send(kind, wait, request)
        except EngineDownError:
            raise
        except EngineNoAnswerError as exc:
            status = RemoveStatus.TIMEOUT if exc.timed_out else RemoveStatus.CONNECTION_LOST
            return RemoveResult(status, str(exc))
        except docker.errors.NotFound as exc:
            return RemoveResult(RemoveStatus.NOT_FOUND, describe_error(exc.explanation or exc))
        except docker.errors.APIError as exc:
            return refused(exc.status_code or 0, describe_error(exc.explanation or exc))
        except requests.exceptions.RequestException as exc:
            return RemoveResult(
                RemoveStatus.SERVER_ERROR,
                f"{kind}: the engine's answer could not be read: {describe_error(exc)}",
            )
        except docker.errors.DockerException as exc:
            raise unreachable(self.host, exc) from exc
        except EngineError as exc:  # an answer of the wrong shape, checked inside `request`
            return RemoveResult(RemoveStatus.SERVER_ERROR, str(exc))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return RemoveResult(RemoveStatus.SERVER_ERROR, f"{kind}: unreadable answer: {exc!r}")
        if shape is not None:
            try:
                check(kind, shape, body)
            except EngineError as exc:
                return RemoveResult(RemoveStatus.SERVER_ERROR, str(exc))
        untagged, deleted = answer_of(body) if shape is not None else ((), ())
        return RemoveResult(RemoveStatus.REMOVED, untagged=untagged, deleted=deleted)


class CheckedEvents:
    """The event stream, each event checked (`EngineError` for one of another shape, after
    which the watcher reconnects). `close` closes the HTTP response under it, which also ends
    a read blocked in another thread (`UsageTracker.stop`)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._events = iter(stream)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        try:
            event = next(self._events)
        except (requests.exceptions.RequestException, ValueError) as exc:
            raise EngineError(f"GET /events: the stream broke: {describe_error(exc)}") from exc
        checked: dict[str, Any] = check("GET /events", Shape.EVENT, event)
        return checked

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()
