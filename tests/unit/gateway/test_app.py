"""The gateway app around the chain: correlation ids, routing, maintenance, quotas, and the
fail-closed paths (an operation that crashes, a journal that cannot be written)."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from starlette.requests import Request

from guichet.apis.context import ApiResponse, CallContext, OperationHandler
from guichet.habilitation.models import Environment
from guichet.journal.service import export
from tests.conftest import BACKENDS
from tests.support.factories import Partner
from tests.unit.gateway.support import (
    IR_MEDIA,
    OTHER_PERSONA,
    PERSONA,
    World,
    ir_path,
    open_world,
    refused,
    served,
)

SECRET_DETAIL = f"secret detail {PERSONA}"


@pytest.fixture(scope="module", params=BACKENDS)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    postgres = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    with open_world(request.param, tmp_path_factory.mktemp("app"), postgres) as world:
        yield world


@pytest.fixture
def world(shared: World) -> Iterator[World]:
    """The module's world, put back as it was: clock at its start, extra platforms stopped."""
    with shared.scoped():
        yield shared


@pytest.fixture
def partner(world: World) -> Partner:
    return world.partner()


def n1(world: World, spi: str = PERSONA) -> str:
    return ir_path(world.year - 1, spi)


def ratelimit(value: str) -> dict[str, int]:
    """``"minute";r=1;t=60`` → ``{"r": 1, "t": 60}`` (one RFC 9651 list item)."""
    name, *params = value.split(";")
    assert name == '"minute"'
    return {k: int(v) for k, v in (p.split("=") for p in params)}


# --- a served call ------------------------------------------------------------------------


def test_a_served_call_echoes_the_id_and_journals_a_pseudonym(
    world: World, partner: Partner
) -> None:
    r = world.get(n1(world), token=world.token(partner), cert=partner.cert_pem)

    record = served(world, r, partner)
    assert r.headers["content-type"].startswith(IR_MEDIA)
    assert r.headers["cache-control"] == "no-store"
    assert "rfr" in r.json()
    assert record["subject"] == world.master.pseudonym(PERSONA)
    assert record["operation"] == "GET ir_assiettes_spi"
    assert record["api"] == "impot_particulier"
    assert record["source_ip"] == "127.0.0.1"


# --- correlation id, routing --------------------------------------------------------------


@pytest.mark.parametrize("sent", [None, "", "abc", "1234", "6f1c2b9e-0d4a-4b7e-9a51-3c8e2f7d1a60x"])
def test_a_missing_or_invalid_correlation_id_gets_a_generated_one(
    world: World, sent: str | None
) -> None:
    partner = world.default
    assert partner is not None
    headers = {} if sent is None else {"X-Correlation-ID": sent}
    token = world.token(partner)

    r = world.request(
        "GET",
        n1(world),
        cert=partner.cert_pem,
        headers={"Authorization": f"Bearer {token}", **headers},
    )

    record = refused(world, r, 400, "correlation_id_invalid")
    generated = r.headers["x-correlation-id"]
    assert str(uuid.UUID(generated)) == generated
    assert generated != sent
    assert r.json()["field"] == "X-Correlation-ID"
    assert record["correlation_id"] == generated


def test_a_post_on_an_api_path_is_refused_with_405(world: World, partner: Partner) -> None:
    r = world.get(n1(world), token=world.token(partner), cert=partner.cert_pem, method="POST")

    record = refused(world, r, 405, "method_not_allowed")
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
    assert record["operation"] == "POST ir_assiettes_spi"


@pytest.mark.parametrize(
    "path", ["/impotparticulier/1.0/nowhere", "/impotparticulier/2.0/spi/x", "/admin"]
)
def test_an_unknown_path_is_journaled_as_route_not_found(world: World, path: str) -> None:
    partner = world.default
    assert partner is not None

    r = world.get(path, token=world.token(partner), cert=partner.cert_pem)

    record = refused(world, r, 404, "route_not_found", api=None)
    assert record["operation"] == "GET unknown"


def test_maintenance_answers_503_with_retry_after(world: World, partner: Partner) -> None:
    app = world.new_platform(maintenance=True, maintenance_retry_after=120).gateway_app(
        Environment.SANDBOX
    )

    r = world.get(n1(world), token=world.token(partner), cert=partner.cert_pem, app=app)

    refused(world, r, 503, "maintenance")
    assert r.headers["retry-after"] == "120"


# --- quota --------------------------------------------------------------------------------


def test_the_quota_admits_its_limit_then_answers_429(world: World) -> None:
    partner = world.partner(quotas={"impot_particulier": 2})
    token = world.token(partner)

    calls = [world.get(n1(world), token=token, cert=partner.cert_pem) for _ in range(3)]

    for r in calls[:2]:
        served(world, r, partner)
        assert ratelimit(r.headers["ratelimit-policy"]) == {"q": 2, "w": 60}
    assert [ratelimit(r.headers["ratelimit"])["r"] for r in calls[:2]] == [1, 0]
    refused(world, calls[2], 429, "quota_exceeded", spi=PERSONA)
    # The window is counted a second long (docs/architecture.md, issue 13).
    assert 1 <= int(calls[2].headers["retry-after"]) <= 61
    assert ratelimit(calls[2].headers["ratelimit"])["r"] == 0


