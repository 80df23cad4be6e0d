"""The citizen's page through HTTP: the portal app and the real sandbox federation app, in
process, on each database; the portal's OpenID Connect client reaches the federation over
an ``httpx.ASGITransport`` (the seam ``CitizenSpace.transport``)."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import os
import re
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey
from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from guichet.accounts.models import PortalSession
from guichet.catalog.products import PRODUCTS
from guichet.clock import FrozenClock
from guichet.demo import ensure_portal_federation_client
from guichet.federation.models import FederationClient
from guichet.habilitation.models import Environment, Habilitation, Organisation
from guichet.journal.entry import JournalEntry
from guichet.journal.writer import JournalWriter
from guichet.portal.app import build_portal_app
from guichet.portal.citizen.cookie import COOKIE
from guichet.portal.citizen.history import OPERATION_LABELS, ExchangeHistory
from guichet.portal.citizen.space import CALLBACK_PATH, CitizenSpace
from guichet.quota import QuotaService
from guichet.records.models import Person
from guichet.runtime import Runtime
from guichet.sandbox import personas
from guichet.secrets import MasterSecret
from guichet.settings import Settings
from tests.unit.accounts.conftest import FAST_HASHER
from tests.unit.federation.support import (
    ISSUER,
    Federation,
    make_federation,
    query_of,
    real_now,
    sign_in,
)

pytestmark = pytest.mark.anyio

PORTAL = "http://127.0.0.1:8000"
DUBOIS = personas.DUBOIS.spi
LEROY = personas.SHARED_30262.spi
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
REFERENCE = re.compile(r"<code>([a-z_]+)</code>")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Tampering(httpx.AsyncBaseTransport):
    """The federation's real app, with its ``/token`` answer's ID token or its ``/userinfo``
    JWT rewritten when a test says so (a man in the middle, or a federation gone wrong)."""

    def __init__(self, app: Starlette) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.rewrite_id_token: Callable[[str], str] | None = None
        self.rewrite_userinfo: Callable[[str], str] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.rewrite_id_token is not None and request.url.path == "/token":
            body = json.loads(await response.aread())
            body["id_token"] = self.rewrite_id_token(body["id_token"])
            return httpx.Response(response.status_code, json=body)
        if self.rewrite_userinfo is not None and request.url.path == "/userinfo":
            signed = (await response.aread()).decode("ascii")
            return httpx.Response(
                response.status_code,
                text=self.rewrite_userinfo(signed),
                headers={"content-type": response.headers["content-type"]},
            )
        return response


@dataclass
class World:
    fed: Federation
    runtime: Runtime
    portal: Starlette
    transport: Tampering
    clock: FrozenClock
    partner_a: uuid.UUID  # habilitation ids
    partner_b: uuid.UUID

    def browser(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.portal), base_url=PORTAL)


def _habilitation(session: Session, siret: str, name: str, demarche: str, now: dt.datetime) -> Any:
    org = Organisation(id=uuid.uuid4(), siret=siret, name=name, created_at=now)
    hab = Habilitation(
        id=uuid.uuid4(),
        organisation_id=org.id,
        environment=Environment.SANDBOX,
        demarche=demarche,
        apis=["impot_particulier"],
        access_modes=["spi"],
        data_scopes=["dgfip_rfr", "dgfip_nbpart"],
        year_scopes=["dgfip_annee_n_moins_1"],
        data_labels={},
        ip_ranges=["127.0.0.1/32"],
        quotas={"impot_particulier": 120},
        valid_from=now,
        valid_until=None,
        created_at=now,
        updated_at=now,
    )
    session.add(org)
    session.flush()
    session.add(hab)
    session.flush()
    return hab.id


@pytest.fixture
def world(
    engine: Engine,
    session_factory: sessionmaker[Session],
    master_secret: MasterSecret,
    tmp_path: Any,
) -> World:
    clock = FrozenClock(real_now())
    fed = make_federation(session_factory, master_secret, clock)
    settings = Settings(data_dir=tmp_path, smtp_url=None, portal_public_url=PORTAL)
    runtime = Runtime(settings, engine, session_factory, master_secret, clock)
    assert ensure_portal_federation_client(runtime) is not None
    transport = Tampering(fed.app)
    space = CitizenSpace.from_runtime(runtime, issuer=ISSUER, transport=transport)
    portal = build_portal_app(
        runtime, QuotaService(None), password_hasher=FAST_HASHER, citizen_space=space
    )
    now = clock.now()
    with session_factory() as s, s.begin():
        a = _habilitation(
            s, "21290232700013", "Ville de Quimper", "Tarification de la cantine", now
        )
        b = _habilitation(
            s, "21750001600019", "Ville de Paris", "Aide au logement des familles", now
        )
    return World(fed, runtime, portal, transport, clock, a, b)


def journal(
    world: World,
    spi: str | None,
    hab: uuid.UUID | None,
    at: dt.datetime,
    *,
    operation: str = "GET ir_assiettes_spi",
    scopes: tuple[str, ...] = ("dgfip_nbpart", "dgfip_rfr"),
    outcome: str = "ok",
    status: int = 200,
) -> str:
    """One record through the real journal writer; returns its id."""
    partner = None
    if hab is not None:
        with world.runtime.session_factory() as s:
            partner = s.get_one(Habilitation, hab).organisation_id
    entry = JournalEntry(
        id=uuid.uuid4(),
        at=at,
        environment="sandbox",
        correlation_id=str(uuid.uuid4()),
        partner_id=partner,
        habilitation_id=hab,
        client_id="c" * 16,
        api="impot_particulier",
        operation=operation,
        source_ip="127.0.0.1",
        cert_thumbprint=None,
        subject=world.runtime.master.pseudonym(spi) if spi else None,
        data_scopes=list(scopes) if outcome == "ok" else [],
        outcome=outcome,
        http_status=status,
        latency_ms=1.5,
    )
    JournalWriter(world.runtime.session_factory).append_sync(entry)
    return str(entry.id)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


async def start(portal: httpx.AsyncClient) -> str:
    answer = await portal.get("/mes-donnees/connexion")
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


async def through_federation(world: World, authorize_url: str, spi: str = DUBOIS) -> str:
    async with world.fed.browser() as fed_browser:
        back = await sign_in(fed_browser, authorize_url, spi)
    assert back.startswith(f"{PORTAL}{CALLBACK_PATH}?"), back
    return back


async def sign_in_as(world: World, portal: httpx.AsyncClient, spi: str = DUBOIS) -> None:
    back = await through_federation(world, await start(portal), spi)
    answer = await portal.get(back)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/mes-donnees/echanges"


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def reference(page: httpx.Response) -> str:
    found = REFERENCE.search(page.text)
    assert found, page.text
    return found.group(1)


def assert_readable_error(page: httpx.Response, status: int) -> None:
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in page.text
    assert "Traceback" not in page.text
    assert '<html lang="fr"' in page.text


# --- the whole path ---------------------------------------------------------------------


async def test_angela_sees_exactly_her_exchanges_and_downloads_them(world: World) -> None:
    hers = [
        journal(world, DUBOIS, world.partner_a, utc("2026-07-14T08:30:00")),
        journal(
            world,
            DUBOIS,
            world.partner_b,
            utc("2026-08-01T12:00:00"),
            outcome="habilitation_suspended",
            status=403,
        ),
        journal(
            world,
            DUBOIS,
            world.partner_b,
            utc("2026-09-02T16:45:10"),
            operation="GET os2_aft",
            scopes=("dgfip_aft",),
        ),
    ]
    journal(world, LEROY, world.partner_a, utc("2026-07-15T09:00:00"), scopes=("dgfip_pac",))
    journal(world, None, world.partner_a, utc("2026-07-16T09:00:00"), outcome="token_expired")

    async with world.browser() as portal:
        intro = await portal.get("/mes-donnees")
        assert intro.status_code == 200
        assert "S’identifier avec" in intro.text
        assert "FranceConnect</span>" in intro.text
        authorize = await start(portal)
        query = query_of(authorize)
        assert authorize.startswith(f"{ISSUER}/authorize?")
        assert query["scope"].split() == [
            "openid",
            "given_name",
            "family_name",
            "birthdate",
            "gender",
            "birthplace",
            "birthcountry",
        ]
        assert query["acr_values"] == "eidas1"
        assert query["code_challenge_method"] == "S256"
        assert len(query["state"]) >= 32
        assert len(query["nonce"]) >= 32
        assert query["redirect_uri"] == f"{PORTAL}{CALLBACK_PATH}"

        back = await portal.get(await through_federation(world, authorize))
        assert back.status_code == 303, back.text
        page = await portal.get(back.headers["location"])
        assert page.status_code == 200
        html = page.text
        assert "Angela Claire Louise DUBOIS" in html
        assert "3 échanges vous concernent" in html
        # Newest first, dates in Paris time, partner and démarche from the habilitation.
        newest = html.index("02/09/2026 à 18:45:10")
        middle = html.index("01/08/2026 à 14:00:00")
        oldest = html.index("14/07/2026 à 10:30:00")
        assert newest < middle < oldest
        assert "Ville de Quimper" in html
        assert "Tarification de la cantine" in html
        assert "Ville de Paris" in html
        assert "Aide au logement des familles" in html
        assert "Revenu fiscal de référence (RFR)" in html
        assert "Nombre de parts du foyer fiscal" in html
        assert "Adresse fiscale de taxation au 1er janvier" in html
        assert "Habilitation suspendue" in html
        assert "à partir de votre numéro fiscal" in html
        assert "Adresse fiscale de taxation à l&#39;IR (offre de service n° 2)" in html
        # Not Paul LEROY's record, nor the record about nobody.
        assert "Nombre de personnes à charge" not in html
        assert "Jeton d&#39;accès expiré" not in html
        assert "15/07/2026" not in html
        assert "16/07/2026" not in html

        as_csv = await portal.get("/mes-donnees/echanges.csv")
        assert as_csv.status_code == 200
        assert as_csv.headers["content-type"].startswith("text/csv")
        assert "attachment" in as_csv.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(as_csv.text)))
        assert [r["identifiant_echange"] for r in rows] == list(reversed(hers))
        assert rows[2]["date"] == "2026-07-14T10:30:00+02:00"
        assert rows[2]["partenaire"] == "Ville de Quimper"
        assert rows[2]["donnees_transmises"] == (
            "Nombre de parts du foyer fiscal; Revenu fiscal de référence (RFR)"
        )
        assert rows[1]["resultat"].startswith("Refusé")
        assert rows[1]["motif"] == "Habilitation suspendue"

        as_json = await portal.get("/mes-donnees/echanges.json")
        assert as_json.status_code == 200
        records = as_json.json()
        assert [r["identifiant_echange"] for r in records] == list(reversed(hers))
        assert records[0]["operation"].startswith("Adresse fiscale")
        assert records[0]["donnees_transmises"] == ["Adresse fiscale de taxation au 1er janvier"]


async def test_the_session_never_holds_the_spi(world: World) -> None:
    async with world.browser() as portal:
        await sign_in_as(world, portal)
        raw = portal.cookies.get(COOKIE)
        assert raw
        space = world.portal.state.citizen
        assert isinstance(space, CitizenSpace)
        content = space.cookie.decrypt(raw)
        assert content["subject"] == world.runtime.master.pseudonym(DUBOIS)
        assert content["name"] == "Angela Claire Louise DUBOIS"
        assert set(content) == {"subject", "name", "bind", "exp"}
        everything = json.dumps(content) + json.dumps(dict(portal.cookies))
        assert DUBOIS not in everything
    with world.runtime.session_factory() as s:
        sessions = s.scalars(select(PortalSession)).all()
    assert sessions
    assert all(DUBOIS not in repr(vars(row)) for row in sessions)


async def test_paging_and_parameters_never_reach_another_person(world: World) -> None:
    journal(world, DUBOIS, world.partner_a, utc("2026-07-14T08:30:00"))
    journal(world, LEROY, world.partner_b, utc("2026-07-15T09:00:00"))
    other = world.runtime.master.pseudonym(LEROY)
    async with world.browser() as portal:
        await sign_in_as(world, portal)
        for path in (
            f"/mes-donnees/echanges?subject={other}&page=999",
            f"/mes-donnees/echanges?page=-1&spi={LEROY}",
        ):
            page = await portal.get(path)
            assert page.status_code == 200
            assert "Ville de Quimper" in page.text
            assert "Ville de Paris" not in page.text
        rows = (await portal.get(f"/mes-donnees/echanges.json?subject={other}")).json()
        assert [r["partenaire"] for r in rows] == ["Ville de Quimper"]
    # A copied citizen cookie without its portal session is worth nothing.
    async with world.browser() as thief:
        thief.cookies.set(COOKIE, portal.cookies[COOKIE])
        answer = await thief.get("/mes-donnees/echanges.csv")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/mes-donnees"


def test_history_pages(world: World) -> None:
    for minute in range(5):
        journal(world, DUBOIS, world.partner_a, utc(f"2026-07-14T08:0{minute}:00"))
    history = ExchangeHistory(world.runtime.session_factory, page_size=2)
    subject = world.runtime.master.pseudonym(DUBOIS)
    first, last = history.page(subject, 1), history.page(subject, 3)
    assert (first.total, first.pages) == (5, 3)
    assert [e.when[-8:] for e in first.exchanges] == ["10:04:00", "10:03:00"]
    assert [e.when[-8:] for e in last.exchanges] == ["10:00:00"]
    assert history.page(subject, 42).page == 3
    assert history.page(world.runtime.master.pseudonym(LEROY), 1).total == 0


def test_a_ficoba_search_reads_with_its_search_type(world: World) -> None:
    """Issue 14: the citizen reads which of API FICOBA's search types was run about them."""
    subject = world.runtime.master.pseudonym(DUBOIS)
    entry = JournalEntry(
        id=uuid.uuid4(),
        at=utc("2026-07-14T09:00:00"),
        environment="sandbox",
        correlation_id=str(uuid.uuid4()),
        partner_id=None,
        habilitation_id=world.partner_a,
        client_id="c" * 16,
        api="ficoba",
        operation="POST ficoba_verif_iban",
        source_ip="127.0.0.1",
        cert_thumbprint=None,
        subject=subject,
        data_scopes=["ficoba_verification_iban"],
        outcome="ok",
        http_status=200,
        latency_ms=1.5,
        search_type="verification_iban_personne_physique",
        subjects=[subject],
    )
    JournalWriter(world.runtime.session_factory).append_sync(entry)
    history = ExchangeHistory(world.runtime.session_factory)
    (exchange,) = [e for e in history.all(subject) if e.record_id == str(entry.id)]
    assert exchange.operation == (
        "Vérification du titulaire d'un IBAN (fichier FICOBA) — type de recherche "
        "« vérification IBAN personne physique »"
    )
    assert exchange.data == ("Vérification que vous êtes titulaire d'un IBAN",)


