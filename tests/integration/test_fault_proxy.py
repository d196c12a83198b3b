"""The fault-injecting proxy itself, on the suite's engine: each fault does what it says, can
be lifted, and event streams pass through. The reliability tests rely on it."""

from __future__ import annotations

import threading
import time

import docker
import pytest
import requests

from tests.integration.harness import PrivateEngine
from tests.integration.proxy import EngineProxy, Fault


def _listing(method: str, path: str) -> bool:
    return method == "GET" and "/containers/json" in path


def _client(proxy: EngineProxy) -> docker.APIClient:
    return docker.APIClient(base_url=proxy.host, version="1.41", timeout=10)


def test_an_injected_status_is_answered_and_the_engine_is_not_asked(
    clean_engine: PrivateEngine,
) -> None:
    with EngineProxy(clean_engine.socket) as proxy:
        client = _client(proxy)
        proxy.fault(_listing, Fault.answer(500, '{"message": "boom"}'), times=1)
        with pytest.raises(docker.errors.APIError, match="boom"):
            client.containers(all=True)
        assert client.containers(all=True) == []
        client.close()


def test_a_reset_and_a_truncated_body_break_the_request(clean_engine: PrivateEngine) -> None:
    with EngineProxy(clean_engine.socket) as proxy:
        client = _client(proxy)
        proxy.fault(_listing, Fault.reset(), times=1)
        with pytest.raises(requests.exceptions.ConnectionError):
            client.containers(all=True)
        proxy.fault(lambda m, p: "/version" in p, Fault.truncate(), times=1)
        with pytest.raises(requests.exceptions.RequestException):
            client.version(api_version=False)
        proxy.fault(_listing, Fault.garble("null"), times=1)
        assert client.containers(all=True) is None
        client.close()


def test_a_hung_request_is_forwarded_when_the_fault_is_lifted(
    clean_engine: PrivateEngine,
) -> None:
    with EngineProxy(clean_engine.socket) as proxy:
        client = _client(proxy)
        hang = proxy.fault(_listing, Fault.hang())
        answers: list[object] = []
        worker = threading.Thread(target=lambda: answers.append(client.containers(all=True)))
        started = time.monotonic()
        worker.start()
        worker.join(1.0)
        assert worker.is_alive()
        hang.lift()
        worker.join(10)
        assert answers == [[]]
        assert time.monotonic() - started >= 1.0
        client.close()


def test_an_event_stream_passes_through(clean_engine: PrivateEngine) -> None:
    with EngineProxy(clean_engine.socket) as proxy:
        client = _client(proxy)
        stream = client.events(decode=True, filters={"type": "network"})
        client.create_network("gcd-proxy-events")
        try:
            event = next(iter(stream))
            assert event["Type"] == "network"
        finally:
            stream.close()
            client.remove_network("gcd-proxy-events")
            client.close()
