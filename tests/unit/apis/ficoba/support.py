"""API FICOBA through the real gateway app: a partner habilitated for FICOBA, and POST calls
with a JSON body (or any body, media type and headers a test wants)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from guichet.catalog.products import FICOBA_DATA_SCOPES, PRODUCTS
from guichet.habilitation.models import Environment
from tests.support.factories import Partner
from tests.unit.gateway.support import BASE_URL, World, at_the_edge

BASE = "/fcb-masrestit/api/v2"
FICOBA_SCOPES = tuple(sorted(PRODUCTS["ficoba"].resource_scopes))
PARIS = ZoneInfo("Europe/Paris")
CLOSED_HOUR = 3  # the setting's default


def ficoba_partner(world: World, **options: Any) -> Partner:
    values: dict[str, Any] = {
        "apis": ("ficoba",),
        "scopes": FICOBA_SCOPES,
        "data_scopes": tuple(sorted(FICOBA_DATA_SCOPES)),
        "access_modes": (),
        "year_scopes": (),
        **options,
    }
    return world.partner(**values)


def open_now(world: World) -> None:
    """The world's clock out of API FICOBA's closed hour (the next hour if it is in it)."""
    now = world.clock.now()
    if now.astimezone(PARIS).hour == CLOSED_HOUR:
        world.clock.set(now + dt.timedelta(hours=1))


def closed_now(world: World) -> dt.datetime:
    """The world's clock moved to the next 03:20 in Paris (within a day of its start)."""
    now = world.clock.now().astimezone(PARIS)
    target = now.replace(hour=CLOSED_HOUR, minute=20, second=0, microsecond=0)
    if target <= now:
        target = (target + dt.timedelta(days=1)).replace(hour=CLOSED_HOUR, minute=20)
    moment = target.astimezone(dt.UTC)
    world.clock.set(moment)
    return moment


def call(
    world: World,
    path: str,
    body: Any = None,
    *,
    partner: Partner | None,
    token: str | None = None,
    method: str = "POST",
    content: bytes | None = None,
    content_type: str | None = "application/json",
    headers: Mapping[str, str] | None = None,
    request_id: str | None = "demande-0001",
) -> httpx.Response:
    """A FICOBA call with fresh X-Correlation-ID and the given X-Request-ID; ``body`` as
    JSON unless ``content`` gives the raw bytes."""
    h: dict[str, str] = {"X-Correlation-ID": str(uuid.uuid4())}
    if request_id is not None:
        h["X-Request-ID"] = request_id
    if partner is not None:
        h["Authorization"] = f"Bearer {token or world.token(partner)}"
    if content_type is not None:
        h["Content-Type"] = content_type
    h.update(headers or {})
    if content is None and body is not None:
        content = json.dumps(body).encode()
    cert = partner.cert_pem if partner is not None else None
    target = at_the_edge(world.apps[Environment.SANDBOX], "127.0.0.1", cert)

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=target)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            return await client.request(method, BASE + path, headers=h, content=content)

    return world.loop.run(send())


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The provider's ``ReponseErreur`` (plus guichet's correlationId and champ)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert set(body) <= {"code", "message", "horodatage", "correlationId", "champ"}, body
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert dt.datetime.fromisoformat(body["horodatage"]).tzinfo is not None
    assert body["correlationId"] == response.headers["x-correlation-id"]
    return body