# --- refusals -----------------------------------------------------------------------------


async def test_the_untampered_userinfo_passes_through_the_rewriter(world: World) -> None:
    """The rewriting seam itself changes nothing when it returns what it got."""
    seen: list[str] = []

    def keep(token: str) -> str:
        seen.append(token)
        return token

    world.transport.rewrite_userinfo = keep
    async with world.browser() as portal:
        answer = await portal.get(await through_federation(world, await start(portal)))
        assert answer.status_code == 303, answer.text
        assert len(seen) == 1
        assert (await portal.get("/mes-donnees/echanges")).status_code == 200


async def test_state_mismatch(world: World) -> None:
    async with world.browser() as portal:
        back = await through_federation(world, await start(portal))
        forged = await portal.get(with_query(back, state="x" * 43))
        assert_readable_error(forged, 400)
        assert reference(forged) == "state_mismatch"
        # The pending request is spent: the genuine answer no longer works either.
        late = await portal.get(back)
        assert_readable_error(late, 400)
        assert reference(late) == "no_pending_sign_in"
        assert (await portal.get("/mes-donnees/echanges")).status_code == 303


async def test_answer_in_another_browser_is_refused(world: World) -> None:
    async with world.browser() as victim, world.browser() as attacker:
        back = await through_federation(world, await start(attacker))
        await start(victim)
        answer = await victim.get(back)
        assert_readable_error(answer, 400)
        assert reference(answer) == "state_mismatch"