# --- fail closed --------------------------------------------------------------------------


class Exploding:
    """The real operation, whose backend read fails in an unforeseen way."""

    def __init__(self, inner: OperationHandler) -> None:
        self.inner = inner

    def parse(self, request: Request, body: Any) -> Any:
        return self.inner.parse(request, body)

    def authorize(self, ctx: CallContext, params: Any) -> None:
        self.inner.authorize(ctx, params)

    async def fetch(self, ctx: CallContext, params: Any) -> ApiResponse:
        await self.inner.fetch(ctx, params)  # data in hand, scopes noted: then it breaks
        raise RuntimeError(SECRET_DETAIL)


@pytest.fixture
def exploding(world: World) -> Any:
    platform = world.new_platform()
    platform.operations["ir_assiettes_spi"] = Exploding(platform.operations["ir_assiettes_spi"])
    return platform.gateway_app(Environment.SANDBOX)


def test_an_unexpected_exception_is_a_bare_500(
    world: World, partner: Partner, exploding: Any
) -> None:
    r = world.get(
        n1(world, OTHER_PERSONA), token=world.token(partner), cert=partner.cert_pem, app=exploding
    )

    refused(world, r, 500, "internal_error", spi=OTHER_PERSONA)
    for leak in ("secret detail", PERSONA, "RuntimeError", "Traceback", "rfr", ".py"):
        assert leak not in r.text


def test_an_unexpected_exception_leaves_no_personal_data_in_the_logs(
    world: World, partner: Partner, exploding: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    r = world.get(
        n1(world, OTHER_PERSONA), token=world.token(partner), cert=partner.cert_pem, app=exploding
    )

    assert r.status_code == 500
    assert "gateway.internal_error" in caplog.text
    assert PERSONA not in caplog.text


def _nothing_leaves(world: World, r: Any) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == "journal_unavailable"
    assert body["correlationId"] == r.headers["x-correlation-id"]
    assert r.headers["x-correlation-id"] == r.request.headers["x-correlation-id"]
    assert "rfr" not in r.text
    assert "ratelimit" not in r.headers


def test_a_stopped_journal_writer_fails_closed(world: World, partner: Partner) -> None:
    platform = world.new_platform()
    world.loop.run(platform.journal.close())
    app = platform.gateway_app(Environment.SANDBOX)

    r = world.get(n1(world), token=world.token(partner), cert=partner.cert_pem, app=app)

    _nothing_leaves(world, r)
    assert world.journal(r.headers["x-correlation-id"]) == []


def test_a_journal_that_cannot_be_written_fails_closed(world: World, partner: Partner) -> None:
    token = world.token(partner)
    engine = world.runtime.engine
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE journal_record RENAME TO journal_record_away"))
    try:
        served_call = world.get(n1(world), token=token, cert=partner.cert_pem)
        refusal = world.get(n1(world), token=None, cert=partner.cert_pem)
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE journal_record_away RENAME TO journal_record"))

    _nothing_leaves(world, served_call)
    _nothing_leaves(world, refusal)  # a refusal is not answered unjournaled either
    for r in (served_call, refusal):
        assert world.journal(r.headers["x-correlation-id"]) == []
    after = world.get(n1(world), token=token, cert=partner.cert_pem)
    served(world, after, partner)


# --- the journal as an investigation reads it ---------------------------------------------


def test_a_persons_exchanges_are_found_by_pseudonym_and_no_spi_is_stored(
    world: World, partner: Partner
) -> None:
    token = world.token(partner)
    no_n1 = "3000000006255"  # persona without an N-1 situation
    calls = {
        "ok": world.get(n1(world), token=token, cert=partner.cert_pem),
        "year_not_granted": world.get(ir_path(world.year - 3), token=token, cert=partner.cert_pem),
        "not_found": world.get(n1(world, no_n1), token=token, cert=partner.cert_pem),
        "spi_invalid": world.get(n1(world, "1234567890123"), token=token, cert=partner.cert_pem),
    }
    served(world, calls["ok"], partner)
    refused(world, calls["year_not_granted"], 403, "year_not_granted", spi=PERSONA)
    refused(world, calls["not_found"], 404, "not_found", spi=no_n1)
    assert refused(world, calls["spi_invalid"], 400, "spi_invalid")["subject"] is None

    out = io.StringIO()
    export(world.runtime.session_factory, out, subject=world.master.pseudonym(PERSONA))
    found = {
        json.loads(line)["correlation_id"]: json.loads(line) for line in out.getvalue().splitlines()
    }
    for outcome in ("ok", "year_not_granted"):
        assert found[calls[outcome].headers["x-correlation-id"]]["outcome"] == outcome
    assert calls["not_found"].headers["x-correlation-id"] not in found

    everything = io.StringIO()
    assert export(world.runtime.session_factory, everything) >= len(calls)
    for spi in (PERSONA, OTHER_PERSONA, no_n1):
        assert spi not in everything.getvalue()
