"""The gateway's dispatcher answers exactly as Starlette's router, and record ids stay unique."""

from __future__ import annotations

import threading
import uuid

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, Router
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from guichet.gateway.app import _Dispatcher, _RecordIds


def _endpoint(name: str) -> object:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(f"{name} {dict(request.path_params)}")

    return endpoint


async def _fallback(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse(f"fallback {scope['path']}", status_code=404)(scope, receive, send)


def _routes(*, parameter_first: bool = False) -> list[Route]:
    routes = [
        Route("/healthz", _endpoint("health"), methods=["GET"]),
        Route("/token", _endpoint("token"), methods=["POST"]),
        Route("/api/1.0/a/{spi}/x", _endpoint("ax")),
        # Same first segment: order decides between the two that both match.
        Route("/api/1.0/{kind}/{spi}/x", _endpoint("any-x")),
        Route("/api/1.0/b/{spi}", _endpoint("b"), methods=["GET"]),
        Route("/api/1.0/b/{spi}", _endpoint("b-post"), methods=["POST"]),
        Route("/other/", _endpoint("other")),
    ]
    if parameter_first:
        routes.insert(0, Route("/{anything}/1.0/a/{spi}/x", _endpoint("shadow")))
    return routes


PROBES = [
    ("GET", "/healthz"),
    ("POST", "/healthz"),  # 405 from the route
    ("POST", "/token"),
    ("GET", "/token"),
    ("GET", "/api/1.0/a/123/x"),  # the first of two matching routes
    ("GET", "/api/1.0/c/123/x"),
    ("GET", "/api/1.0/b/123"),
    ("POST", "/api/1.0/b/123"),  # a later route, the earlier one only partial
    ("PUT", "/api/1.0/b/123"),  # 405
    ("GET", "/api/1.0/nothing"),  # default
    ("GET", "/other"),  # redirect to the slash
    ("GET", "/"),
    ("GET", "/unknown/segment"),
]


@pytest.mark.parametrize("parameter_first", [False, True])
def test_answers_as_the_router_does(parameter_first: bool) -> None:
    plain = Router(_routes(parameter_first=parameter_first), default=_fallback)
    dispatched = _Dispatcher(Router(_routes(parameter_first=parameter_first), default=_fallback))
    if parameter_first:
        assert dispatched._by_segment == {}  # a parameter may match any first segment
    with (
        TestClient(plain, follow_redirects=False) as a,
        TestClient(dispatched, follow_redirects=False) as b,
    ):
        for method, path in PROBES:
            expected, got = a.request(method, path), b.request(method, path)
            assert (got.status_code, got.text, got.headers.get("location")) == (
                expected.status_code,
                expected.text,
                expected.headers.get("location"),
            ), (method, path)


def test_record_ids_are_unique_random_uuid4_across_threads() -> None:
    ids = _RecordIds()
    seen: list[uuid.UUID] = []
    lock = threading.Lock()

    def take() -> None:
        mine = [ids.next() for _ in range(2000)]
        with lock:
            seen.extend(mine)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8000
    assert len(set(seen)) == 8000  # across buffer refills and threads
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in seen)
    # Two generators (two worker processes) never share their random source.
    assert not set(seen) & {_RecordIds().next() for _ in range(1000)}