async def test_nonce_mismatch(world: World) -> None:
    """A code obtained for another nonce (same client, state and PKCE challenge) is
    injected: the federation issues it, the ID token's nonce gives it away."""
    async with world.browser() as portal:
        authorize = with_query(await start(portal), nonce="n" * 40)
        answer = await portal.get(await through_federation(world, authorize))
        assert_readable_error(answer, 400)
        assert reference(answer) == "id_token_nonce"
        assert (await portal.get("/mes-donnees/echanges")).status_code == 303


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def load(part: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return data

    header, payload, _ = token.split(".")
    return load(header), load(payload)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def other_key(token: str) -> str:
    header, claims = _parts(token)
    key = ECKey.generate_key("P-256", private=True)
    return jwt.encode({"alg": "ES256", "kid": header["kid"], "typ": "JWT"}, claims, key)


def alg_none(token: str) -> str:
    _, claims = _parts(token)
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


def hmac_with_public_key(token: str, public_jwk: dict[str, Any]) -> str:
    header, claims = _parts(token)
    secret = json.dumps(public_jwk).encode()
    return jwt.encode({"alg": "HS256", "kid": header["kid"]}, claims, OctKey.import_key(secret))


@pytest.mark.parametrize(
    ("forge", "code"),
    [(other_key, "jwt_signature"), (alg_none, "jwt_alg"), ("hmac", "jwt_alg")],
)
async def test_forged_id_tokens_are_refused(world: World, forge: Any, code: str) -> None:
    if forge == "hmac":
        async with world.fed.browser() as http:
            public = (await http.get("/jwks")).json()["keys"][0]

        def forge(token: str) -> str:
            return hmac_with_public_key(token, public)

    world.transport.rewrite_id_token = forge
    async with world.browser() as portal:
        answer = await portal.get(await through_federation(world, await start(portal)))
        assert_readable_error(answer, 400)
        assert reference(answer) == code
        assert (await portal.get("/mes-donnees/echanges")).status_code == 303


@pytest.mark.parametrize(
    ("forge", "code"),
    [(other_key, "jwt_signature"), (alg_none, "jwt_alg"), ("hmac", "jwt_alg")],
)
async def test_forged_userinfo_is_refused(world: World, forge: Any, code: str) -> None:
    """The UserInfo JWT is verified like the ID token (OpenID Connect Core §5.3.2): signed
    by another key under the federation's ``kid``, ``alg: none``, or HS256 keyed with the
    federation's public key, it is refused and nobody is signed in — even though the ID
    token before it was genuine."""
    if forge == "hmac":
        async with world.fed.browser() as http:
            public = (await http.get("/jwks")).json()["keys"][0]

        def forge(token: str) -> str:
            return hmac_with_public_key(token, public)

    world.transport.rewrite_userinfo = forge
    async with world.browser() as portal:
        answer = await portal.get(await through_federation(world, await start(portal)))
        assert_readable_error(answer, 400)
        assert reference(answer) == code
        assert (await portal.get("/mes-donnees/echanges")).status_code == 303


async def test_expired_code(world: World) -> None:
    async with world.browser() as portal:
        back = await through_federation(world, await start(portal))
        world.clock.advance(31)  # codes live 30 seconds
        answer = await portal.get(back)
        assert_readable_error(answer, 400)
        assert reference(answer) == "token_refused"
        assert "expiré" in answer.text


async def test_cancelled_sign_in(world: World) -> None:
    async with world.browser() as portal, world.fed.browser() as fed_browser:
        chooser = await fed_browser.get(await start(portal))
        interaction = chooser.headers["location"]
        page = await fed_browser.get(interaction)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        cancelled = await fed_browser.post(f"{interaction}/cancel", data={"csrf": csrf.group(1)})
        answer = await portal.get(cancelled.headers["location"])
        assert_readable_error(answer, 400)
        assert "Connexion annulée" in answer.text
        assert reference(answer) == "access_denied"


def _person(spi: str, **changes: Any) -> dict[str, Any]:
    persons, _ = personas.rows("sandbox", 2026)
    row = dict(next(p for p in persons if p["spi"] == DUBOIS))
    row.update(spi=spi, **changes)
    return row


async def test_person_not_in_the_store(world: World) -> None:
    """The federation's identity matches no tax record (the record's birth name is written
    otherwise): a plain message, nothing shown."""
    spi = "3999999000016"
    with world.runtime.session_factory() as s, s.begin():
        s.execute(insert(Person), [_person(spi, nom_naissance="Lefèvre", prenoms="Zoé")])
    async with world.browser() as portal:
        answer = await portal.get(await through_federation(world, await start(portal), spi))
        assert_readable_error(answer, 404)
        assert "aucune personne" in answer.text
        assert (await portal.get("/mes-donnees/echanges")).status_code == 303


async def test_several_persons_match(world: World) -> None:
    with world.runtime.session_factory() as s, s.begin():
        s.execute(insert(Person), [_person("3999999000024")])  # Angela's twin record
    async with world.browser() as portal:
        answer = await portal.get(await through_federation(world, await start(portal)))
        assert_readable_error(answer, 409)
        assert "plusieurs personnes" in answer.text


async def test_not_configured(world: World) -> None:
    (world.runtime.settings.data_dir / "federation" / "portal.json").unlink()
    space = CitizenSpace.from_runtime(world.runtime, issuer=ISSUER, transport=world.transport)
    portal_app = build_portal_app(
        world.runtime, QuotaService(None), password_hasher=FAST_HASHER, citizen_space=space
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=portal_app), base_url=PORTAL
    ) as portal:
        page = await portal.get("/mes-donnees")
        assert page.status_code == 200
        assert "Service non configuré" in page.text
        assert "/mes-donnees/connexion" not in page.text
        assert (await portal.get("/mes-donnees/connexion")).status_code == 503


