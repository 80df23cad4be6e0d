"""The consent page (issue 5 §2, seed 003 annexe 1): what it shows, the answers, the records."""

from __future__ import annotations

import datetime as dt
import html
import re
import secrets
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from guichet.catalog.products import IR_DATA_SCOPES, YEAR_FALLBACK_SCOPE, YEAR_SCOPES
from guichet.clock import FrozenClock, SystemClock
from guichet.commands import federation as cli
from guichet.db import make_engine, make_sessionmaker
from guichet.federation.clients import register_client
from guichet.federation.consent import (
    CATALOGUE_LABELS,
    DGFIP_ORIGIN,
    PARIS,
    ConsentPage,
    NoConsentStep,
    months_before,
    purge_consents,
    record_consent,
    revenue_years,
)
from guichet.federation.models import ClientKind, ConsentRecord
from guichet.federation.scopes import DATA_SCOPES
from guichet.federation.server import FederationDeps
from guichet.habilitation.models import Environment, Habilitation, HabilitationStatus
from guichet.habilitation.service import (
    HabilitationError,
    HabilitationSpec,
    create_habilitation,
    get_or_create_organisation,
)
from guichet.pki.certificates import self_signed_certificate
from guichet.runtime import open_runtime
from guichet.sandbox import personas
from guichet.schema import metadata
from guichet.secrets import MasterSecret
from guichet.settings import Settings, use_settings
from tests.unit.federation.support import (
    ISSUER,
    REDIRECT,
    Federation,
    csrf_of,
    query_of,
)

pytestmark = pytest.mark.anyio

ORGANISATION = "Commune de Quimper"
DEMARCHE = "Tarification sociale de la cantine scolaire"
RFR_LABEL = "Votre revenu fiscal de référence, pour calculer le tarif de la cantine"
NBPART_LABEL = "Le nombre de parts de votre foyer fiscal"
SCOPE = (
    "openid given_name family_name birthdate "
    "dgfip_rfr dgfip_nbpart dgfip_annee_n_moins_1 dgfip_annee_n_moins_2"
)


@dataclass(frozen=True)
class Partner:
    client_id: str
    client_secret: str
    habilitation_id: uuid.UUID


def make_spec(**overrides: Any) -> HabilitationSpec:
    cert, _ = self_signed_certificate("quimper", 365, SystemClock().now())
    values: dict[str, Any] = {
        "demarche": DEMARCHE,
        "environment": Environment.SANDBOX,
        "apis": ["impot_particulier"],
        "access_modes": ["franceconnect"],
        "data_scopes": ["dgfip_rfr", "dgfip_nbpart", "dgfip_sitfam"],
        "year_scopes": ["dgfip_annee_n_moins_1", "dgfip_annee_n_moins_2"],
        "ip_ranges": ["127.0.0.1/32"],
        "certificates_pem": [cert.decode()],
        # dgfip_sitfam has no declared label: the catalogue's stands in.
        "data_labels": {"dgfip_rfr": f"  {RFR_LABEL} ", "dgfip_nbpart": NBPART_LABEL},
    }
    values.update(overrides)
    return HabilitationSpec(**values)


def habilitated_partner(fed: Federation, **client: Any) -> Partner:
    """A partner's habilitation (with its literal labels) and its federation client, which
    may ask for more than the habilitation grants (the federation then refuses)."""
    now = fed.clock.now()
    with fed.deps.session_factory() as session, session.begin():
        org = get_or_create_organisation(session, "21290232400004", ORGANISATION, now)
        hab = create_habilitation(session, org, make_spec(), actor="test", now=now)
        registered = register_client(
            session,
            kind=ClientKind.SERVICE_PROVIDER,
            name="Quimper — cantine en ligne",
            now=now,
            redirect_uris=[REDIRECT],
            scopes=client.get(
                "scopes",
                [
                    *SCOPE.split(),
                    "dgfip_aft",
                    "dgfip_sitfam",
                    "dgfip_annee_n_moins_3",
                ],
            ),
            habilitation_id=hab.id,
        )
        return Partner(registered.client_id, registered.client_secret, hab.id)


def rp_client(fed: Federation, client_id: str, secret: str, scope: str) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=client_id,
        client_secret=secret,
        scope=scope,
        redirect_uri=REDIRECT,
        token_endpoint_auth_method="client_secret_post",
        code_challenge_method="S256",
        leeway=5,
        transport=httpx.ASGITransport(app=fed.app),
    )


