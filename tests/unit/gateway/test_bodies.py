"""Requests with a body (API FICOBA's searches) through the real gateway app: the control
chain runs before the body is read, the body is read within the operation's limit as it
streams in, and whatever is not a JSON document in the operation's media type is refused
before any handler sees it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.types import Message

from guichet.catalog.products import FICOBA_MAX_BODY_BYTES
from guichet.habilitation.models import Environment
from tests.conftest import BACKENDS
from tests.support.factories import Partner
from tests.unit.apis.ficoba.support import BASE, call, error_of, ficoba_partner, open_now
from tests.unit.gateway.support import World, at_the_edge, open_world

SPI_SEARCH = {"criteresRecherche": {"numeroSPI": "3000000001250"}}


@pytest.fixture(scope="module", params=BACKENDS)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    postgres = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    with open_world(request.param, tmp_path_factory.mktemp("bodies"), postgres) as world:
        yield world


@pytest.fixture
def world(shared: World) -> Iterator[World]:
    with shared.scoped():
        open_now(shared)
        yield shared


@pytest.fixture(scope="module")
def partner(shared: World) -> Partner:
    return ficoba_partner(shared)


def test_the_chain_runs_before_the_body_is_read(world: World, partner: Partner) -> None:
    """Without a certificate, a malformed body is never looked at: 401, not 400."""
    r = call(world, "/comptes/spi", partner=None, content=b"{not json")
    error_of(r, 401, "certificate_missing")
    record = world.record(r.headers["x-correlation-id"])
    assert record["outcome"] == "certificate_missing"


def stream(
    world: World, partner: Partner, chunks: list[bytes], headers: dict[str, str]
) -> tuple[int, dict[str, Any], int]:
    """POST ``chunks`` without a Content-Length: (status, body, chunks the app read)."""
    token = world.token(partner)
    read = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal read
        if read >= len(chunks):
            return {"type": "http.disconnect"}
        read += 1
        return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    raw = {
        "authorization": f"Bearer {token}",
        "x-correlation-id": str(uuid.uuid4()),
        "x-request-id": "flux",
        **{k.lower(): v for k, v in headers.items()},
    }
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": BASE + "/comptes/spi",
        "raw_path": (BASE + "/comptes/spi").encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in raw.items()],
        "server": ("127.0.0.1", 8443),
    }
    app = at_the_edge(world.apps[Environment.SANDBOX], "127.0.0.1", partner.cert_pem)

    async def run() -> None:
        await app(scope, receive, send)

    world.loop.run(run())
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), read


def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit(
    world: World, partner: Partner
) -> None:
    chunk = b" " * 4096
    chunks = [chunk] * (2 * FICOBA_MAX_BODY_BYTES // len(chunk))
    status, body, read = stream(world, partner, chunks, {"Content-Type": "application/json"})
    assert (status, body["code"]) == (413, "payload_too_large")
    assert read == FICOBA_MAX_BODY_BYTES // len(chunk) + 1  # not one chunk more


def test_a_streamed_json_document_is_read_whole(world: World, partner: Partner) -> None:
    document = json.dumps(SPI_SEARCH).encode()
    chunks = [document[i : i + 7] for i in range(0, len(document), 7)]
    status, body, _ = stream(world, partner, chunks, {"Content-Type": "application/json"})
    assert status == 200
    assert body["nombreReponses"] == "1"


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (json.dumps(SPI_SEARCH).encode(), "application/json; charset=iso-8859-1", 415, None),
        (json.dumps(SPI_SEARCH).encode(), "text/plain", 415, None),
        (json.dumps(SPI_SEARCH).encode(), None, 415, None),
        (b"", "application/json", 400, "body_invalid"),
        (b'{"criteresRecherche": NaN}', "application/json", 400, "body_invalid"),
        (b"[" * 5000 + b"]" * 5000, "application/json", 400, "body_invalid"),
        ('{"motif": "é"}'.encode("latin-1"), "application/json", 400, "body_invalid"),
    ],
)
def test_what_is_not_a_json_document_is_refused(
    world: World,
    partner: Partner,
    content: bytes,
    content_type: str | None,
    status: int,
    code: str | None,
) -> None:
    r = call(world, "/comptes/spi", partner=partner, content=content, content_type=content_type)
    error_of(r, status, code or "unsupported_media_type")


def test_a_json_document_in_upper_case_media_type_is_accepted(
    world: World, partner: Partner
) -> None:
    r = call(
        world,
        "/comptes/spi",
        SPI_SEARCH,
        partner=partner,
        content_type="Application/JSON; charset=UTF-8",
    )
    assert r.status_code == 200, r.text


def test_post_on_a_read_is_still_a_405_problem(world: World) -> None:
    """The other APIs keep their problem+json and their Allow."""
    assert world.default is not None
    r = world.get(
        "/r2p/v1/personne/3000000001250",
        token=world.token(world.default),
        cert=world.default.cert_pem,
        method="POST",
    )
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"
    assert r.headers["content-type"].startswith("application/problem+json")