# --- sign-out, CSRF, accessibility -------------------------------------------------------------


async def test_sign_out_needs_the_csrf_token(world: World) -> None:
    async with world.browser() as portal:
        await sign_in_as(world, portal)
        page = await portal.get("/mes-donnees/echanges")
        token = CSRF.search(page.text)
        assert token
        refused = await portal.post("/mes-donnees/deconnexion", data={"csrf_token": "x" * 43})
        assert refused.status_code == 403
        assert (await portal.post("/mes-donnees/deconnexion", data={})).status_code == 403
        async with world.browser() as other:
            await sign_in_as(world, other)
            theirs = CSRF.search((await other.get("/mes-donnees/echanges")).text)
            assert theirs
        another_session = await portal.post(
            "/mes-donnees/deconnexion", data={"csrf_token": theirs.group(1)}
        )
        assert another_session.status_code == 403
        cross_site = await portal.post(
            "/mes-donnees/deconnexion",
            data={"csrf_token": token.group(1)},
            headers={"Sec-Fetch-Site": "cross-site"},
        )
        assert cross_site.status_code == 403
        assert (await portal.get("/mes-donnees/echanges")).status_code == 200
        done = await portal.post("/mes-donnees/deconnexion", data={"csrf_token": token.group(1)})
        assert done.status_code == 303
        assert done.headers["location"] == "/mes-donnees?deconnecte=1"
        assert (await portal.get("/mes-donnees/echanges")).status_code == 303
        assert "Vous êtes déconnecté" in (await portal.get(done.headers["location"])).text