async def to_consent_page(
    browser: httpx.AsyncClient, authorize_url: str, spi: str = personas.DUBOIS.spi
) -> tuple[str, httpx.Response]:
    """/authorize → identity provider → sign-in → the consent page (its URL, the page)."""
    first = await browser.get(authorize_url)
    assert first.status_code == 302, first.text
    chooser = first.headers["location"]
    login = await browser.get(f"{chooser}/fi/impots-gouv")
    signed = await browser.post(
        f"{chooser}/fi/impots-gouv", data={"csrf": csrf_of(login), "spi": spi, "password": "123"}
    )
    assert signed.status_code == 303, signed.text
    consent_url = signed.headers["location"]
    assert consent_url.endswith("/consent")
    page = await browser.get(consent_url)
    assert page.status_code == 200, page.text
    return consent_url, page


def records(fed: Federation) -> list[ConsentRecord]:
    with fed.deps.session_factory() as session:
        return list(session.scalars(select(ConsentRecord).order_by(ConsentRecord.at)))


def text_of(page: httpx.Response) -> str:
    """The page's visible text, tags removed and entities decoded (what the citizen reads)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())


def paris_year(fed: Federation) -> int:
    return fed.clock.now().astimezone(PARIS).year


# --- the full flow ------------------------------------------------------------------------


async def test_accepted_consent_continues_the_flow_and_is_recorded(
    federation: Federation, master_secret: MasterSecret
) -> None:
    fed = federation
    partner = habilitated_partner(fed)
    async with (
        rp_client(fed, partner.client_id, partner.client_secret, SCOPE) as rp,
        fed.browser() as browser,
    ):
        verifier = secrets.token_urlsafe(48)
        url, state = rp.create_authorization_url(
            f"{ISSUER}/authorize",
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            acr_values="eidas1",
            code_verifier=verifier,
        )
        consent_url, page = await to_consent_page(browser, url)

        # What the citizen reads [003 annexe 1]: who, for which démarche, the partner's
        # literal labels, their origin, the revenue years, the identity data.
        shown = text_of(page)
        n = paris_year(fed)
        assert f"Organisme {ORGANISATION}" in shown
        assert f"Démarche {DEMARCHE}" in shown
        assert RFR_LABEL in shown  # stripped, as declared
        assert NBPART_LABEL in shown
        assert CATALOGUE_LABELS["dgfip_rfr"] not in shown  # the declared label wins
        assert shown.count(f"Origine : {DGFIP_ORIGIN}") == 2  # one per data item
        assert f"Origine des données : {DGFIP_ORIGIN}" in shown
        assert f"Revenus {n - 1} (déclarés en {n})" in shown
        assert f"Revenus {n - 2} (déclarés en {n - 1})" in shown
        assert f"Revenus {n - 3}" not in shown
        assert "Données d'identité transmises par impots.gouv.fr" in shown
        for label in ("Prénoms", "Nom de naissance", "Date de naissance"):
            assert label in shown
        assert "Sexe" not in shown  # not requested
        assert "Angela Claire Louise DUBOIS" in shown
        # Nothing written before the citizen answers.
        assert records(fed) == []

        answered = await browser.post(
            consent_url, data={"csrf": csrf_of(page), "decision": "accept"}
        )
        assert answered.status_code == 302
        callback = answered.headers["location"]
        assert callback.startswith(REDIRECT + "?")
        assert query_of(callback)["state"] == state
        token = await rp.fetch_token(
            f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier, state=state
        )
        assert token["scope"] == SCOPE
        userinfo = await rp.get(f"{ISSUER}/userinfo")
        assert userinfo.status_code == 200

    [row] = records(fed)
    assert row.accepted is True
    assert row.client_id == partner.client_id
    assert row.habilitation_id == partner.habilitation_id
    assert row.scopes == SCOPE.split()
    assert row.at == fed.clock.now()
    assert row.subject == master_secret.pseudonym(personas.DUBOIS.spi)
    assert personas.DUBOIS.spi not in row.subject


async def test_refusal_returns_access_denied_and_is_recorded(
    federation: Federation, master_secret: MasterSecret
) -> None:
    fed = federation
    partner = habilitated_partner(fed)
    async with rp_client(fed, partner.client_id, partner.client_secret, SCOPE) as rp:
        url, state = rp.create_authorization_url(
            f"{ISSUER}/authorize",
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            acr_values="eidas1",
        )
    async with fed.browser() as browser:
        consent_url, page = await to_consent_page(browser, url, personas.SHARED_30262.spi)
        refused = await browser.post(
            consent_url, data={"csrf": csrf_of(page), "decision": "refuse"}
        )
        assert refused.status_code == 302
        back = query_of(refused.headers["location"])
        assert refused.headers["location"].startswith(REDIRECT + "?")
        assert back["error"] == "access_denied"
        assert back["state"] == state
        assert "code" not in back
        # The interaction is over: answering again reaches nobody.
        again = await browser.post(consent_url, data={"csrf": csrf_of(page), "decision": "accept"})
        assert again.status_code == 400
        assert "location" not in again.headers

    [row] = records(fed)
    assert row.accepted is False
    assert row.client_id == partner.client_id
    assert row.scopes == SCOPE.split()
    assert row.subject == master_secret.pseudonym(personas.SHARED_30262.spi)


async def test_anything_but_accept_is_a_refusal(federation: Federation) -> None:
    fed = federation
    partner = habilitated_partner(fed)
    async with rp_client(fed, partner.client_id, partner.client_secret, SCOPE) as rp:
        url, _ = rp.create_authorization_url(
            f"{ISSUER}/authorize",
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            acr_values="eidas1",
        )
    async with fed.browser() as browser:
        consent_url, page = await to_consent_page(browser, url)
        answered = await browser.post(consent_url, data={"csrf": csrf_of(page)})
    assert query_of(answered.headers["location"])["error"] == "access_denied"
    assert [r.accepted for r in records(fed)] == [False]


async def test_a_forged_answer_is_refused_without_a_record(federation: Federation) -> None:
    fed = federation
    partner = habilitated_partner(fed)
    async with rp_client(fed, partner.client_id, partner.client_secret, SCOPE) as rp:
        url, _ = rp.create_authorization_url(
            f"{ISSUER}/authorize",
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            acr_values="eidas1",
        )
    async with fed.browser() as browser:
        consent_url, page = await to_consent_page(browser, url)
        for forged in ({"decision": "accept"}, {"csrf": "x" * 43, "decision": "accept"}):
            answered = await browser.post(consent_url, data=forged)
            assert answered.status_code == 403
            assert "location" not in answered.headers
            assert "csrf_invalid" in answered.text
        assert records(fed) == []
        # The genuine form still works afterwards.
        answered = await browser.post(
            consent_url, data={"csrf": csrf_of(page), "decision": "accept"}
        )
    assert "code" in query_of(answered.headers["location"])
    assert [r.accepted for r in records(fed)] == [True]


async def test_the_page_is_accessible_and_scriptless(federation: Federation) -> None:
    fed = federation
    partner = habilitated_partner(fed)
    async with rp_client(fed, partner.client_id, partner.client_secret, SCOPE) as rp:
        url, _ = rp.create_authorization_url(
            f"{ISSUER}/authorize",
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            acr_values="eidas1",
        )
    async with fed.browser() as browser:
        _, page = await to_consent_page(browser, url)
    body = page.text
    assert '<html lang="fr">' in body
    assert "<fieldset>" in body
    assert "<legend>Autorisez-vous la transmission de ces données à" in body
    assert 'method="post"' in body
    assert '<button type="submit" name="decision" value="accept">' in body
    assert '<button type="submit" name="decision" value="refuse"' in body
    assert "<script" not in body.lower()
    assert not re.search(r"<[^>]+\son[a-z]+=", body, re.IGNORECASE)  # no inline handlers
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"


# --- what a partner may ask for -----------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        "dgfip_aft",  # a data scope the habilitation does not grant
        "dgfip_annee_n_moins_3",  # a revenue year it does not grant
    ],
)
async def test_scopes_beyond_the_habilitation_are_refused_before_sign_in(
    federation: Federation, extra: str
) -> None:
    fed = federation
    partner = habilitated_partner(fed)
    state = secrets.token_urlsafe(32)
    async with fed.browser() as browser:
        refused = await browser.get(
            "/authorize",
            params={
                "response_type": "code",
                "client_id": partner.client_id,
                "redirect_uri": REDIRECT,
                "scope": f"{SCOPE} {extra}",
                "state": state,
                "nonce": secrets.token_urlsafe(32),
                "acr_values": "eidas1",
            },
        )
    assert refused.status_code == 302
    assert refused.headers["location"].startswith(REDIRECT + "?")
    back = query_of(refused.headers["location"])
    assert back["error"] == "invalid_scope"
    assert back["state"] == state
    assert extra in back["error_description"]
    assert records(fed) == []


async def test_a_suspended_habilitation_may_not_ask_for_data(federation: Federation) -> None:
    fed = federation
    partner = habilitated_partner(fed)
    with fed.deps.session_factory() as session, session.begin():
        hab = session.get(Habilitation, partner.habilitation_id)
        assert hab is not None
        hab.status = HabilitationStatus.SUSPENDED
    query = {
        "response_type": "code",
        "client_id": partner.client_id,
        "redirect_uri": REDIRECT,
        "state": secrets.token_urlsafe(32),
        "nonce": secrets.token_urlsafe(32),
        "acr_values": "eidas1",
    }
    async with fed.browser() as browser:
        refused = await browser.get("/authorize", params={**query, "scope": SCOPE})
        assert query_of(refused.headers["location"])["error"] == "invalid_scope"
        # Identity alone is still possible: the habilitation only bounds DGFiP data.
        identity = await browser.get("/authorize", params={**query, "scope": "openid family_name"})
    assert identity.status_code == 302
    assert identity.headers["location"].startswith(f"{ISSUER}/interaction/")


# --- the demo clients, without habilitation -----------------------------------------------


async def test_a_client_without_habilitation_gets_catalogue_labels(
    federation: Federation,
) -> None:
    fed = federation
    scope = "openid family_name dgfip_rfr dgfip_nbpart dgfip_annee_n_moins_1"
    async with rp_client(fed, fed.sp.client_id, fed.sp.client_secret, scope) as rp:
        url, state = rp.create_authorization_url(
            f"{ISSUER}/authorize",
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            acr_values="eidas1",
        )
        async with fed.browser() as browser:
            consent_url, page = await to_consent_page(browser, url)
            shown = text_of(page)
            assert "Organisme Ville de Quimper — quotient familial" in shown
            assert "Démarche Non précisée" in shown
            assert CATALOGUE_LABELS["dgfip_rfr"] in shown
            assert CATALOGUE_LABELS["dgfip_nbpart"] in shown
            assert f"Origine : {DGFIP_ORIGIN}" in shown
            assert f"Revenus {paris_year(fed) - 1}" in shown
            answered = await browser.post(
                consent_url, data={"csrf": csrf_of(page), "decision": "accept"}
            )
        callback = answered.headers["location"]
        assert query_of(callback)["state"] == state
        token = await rp.fetch_token(
            f"{ISSUER}/token", authorization_response=callback, state=state
        )
    assert token["scope"] == scope
    [row] = records(fed)
    assert row.accepted is True
    assert row.habilitation_id is None


async def test_the_seam_without_a_page(
    session_factory: sessionmaker[Session], master_secret: MasterSecret, fed_clock: FrozenClock
) -> None:
    """``NoConsentStep`` still plugs in; the default is the consent page."""
    deps = FederationDeps(
        issuer=ISSUER, session_factory=session_factory, master=master_secret, clock=fed_clock
    )
    assert isinstance(deps.consent_step, ConsentPage)
    none = FederationDeps(
        issuer=ISSUER,
        session_factory=session_factory,
        master=master_secret,
        clock=fed_clock,
        consent=NoConsentStep(),
    )
    assert isinstance(none.consent_step, NoConsentStep)


# --- labels and years ---------------------------------------------------------------------


def test_every_data_scope_has_a_catalogue_label() -> None:
    assert set(CATALOGUE_LABELS) == set(IR_DATA_SCOPES)
    assert all(1 <= len(label) <= 200 for label in CATALOGUE_LABELS.values())
    # The federation's data scopes are IR data scopes or revenue-year scopes.
    assert IR_DATA_SCOPES | set(YEAR_SCOPES) | {YEAR_FALLBACK_SCOPE} >= DATA_SCOPES


def test_revenue_years_follow_the_clock_in_paris() -> None:
    # 31 December 2025, 23:30 UTC is already 2026 in Paris: N = 2026.
    now = dt.datetime(2025, 12, 31, 23, 30, tzinfo=dt.UTC)
    assert revenue_years(["dgfip_annee_n_moins_1", "dgfip_annee_n_moins_3"], now) == [
        "Revenus 2025 (déclarés en 2026)",
        "Revenus 2023 (déclarés en 2024)",
    ]
    assert revenue_years([YEAR_FALLBACK_SCOPE], now) == [
        "Revenus 2024 (déclarés en 2025), si ceux de 2025 ne sont pas disponibles"
    ]
    assert revenue_years(["dgfip_rfr"], now) == []


# --- retention ---------------------------------------------------------------------------


def test_months_before() -> None:
    at = dt.datetime(2026, 5, 31, 12, 0, tzinfo=dt.UTC)
    assert months_before(at, 36) == dt.datetime(2023, 5, 31, 12, 0, tzinfo=dt.UTC)
    assert months_before(at, 3) == dt.datetime(2026, 2, 28, 12, 0, tzinfo=dt.UTC)
    assert months_before(at, 5) == dt.datetime(2025, 12, 31, 12, 0, tzinfo=dt.UTC)


def _add(session_factory: sessionmaker[Session], at: dt.datetime, subject: str) -> None:
    with session_factory() as session, session.begin():
        record_consent(
            session,
            subject=subject,
            client_id="c" * 64,
            habilitation_id=None,
            scopes=["openid", "dgfip_rfr"],
            accepted=True,
            at=at,
        )


def test_purge_keeps_36_months(session_factory: sessionmaker[Session], clock: FrozenClock) -> None:
    now = clock.now()
    _add(session_factory, months_before(now, 35), "kept-35")
    _add(session_factory, months_before(now, 36) + dt.timedelta(minutes=1), "kept-36")
    _add(session_factory, months_before(now, 37), "gone-37")
    with session_factory() as session, session.begin():
        assert purge_consents(session, now) == 1
    with session_factory() as session:
        left = sorted(session.scalars(select(ConsentRecord.subject)))
    assert left == ["kept-35", "kept-36"]
    # A year later the 35-month-old record is past 36 months too.
    clock.set(now + dt.timedelta(days=366))
    with session_factory() as session, session.begin():
        assert purge_consents(session, clock.now()) == 2


def test_cli_purge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    (tmp_path / "data").mkdir()
    engine = make_engine(settings.resolved_database_url)
    metadata.create_all(engine)
    # The schema comes from the models here; the Alembic migration is the lead's.
    monkeypatch.setattr(cli, "open_runtime", partial(open_runtime, migrate=False))
    factory = make_sessionmaker(engine)
    now = SystemClock().now()
    _add(factory, months_before(now, 35), "kept")
    _add(factory, months_before(now, 37), "gone")
    use_settings(settings)
    try:
        result = CliRunner().invoke(cli.app, ["consent", "purge"])
    finally:
        use_settings(None)
    assert result.exit_code == 0, result.output
    assert "1 consentement" in result.output
    with factory() as session:
        assert list(session.scalars(select(ConsentRecord.subject))) == ["kept"]
    engine.dispose()


# --- the habilitation's literal labels ------------------------------------------------------


def test_habilitation_labels_are_validated(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    now = clock.now()
    with session_factory() as session, session.begin():
        org = get_or_create_organisation(session, "21290232400004", ORGANISATION, now)
        for labels, message in [
            ({"dgfip_aft": "Adresse"}, "non demandé"),  # not a granted data scope
            ({"dgfip_rfr": "   "}, "de 1 à 200"),
            ({"dgfip_rfr": "x" * 201}, "de 1 à 200"),
        ]:
            with pytest.raises(HabilitationError, match=message):
                create_habilitation(
                    session, org, make_spec(data_labels=labels), actor="test", now=now
                )
        hab = create_habilitation(session, org, make_spec(), actor="test", now=now)
        plain = create_habilitation(
            session, org, make_spec(data_labels=None), actor="test", now=now
        )
        hab_id, plain_id = hab.id, plain.id
    with session_factory() as session:
        stored = session.get(Habilitation, hab_id)
        default = session.get(Habilitation, plain_id)
        assert stored is not None
        assert default is not None
        assert stored.data_labels == {"dgfip_nbpart": NBPART_LABEL, "dgfip_rfr": RFR_LABEL}
        assert default.data_labels == {}
