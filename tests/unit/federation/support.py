"""A federation whose citizens are the personas, three clients, and a browser that signs in."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from guichet.clock import FrozenClock
from guichet.federation.citizens import SANDBOX_PASSWORD
from guichet.federation.clients import register_client
from guichet.federation.models import ClientKind
from guichet.federation.server import FederationDeps
from guichet.federation_web.app import build_federation_app
from guichet.records.models import Person
from guichet.sandbox import personas
from guichet.secrets import MasterSecret

ISSUER: Final = "http://127.0.0.1:8600"
RP: Final = "http://127.0.0.1:5000"
REDIRECT: Final = f"{RP}/callback"
LOGGED_OUT: Final = f"{RP}/logged-out"
SP_SCOPES: Final = [
    "openid",
    "given_name",
    "family_name",
    "birthdate",
    "gender",
    "birthplace",
    "birthcountry",
    "preferred_username",
    "email",
    "dgfip_rfr",
    "dgfip_nbpart",
    "dgfip_annee_n_moins_1",
]
CSRF: Final = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str


@dataclass
class Federation:
    app: Starlette
    deps: FederationDeps
    clock: FrozenClock
    sp: Credentials  # a partner, service provider A
    sp_b: Credentials  # another partner, service provider B
    dp: Credentials  # the provider's gateway, data provider

    def browser(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=ISSUER)


def make_federation(
    session_factory: sessionmaker[Session], master: MasterSecret, clock: FrozenClock
) -> Federation:
    persons, _ = personas.rows("sandbox", 2026)
    with session_factory() as s, s.begin():
        s.execute(insert(Person), persons)
        now = clock.now()
        sp = register_client(
            s,
            kind=ClientKind.SERVICE_PROVIDER,
            name="Ville de Quimper — quotient familial",
            now=now,
            redirect_uris=[REDIRECT],
            post_logout_redirect_uris=[LOGGED_OUT],
            scopes=SP_SCOPES,
        )
        sp_b = register_client(
            s,
            kind=ClientKind.SERVICE_PROVIDER,
            name="Autre partenaire",
            now=now,
            redirect_uris=["http://127.0.0.1:5002/callback"],
        )
        dp = register_client(s, kind=ClientKind.DATA_PROVIDER, name="DGFiP — guichet", now=now)
    deps = FederationDeps(
        issuer=ISSUER, session_factory=session_factory, master=master, clock=clock
    )
    return Federation(
        app=build_federation_app(deps),
        deps=deps,
        clock=clock,
        sp=Credentials(sp.client_id, sp.client_secret),
        sp_b=Credentials(sp_b.client_id, sp_b.client_secret),
        dp=Credentials(dp.client_id, dp.client_secret),
    )


def csrf_of(page: httpx.Response) -> str:
    match = CSRF.search(page.text)
    assert match, page.text
    return match.group(1)


async def sign_in(
    browser: httpx.AsyncClient,
    authorize_url: str,
    spi: str = personas.DUBOIS.spi,
    idp: str = "impots-gouv",
) -> str:
    """Drive the citizen's pages from /authorize to the redirect back; returns its URL."""
    first = await browser.get(authorize_url)
    assert first.status_code == 302, first.text
    chooser_url = first.headers["location"]
    chooser = await browser.get(chooser_url)
    assert chooser.status_code == 200
    assert f"/fi/{idp}" in chooser.text
    login = await browser.get(f"{chooser_url}/fi/{idp}")
    assert login.status_code == 200
    signed = await browser.post(
        f"{chooser_url}/fi/{idp}",
        data={"csrf": csrf_of(login), "spi": spi, "password": SANDBOX_PASSWORD},
    )
    assert signed.status_code == 303, signed.text
    back = await browser.get(signed.headers["location"])
    if back.status_code == 200:  # the consent page: the citizen accepts
        back = await browser.post(
            signed.headers["location"], data={"csrf": csrf_of(back), "decision": "accept"}
        )
    assert back.status_code == 302, back.text
    return back.headers["location"]


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def real_now() -> dt.datetime:
    """Tokens are checked by third-party validators against the real time, so the frozen
    clock starts at the real now (and moves by hand from there)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)