class Outline(HTMLParser):
    """Headings, table headers, form controls and their labels, links' text."""

    def __init__(self) -> None:
        super().__init__()
        self.lang: str | None = None
        self.h1 = 0
        self.controls: list[dict[str, str | None]] = []
        self.labels: set[str] = set()
        self.th_scopes: list[str | None] = []
        self.captions = 0
        self.buttons: list[str] = []
        self._button = False
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        elif tag == "h1":
            self.h1 += 1
        elif tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.controls.append(a)
        elif tag == "label" and a.get("for"):
            self.labels.add(str(a["for"]))
        elif tag == "th":
            self.th_scopes.append(a.get("scope"))
        elif tag == "caption":
            self.captions += 1
        elif tag == "button":
            self._button, self._text = True, []

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button:
            self.buttons.append(" ".join("".join(self._text).split()))
            self._button = False

    def handle_data(self, data: str) -> None:
        if self._button:
            self._text.append(data)


def outline(html: str) -> Outline:
    parser = Outline()
    parser.feed(html)
    return parser


async def test_pages_are_accessible(world: World) -> None:
    journal(world, DUBOIS, world.partner_a, utc("2026-07-14T08:30:00"))
    async with world.browser() as portal:
        intro = await portal.get("/mes-donnees")
        page = outline(intro.text)
        assert page.lang == "fr"
        assert page.h1 == 1
        assert "Qui a consulté mes données ?</h1>" in intro.text
        # The button's accessible name is its text: "S’identifier avec FranceConnect".
        link = re.search(
            r'<a class="fr-connect" href="/mes-donnees/connexion">(.*?)</a>', intro.text, re.S
        )
        assert link
        assert " ".join(re.sub(r"<[^>]+>", " ", link.group(1)).split()) == (
            "S’identifier avec FranceConnect"
        )
        await sign_in_as(world, portal)
        listing = await portal.get("/mes-donnees/echanges")
        page = outline(listing.text)
        assert page.lang == "fr"
        assert page.h1 == 1
        assert page.captions == 1
        assert page.th_scopes
        assert set(page.th_scopes) == {"col"}
        assert "Se déconnecter de cet espace" in page.buttons
        assert all(c.get("id") in page.labels for c in page.controls)
        assert "Télécharger (CSV)" in listing.text
        assert "Télécharger (JSON)" in listing.text
        home = await portal.get("/")
        assert 'href="/mes-donnees"' in home.text


