"""The authorization server as the platform mounts it on a gateway origin: revocation seen by
the very next API call on that worker, /token refusals in the journal, ``tls_client_auth``
validated against the gateway's own trust store, and ``X-Correlation-ID`` on every answer."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.types import ASGIApp

from guichet.habilitation.models import Environment
from guichet.pki import ensure_local_pki, issue_client_certificate
from tests.conftest import BACKENDS
from tests.support.factories import Partner, make_partner
from tests.unit.gateway.support import World, cert_thumbprint, ir_path, open_world


@pytest.fixture(scope="module", params=BACKENDS)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    postgres = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    with open_world(request.param, tmp_path_factory.mktemp("oauth-gw"), postgres) as world:
        yield world


@pytest.fixture
def world(shared: World) -> Iterator[World]:
    with shared.scoped():
        yield shared


def _n1(world: World) -> str:
    return ir_path(world.year - 1)


def _sent_id() -> dict[str, str]:
    return {"X-Correlation-ID": str(uuid.uuid4())}


def test_a_revoked_token_is_refused_on_the_very_next_call(world: World) -> None:
    partner = world.partner()
    # A platform of its own, started now: its poller first looks at the database in 5 s
    # (GUICHET_CACHE_POLL_INTERVAL), so only /revoke itself can make the next call see it.
    started = time.monotonic()
    platform = world.new_platform(cache_poll_interval=5)
    app = platform.gateway_app(Environment.SANDBOX)
    token = world.token(partner, app=app)
    assert world.get(_n1(world), token=token, cert=partner.cert_pem, app=app).status_code == 200
    r = world.request(
        "POST",
        "/revoke",
        cert=partner.cert_pem,
        app=app,
        data={"token": token},
        auth=(partner.client_id, partner.client_secret),
    )
    assert r.status_code == 200, r.text
    refused = world.get(_n1(world), token=token, cert=partner.cert_pem, app=app)
    assert time.monotonic() - started < 5, "too slow to prove anything: the poller ran"
    assert refused.status_code == 401, refused.text
    assert refused.json()["code"] == "token_revoked"
    # A new token still works: only that one was revoked.
    fresh = world.token(partner, app=app)
    assert world.get(_n1(world), token=fresh, cert=partner.cert_pem, app=app).status_code == 200


def _token_request(
    world: World,
    partner: Partner,
    *,
    secret: str | None = None,
    client_id: str | None = None,
    scope: str | None = None,
    cert: bytes | None = None,
    app: ASGIApp | None = None,
) -> tuple[dict[str, str], object]:
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    sent = _sent_id()
    r = world.request(
        "POST",
        "/token",
        cert=partner.cert_pem if cert is None else cert,
        app=app,
        headers=sent,
        data=data,
        auth=(client_id or partner.client_id, secret or partner.client_secret),
    )
    assert r.headers["x-correlation-id"] == sent["X-Correlation-ID"]
    return sent, r


def test_refusals_at_token_are_journaled(world: World) -> None:
    partner = world.partner()
    cases = [
        ({"secret": "wrong"}, 401, "invalid_client", True),
        ({"scope": "RessourceInconnue"}, 400, "invalid_scope", True),
        ({"client_id": "nobody-" + uuid.uuid4().hex}, 401, "invalid_client", False),
    ]
    for options, status, error, known in cases:
        sent, r = _token_request(world, partner, **options)  # type: ignore[arg-type]
        assert getattr(r, "status_code", None) == status
        record = world.record(sent["X-Correlation-ID"])
        assert record["outcome"] == error
        assert record["http_status"] == status
        assert record["operation"] == "POST /token"
        assert record["api"] is None
        assert record["subject"] is None
        assert record["data_scopes"] == []
        assert record["environment"] == "sandbox"
        assert record["source_ip"] == "127.0.0.1"
        assert record["cert_thumbprint"] == cert_thumbprint(partner.cert_pem)
        if known:
            # The partner finds the failed attempts on its own habilitation.
            assert record["client_id"] == partner.client_id
            assert str(record["habilitation_id"]) == partner.habilitation_id
            assert record["partner_id"] is not None
        else:
            # An id nobody holds is not recorded: it may be anything the caller typed.
            assert record["client_id"] is None
            assert record["habilitation_id"] is None
            assert record["partner_id"] is None
    # A token issued is not an exchange of data: no record.
    sent, r = _token_request(world, partner)
    assert getattr(r, "status_code", None) == 200
    assert world.journal(sent["X-Correlation-ID"]) == []


def test_tls_client_auth_uses_the_gateways_trust_store(world: World, tmp_path: Path) -> None:
    trusted = world.partner(name="Commune de Confiance", siret="21000000610001")
    rogue_pki = ensure_local_pki(tmp_path / "rogue", world.clock.now(), ["127.0.0.1"])
    rogue = make_partner(
        world.runtime.session_factory,
        rogue_pki,
        tmp_path / "rogue-partner",
        world.clock.now(),
        name="Commune Douteuse",
        siret="21000000610001",
    )
    platform = world.new_platform(client_ca_file=world.pki.ca_cert_file)
    app = platform.gateway_app(Environment.SANDBOX)

    def mtls(partner: Partner) -> object:
        return world.request(
            "POST",
            "/token",
            cert=partner.cert_pem,
            app=app,
            headers=_sent_id(),
            data={"grant_type": "client_credentials", "client_id": partner.client_id},
        )

    ok = mtls(trusted)
    assert getattr(ok, "status_code", None) == 200
    refused = mtls(rogue)
    assert getattr(refused, "status_code", None) == 401
    body = refused.json()  # type: ignore[attr-defined]
    assert body["error"] == "invalid_client"
    assert "certificate_untrusted" in body["error_description"]
    # The gateway refuses that certificate for the same reason, with the same code.
    token = world.token(rogue, app=app)  # a secret still gets a token…
    call = world.get(_n1(world), token=token, cert=rogue.cert_pem, app=app)
    assert call.status_code == 401
    assert call.json()["code"] == "certificate_untrusted"  # …that the gateway refuses


def test_tls_client_auth_without_a_trust_store_is_refused(world: World) -> None:
    partner = world.partner()
    app = world.new_platform(client_ca_file=None).gateway_app(Environment.SANDBOX)
    r = world.request(
        "POST",
        "/token",
        cert=partner.cert_pem,
        app=app,
        data={"grant_type": "client_credentials", "client_id": partner.client_id},
    )
    assert r.status_code == 401
    assert "certificate_untrusted" in r.json()["error_description"]


def test_a_certificate_issued_after_start_up_passes_tls_client_auth(world: World) -> None:
    platform = world.new_platform(client_ca_file=world.pki.ca_cert_file)
    app = platform.gateway_app(Environment.SANDBOX)
    world.clock.advance(3600)  # validated at the request's time, not the platform's start
    cert, key = issue_client_certificate(
        world.pki, "Partenaire tardif", "Mairie", 30, world.clock.now()
    )
    partner = world.partner(certificate=(cert, key))
    r = world.request(
        "POST",
        "/token",
        cert=partner.cert_pem,
        app=app,
        data={"grant_type": "client_credentials", "client_id": partner.client_id},
    )
    assert r.status_code == 200, r.text
