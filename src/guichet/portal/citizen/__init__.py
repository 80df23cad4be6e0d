"""The citizen's page "Qui a consulté mes données" : sign-in through the sandbox federation,
then every journal record about them, found through their subject pseudonym alone.

Three parts, each replaceable: ``FederationRelyingParty`` (OpenID Connect Core §3.1 relying
party, over an injectable HTTP transport), ``find_citizen`` (the identity pivot → exactly
one person of the sandbox store) and ``ExchangeHistory`` (the journal read by pseudonym).
The routes parse, call them and render (STYLE 3).

What the browser holds: the portal session cookie (server-side, with its CSRF token) and
an encrypted cookie (``CitizenCookie``, Fernet under a key derived from the master secret)
bound to that session — the pending sign-in (``state``, ``nonce``, PKCE verifier) and,
once signed in, the subject pseudonym and the display name. Never the SPI.

The package: ``relying_party`` (the OpenID Connect client), ``identity`` (pivot → person →
pseudonym), ``cookie``, ``history`` (the journal in words), ``space`` (what the pages share),
and the pages: ``sign_in``, ``exchanges``, ``export``.
"""

from __future__ import annotations

from typing import Final

from starlette.routing import Route

from guichet.portal.citizen.exchanges import exchanges
from guichet.portal.citizen.export import download_csv, download_json
from guichet.portal.citizen.relying_party import load_portal_client
from guichet.portal.citizen.sign_in import callback, home, sign_in, sign_out
from guichet.portal.citizen.space import CALLBACK_PATH, EXCHANGES_PATH, HOME_PATH, CitizenSpace

ROUTES: Final = [
    Route(HOME_PATH, home, methods=["GET"]),
    Route("/mes-donnees/connexion", sign_in, methods=["GET"]),
    Route(CALLBACK_PATH, callback, methods=["GET"]),
    Route(EXCHANGES_PATH, exchanges, methods=["GET"]),
    Route(f"{EXCHANGES_PATH}.csv", download_csv, methods=["GET"]),
    Route(f"{EXCHANGES_PATH}.json", download_json, methods=["GET"]),
    Route("/mes-donnees/deconnexion", sign_out, methods=["POST"]),
]

__all__ = ["ROUTES", "CitizenSpace", "load_portal_client"]