# --- guichet init's registration ------------------------------------------------------------


def test_portal_client_registration(world: World) -> None:
    runtime = world.runtime
    path = runtime.settings.data_dir / "federation" / "portal.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    first = json.loads(path.read_text())
    assert ensure_portal_federation_client(runtime) == path.resolve()
    assert json.loads(path.read_text()) == first  # idempotent
    with runtime.session_factory() as s:
        client = s.get_one(FederationClient, first["client_id"])
        assert client.redirect_uris == [f"{PORTAL}{CALLBACK_PATH}"]
        assert "dgfip_rfr" not in client.scopes
        assert "openid" in client.scopes
    moved = Runtime(
        runtime.settings.model_copy(update={"portal_public_url": "https://guichet.example"}),
        runtime.engine,
        runtime.session_factory,
        runtime.master,
        runtime.clock,
    )
    ensure_portal_federation_client(moved)
    with runtime.session_factory() as s:
        client = s.get_one(FederationClient, first["client_id"])
        assert client.redirect_uris == ["https://guichet.example/mes-donnees/retour"]


def test_every_catalogue_operation_reads_in_plain_words_for_the_citizen() -> None:
    names = {op.name for product in PRODUCTS.values() for op in product.operations}
    assert names - OPERATION_LABELS.keys() == set()
