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
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import logging
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core.util import create_half_hash
from cryptography.fernet import Fernet, InvalidToken
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from guichet.accounts.sessions import SessionData
from guichet.apis.impot_particulier.franceconnect import persons_of_pivot
from guichet.catalog.products import OFFERS_OF_SERVICE, PRODUCTS
from guichet.clock import Clock
from guichet.errors import GuichetError
from guichet.federation.consent import CATALOGUE_LABELS
from guichet.gateway.franceconnect import IdentityPivot
from guichet.habilitation.models import Habilitation, Organisation
from guichet.journal.models import JournalRecord
from guichet.logs import event
from guichet.portal.oauth_client import AsyncOAuth2Client, OAuthError
from guichet.portal.web import (
    csrf_protected,
    current_session,
    deps,
    ensure_session,
    finish,
    is_https,
    redirect,
    render,
    use_session,
)
from guichet.runtime import Runtime
from guichet.secrets import MasterSecret

log = logging.getLogger(__name__)

PORTAL_CLIENT_FILE: Final = Path("federation") / "portal.json"
HOME_PATH: Final = "/mes-donnees"
CALLBACK_PATH: Final = "/mes-donnees/retour"
EXCHANGES_PATH: Final = "/mes-donnees/echanges"
# Identity scopes only: the portal asks for the identity pivot, never for tax data.
SCOPES: Final = (
    "openid",
    "given_name",
    "family_name",
    "birthdate",
    "gender",
    "birthplace",
    "birthcountry",
)
ACR: Final = "eidas1"
ACCEPTED_ACR: Final = frozenset({"eidas1", "eidas2", "eidas3"})
# FranceConnect signs with ES256 or RS256; never ``none``, never an HMAC keyed with a
# public key (key confusion).
ALLOWED_ALGS: Final = ("ES256", "RS256")
_REGISTRY: Final = jws.JWSRegistry(algorithms=list(ALLOWED_ALGS))
CLOCK_LEEWAY: Final = 30  # seconds of skew tolerated on ``exp`` and ``iat``
FLOW_LIFETIME: Final = 600  # seconds to come back from the federation
SIGNED_IN_LIFETIME: Final = 1800  # the citizen's view lasts 30 minutes
SANDBOX_STORE: Final = "sandbox"
FRANCE: Final = "99100"
PAGE_SIZE: Final = 50
MAX_PAGE: Final = 100_000
PARIS: Final = ZoneInfo("Europe/Paris")
COOKIE: Final = "guichet_citoyen"
SECURE_COOKIE: Final = "__Host-guichet_citoyen"


# --- configuration ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortalClient:
    """The portal's service-provider credentials at the federation."""

    client_id: str
    client_secret: str


def load_portal_client(data_dir: Path) -> PortalClient | None:
    """``DATA_DIR/federation/portal.json`` (written by ``guichet init``), or None."""
    path = data_dir / PORTAL_CLIENT_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    client_id, secret = document.get("client_id"), document.get("client_secret")
    if not (isinstance(client_id, str) and client_id and isinstance(secret, str) and secret):
        return None
    return PortalClient(client_id, secret)


# --- the relying party -----------------------------------------------------------------


class SignInRefused(Exception):
    """A sign-in that must not go on; ``code`` is stable, ``message`` is for the citizen."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(code)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    """What the portal remembers between the redirect and the return."""

    state: str
    nonce: str
    verifier: str

    def as_dict(self) -> dict[str, str]:
        return {"state": self.state, "nonce": self.nonce, "verifier": self.verifier}

    @classmethod
    def of(cls, data: object) -> PendingSignIn | None:
        if not isinstance(data, dict):
            return None
        values = [data.get(k) for k in ("state", "nonce", "verifier")]
        if not all(isinstance(v, str) and v for v in values):
            return None
        return cls(*(str(v) for v in values))


def _refused(code: str, message: str = "", status: int = 400) -> SignInRefused:
    return SignInRefused(
        code,
        message
        or "La réponse de FranceConnect n'a pas pu être vérifiée : par prudence, vous n'êtes "
        "pas connecté. Recommencez ; si cela se reproduit, signalez-le à l'assistance.",
        status,
    )


class FederationRelyingParty:
    """The portal as a service provider of the federation (authorization code flow, PKCE
    S256, ``client_secret_post``); ``transport`` is the seam tests use to reach the
    federation's app in process."""

    def __init__(
        self,
        issuer: str,
        client: PortalClient,
        redirect_uri: str,
        clock: Clock,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client = client
        self.redirect_uri = redirect_uri
        self.clock = clock
        self.transport = transport
        self.timeout = timeout
        self._metadata: dict[str, Any] | None = None

    def _http(self) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.client.client_id,
            client_secret=self.client.client_secret,
            token_endpoint_auth_method="client_secret_post",  # noqa: S106 (a method's name)
            redirect_uri=self.redirect_uri,
            transport=self.transport,
            timeout=self.timeout,
        )

    async def metadata(self, http: AsyncOAuth2Client) -> dict[str, Any]:
        """OpenID Connect Discovery 1.0 §4: the configuration, whose ``issuer`` "MUST be
        identical to the Issuer URL that was used as the prefix" (§4.3)."""
        if self._metadata is None:
            try:
                answer = await http.request(
                    "GET", f"{self.issuer}/.well-known/openid-configuration", withhold_token=True
                )
                answer.raise_for_status()
                document = answer.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise _unavailable() from exc
            if not isinstance(document, dict) or document.get("issuer") != self.issuer:
                raise _refused("discovery_issuer_mismatch")
            for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint"):
                if not isinstance(document.get(name), str):
                    raise _refused("discovery_incomplete")
            if not isinstance(document.get("jwks_uri"), str):
                raise _refused("discovery_incomplete")
            self._metadata = document
        return self._metadata

    async def start(self) -> tuple[str, PendingSignIn]:
        """OpenID Connect Core §3.1.2.1 with FranceConnect v2's rules: ``state`` and
        ``nonce`` of at least 32 characters, ``acr_values=eidas1``; RFC 7636 §4.2 S256."""
        pending = PendingSignIn(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(48),
        )
        async with self._http() as http:
            endpoint = str((await self.metadata(http))["authorization_endpoint"])
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": " ".join(SCOPES),
                "state": pending.state,
                "nonce": pending.nonce,
                "acr_values": ACR,
                "code_challenge": create_s256_code_challenge(pending.verifier),
                "code_challenge_method": "S256",
            }
        )
        return f"{endpoint}?{query}", pending

    async def finish(self, pending: PendingSignIn, code: str) -> dict[str, Any]:
        """RFC 6749 §4.1.3 (the code for tokens), OpenID Connect Core §3.1.3.7 (the ID
        token's validation) and §5.3.2 (the signed UserInfo, whose ``sub`` must be the ID
        token's). Returns the verified UserInfo claims."""
        async with self._http() as http:
            meta = await self.metadata(http)
            try:
                token = await http.fetch_token(
                    str(meta["token_endpoint"]),
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=pending.verifier,
                    redirect_uri=self.redirect_uri,
                )
            except OAuthError as exc:
                event(log, "portal.citizen:token_refused", error=str(exc.error)[:64])
                raise _refused(
                    "token_refused",
                    "FranceConnect n'a pas accepté de terminer cette connexion : elle a "
                    "peut-être expiré (elle ne vaut que quelques secondes) ou a déjà servi. "
                    "Recommencez la connexion.",
                ) from exc
            except (httpx.HTTPError, ValueError) as exc:
                raise _unavailable() from exc
            id_token, access_token = token.get("id_token"), token.get("access_token")
            if not isinstance(id_token, str) or not isinstance(access_token, str):
                raise _refused("token_incomplete")
            keys = await self._keys(http, str(meta["jwks_uri"]))
            header, claims = _verify_jws(id_token, keys, expected_typ=None)
            self._check_id_token(claims, pending, access_token, str(header["alg"]))
            try:
                answer = await http.request(
                    "GET",
                    str(meta["userinfo_endpoint"]),
                    headers={"Authorization": f"Bearer {access_token}"},
                    withhold_token=True,
                )
            except httpx.HTTPError as exc:
                raise _unavailable() from exc
            if answer.status_code != 200:
                raise _refused("userinfo_refused")
            _, info = _verify_jws(answer.text, keys, expected_typ=None)
        self._check_userinfo(info, claims)
        return info

    async def _keys(self, http: AsyncOAuth2Client, jwks_uri: str) -> dict[str, ECKey | RSAKey]:
        """RFC 7517 §5: the federation's published signing keys, by ``kid``."""
        try:
            answer = await http.request("GET", jwks_uri, withhold_token=True)
            answer.raise_for_status()
            document = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise _unavailable() from exc
        keys: dict[str, ECKey | RSAKey] = {}
        for jwk in document.get("keys", []) if isinstance(document, dict) else []:
            key = _public_key(jwk)
            if key is not None:
                keys[str(jwk["kid"])] = key
        return keys

    def _check_id_token(
        self, claims: Mapping[str, Any], pending: PendingSignIn, access_token: str, alg: str
    ) -> None:
        """OpenID Connect Core §3.1.3.7: ``iss`` "MUST exactly match", ``aud`` "MUST
        contain" our client id (and ``azp`` be it when there are several), "The current
        time MUST be before" ``exp``, ``nonce`` "MUST" equal the one sent; §3.1.3.8:
        ``at_hash`` matches the access token."""
        now = self.clock.now().timestamp()
        if not _same(claims.get("iss"), self.issuer):
            raise _refused("id_token_issuer")
        audiences = claims.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else audiences
        if not isinstance(audiences, list) or self.client.client_id not in audiences:
            raise _refused("id_token_audience")
        if len(audiences) > 1 and not _same(claims.get("azp"), self.client.client_id):
            raise _refused("id_token_audience")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or isinstance(exp, bool) or exp + CLOCK_LEEWAY <= now:
            raise _refused("id_token_expired")
        if not isinstance(iat, int | float) or isinstance(iat, bool) or iat > now + CLOCK_LEEWAY:
            raise _refused("id_token_iat")
        if not _same(claims.get("nonce"), pending.nonce):
            raise _refused("id_token_nonce")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise _refused("id_token_sub")
        if claims.get("acr") not in ACCEPTED_ACR:
            raise _refused("id_token_acr")
        at_hash = claims.get("at_hash")
        if at_hash is not None and not _same(
            at_hash, (create_half_hash(access_token, alg) or b"").decode("ascii")
        ):
            raise _refused("id_token_at_hash")

    def _check_userinfo(self, info: Mapping[str, Any], id_claims: Mapping[str, Any]) -> None:
        """OpenID Connect Core §5.3.2: a signed UserInfo "SHOULD contain" ``iss`` and
        ``aud`` (FranceConnect sends both: we require them), and "The sub Claim in the
        UserInfo Response MUST be verified to exactly match the sub Claim in the ID Token"."""
        if not _same(info.get("iss"), self.issuer):
            raise _refused("userinfo_issuer")
        audiences = info.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else audiences
        if not isinstance(audiences, list) or self.client.client_id not in audiences:
            raise _refused("userinfo_audience")
        if not _same(info.get("sub"), id_claims.get("sub")):
            raise _refused("userinfo_sub")


def _unavailable() -> SignInRefused:
    return SignInRefused(
        "federation_unavailable",
        "FranceConnect (bac à sable) ne répond pas pour le moment. Réessayez dans quelques "
        "minutes.",
        503,
    )


def _same(value: object, expected: object) -> bool:
    return (
        isinstance(value, str)
        and isinstance(expected, str)
        and hmac.compare_digest(value.encode(), expected.encode())
    )


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _verify_jws(
    token: str, keys: Mapping[str, ECKey | RSAKey], *, expected_typ: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """RFC 7515 §5.2 with RFC 8725 §3.1–3.2: the algorithm is one we allow and the key's
    own (no ``none``, no key confusion), the key is the federation's, by ``kid``."""
    try:
        obj = jws.extract_compact(token.strip().encode("ascii"))
        header = dict(obj.headers())
    except (JoseError, ValueError, TypeError, UnicodeError) as exc:
        raise _refused("jwt_malformed") from exc
    alg = header.get("alg")
    if alg not in ALLOWED_ALGS:
        event(log, "portal.citizen:jwt_refused", reason="alg")
        raise _refused("jwt_alg")
    if expected_typ is not None and str(header.get("typ", "")).lower() != expected_typ:
        raise _refused("jwt_typ")
    key = keys.get(str(header.get("kid", "")))
    if key is None or not _key_fits(key, str(alg)):
        event(log, "portal.citizen:jwt_refused", reason="key")
        raise _refused("jwt_key")
    try:
        valid = jws.validate_compact(obj, key, registry=_REGISTRY)
    except (JoseError, ValueError, TypeError) as exc:
        raise _refused("jwt_signature") from exc
    if not valid:
        event(log, "portal.citizen:jwt_refused", reason="signature")
        raise _refused("jwt_signature")
    try:
        claims = json.loads(obj.payload)
    except (TypeError, ValueError) as exc:
        raise _refused("jwt_malformed") from exc
    if not isinstance(claims, dict):
        raise _refused("jwt_malformed")
    return header, claims


def _public_key(jwk: object) -> ECKey | RSAKey | None:
    """A public signing key we accept (EC P-256, RSA ≥ 2048 bits) with a ``kid``."""
    if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
        return None
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", "ES256") not in ALLOWED_ALGS:
        return None
    try:
        if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            ec = ECKey.import_key(dict(jwk))
            return None if ec.is_private else ec
        if jwk.get("kty") == "RSA":
            rsa = RSAKey.import_key(dict(jwk))
            return None if rsa.is_private or rsa.raw_value.key_size < 2048 else rsa
    except (JoseError, ValueError, TypeError):
        return None
    return None


def _key_fits(key: ECKey | RSAKey, alg: str) -> bool:
    declared = key.get("alg")
    if declared is not None and declared != alg:
        return False
    return (alg == "ES256" and isinstance(key, ECKey)) or (
        alg == "RS256" and isinstance(key, RSAKey)
    )


# --- who the citizen is ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Citizen:
    """The signed-in citizen as the portal keeps them: a pseudonym and a name to show."""

    subject: str
    display_name: str


def pivot_of(info: Mapping[str, Any]) -> IdentityPivot:
    """FranceConnect v2's identity pivot from the verified UserInfo claims."""
    values = {
        name: info.get(name)
        for name in ("given_name", "family_name", "birthdate", "gender", "birthcountry")
    }
    if not all(isinstance(v, str) and v.strip() for v in values.values()):
        raise _refused(
            "pivot_incomplete",
            "FranceConnect n'a pas transmis toute votre identité (prénoms, nom, date, sexe, "
            "lieu et pays de naissance) : nous ne pouvons pas retrouver vos échanges.",
        )
    birthplace = info.get("birthplace") or ""
    if not isinstance(birthplace, str) or (values["birthcountry"] == FRANCE and not birthplace):
        raise _refused(
            "pivot_incomplete", "FranceConnect n'a pas transmis votre lieu de naissance."
        )
    try:
        birthdate = dt.date.fromisoformat(str(values["birthdate"]))
    except ValueError as exc:
        raise _refused("pivot_incomplete") from exc
    return IdentityPivot(
        given_name=str(values["given_name"]),
        family_name=str(values["family_name"]),
        birthdate=birthdate,
        gender=str(values["gender"]),
        birthplace=birthplace,
        birthcountry=str(values["birthcountry"]),
    )


def find_citizen(
    session_factory: sessionmaker[Session], master: MasterSecret, info: Mapping[str, Any]
) -> Citizen:
    """The identity pivot must designate exactly one person of the sandbox store (the
    sandbox federation knows only sandbox citizens); the SPI found becomes its pseudonym
    here and goes no further."""
    pivot = pivot_of(info)
    with session_factory() as session:
        spis = persons_of_pivot(session.connection(), SANDBOX_STORE, pivot)
    if not spis:
        event(log, "portal.citizen:person_not_found")
        raise SignInRefused(
            "person_not_found",
            "Votre identité FranceConnect ne correspond à aucune personne connue du bac à "
            "sable : il n'y a donc aucun échange à vous montrer.",
            404,
        )
    if len(spis) > 1:
        event(log, "portal.citizen:person_ambiguous", count=len(spis))
        raise SignInRefused(
            "person_ambiguous",
            "Votre identité FranceConnect correspond à plusieurs personnes : nous ne pouvons "
            "pas savoir laquelle vous êtes, et ne montrons donc rien.",
            409,
        )
    name = " ".join(f"{pivot.given_name} {pivot.family_name}".split())
    return Citizen(subject=master.pseudonym(spis[0]), display_name=name)


# --- the encrypted cookie ----------------------------------------------------------------


def session_binding(session: SessionData) -> str:
    """What ties the citizen cookie to one portal session (its cookie value's SHA-256)."""
    return hashlib.sha256(session.token.encode()).hexdigest()


class CitizenCookie:
    """The citizen's encrypted cookie: readable only here, bound to one portal session,
    expired after ``exp``; a cookie that fails any of these reads as empty."""

    def __init__(self, master: MasterSecret, clock: Clock) -> None:
        key = bytes.fromhex(master.pseudonym("guichet/portal/citizen-cookie"))
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        self._clock = clock

    def load(self, request: Request, session: SessionData | None) -> dict[str, Any]:
        raw = request.cookies.get(SECURE_COOKIE if is_https(request) else COOKIE)
        if not raw or session is None or len(raw) > 4096:
            return {}
        try:
            data = json.loads(self._fernet.decrypt(raw.encode()))
        except (InvalidToken, ValueError):
            return {}
        if (
            not isinstance(data, dict)
            or not _same(data.get("bind"), session_binding(session))
            or not _number(data.get("exp"))
            or data["exp"] <= self._clock.now().timestamp()
        ):
            return {}
        return data

    def save(
        self,
        request: Request,
        response: Response,
        session: SessionData,
        data: dict[str, Any],
        lifetime: int,
    ) -> None:
        sealed = {
            **data,
            "bind": session_binding(session),
            "exp": int(self._clock.now().timestamp()) + lifetime,
        }
        value = self._fernet.encrypt(json.dumps(sealed, separators=(",", ":")).encode())
        https = is_https(request)
        response.set_cookie(
            SECURE_COOKIE if https else COOKIE,
            value.decode(),
            max_age=lifetime,
            path="/",
            secure=https,
            httponly=True,
            samesite="lax",
        )

    def clear(self, request: Request, response: Response) -> None:
        https = is_https(request)
        response.delete_cookie(
            SECURE_COOKIE if https else COOKIE,
            path="/",
            secure=https,
            httponly=True,
            samesite="lax",
        )

    def decrypt(self, value: str) -> dict[str, Any]:
        """The cookie's content (tests and investigations: what the browser holds)."""
        data = json.loads(self._fernet.decrypt(value.encode()))
        assert isinstance(data, dict)
        return data


# --- the exchanges -----------------------------------------------------------------------

ENVIRONMENT_LABELS: Final = {
    "sandbox": "Bac à sable (données fictives)",
    "production": "Production",
}
# Data released by scopes that are not the tax administration's data scopes.
OTHER_DATA_LABELS: Final = {
    "r2p_identifiant": "Numéro fiscal (SPI)",
    "r2p_etat_civil": "État civil (noms, prénoms, date et lieu de naissance)",
    "r2p_adresse": "Adresse",
}
_IR_RESOURCE_LABELS: Final = {
    "ir_assiettes": "Situation à l'impôt sur le revenu d'une année",
    "ir_assiettes_multiple": "Situations à l'impôt sur le revenu d'une année "
    "(déclarations multiples)",
    "ir_derniere_situation": "Dernière situation à l'impôt sur le revenu connue pour une année",
    "ir_derniere_situation_deuxans": "Dernière situation à l'impôt sur le revenu connue "
    "(la plus récente des deux dernières années)",
    "ir_factures": "Avis d'impôt sur le revenu d'une année (montants et paiements)",
    "ifi_assiettes": "Situation à l'impôt sur la fortune immobilière d'une année",
    "th_principale": "Taxe d'habitation de votre résidence principale",
}
OPERATION_LABELS: Final = {
    **{f"{k}_spi": f"{v}, à partir de votre numéro fiscal" for k, v in _IR_RESOURCE_LABELS.items()},
    **{
        f"{k}_fc": f"{v}, après votre connexion avec FranceConnect"
        for k, v in _IR_RESOURCE_LABELS.items()
    },
    **{
        o.operation: f"{o.label} (offre de service n° {o.number}), après votre connexion avec "
        "FranceConnect"
        for o in OFFERS_OF_SERVICE
    },
    "lep_spi": "Vérification de votre droit au livret d'épargne populaire (LEP), à partir de "
    "votre numéro fiscal",
    "r2p_personne_spi": "Recherche de votre numéro fiscal à partir de votre état civil",
    "r2p_personne_recherche": "Recherche d'une personne par son état civil",
    "r2p_personne": "Lecture de votre état civil et de votre adresse",
    "unknown": "Adresse inconnue de la passerelle",
}


def _error_titles() -> dict[str, str]:
    """Every domain error's stable code → its French title (the refusal in words)."""
    titles: dict[str, str] = {}
    pending: list[type[GuichetError]] = [GuichetError]
    while pending:
        cls = pending.pop()
        titles.setdefault(cls.code, cls.title)
        pending.extend(cls.__subclasses__())
    return titles


@dataclass(frozen=True, slots=True)
class Exchange:
    """One journal record about the citizen, in words."""

    record_id: str
    at: dt.datetime  # UTC
    when: str  # Europe/Paris, dd/mm/yyyy à HH:MM:SS
    environment: str
    partner: str
    demarche: str
    api: str
    operation: str
    data: tuple[str, ...]
    served: bool
    outcome: str
    reason: str | None
    correlation_id: str

    def row(self) -> dict[str, Any]:
        """The exchange as one download row (CSV and JSON share the columns)."""
        return {
            "date": self.at.astimezone(PARIS).isoformat(timespec="seconds"),
            "environnement": self.environment,
            "partenaire": self.partner,
            "demarche": self.demarche,
            "api": self.api,
            "operation": self.operation,
            "donnees_transmises": list(self.data),
            "resultat": self.outcome,
            "motif": self.reason or "",
            "identifiant_echange": self.record_id,
            "identifiant_correlation": self.correlation_id,
        }


DOWNLOAD_COLUMNS: Final = (
    "date",
    "environnement",
    "partenaire",
    "demarche",
    "api",
    "operation",
    "donnees_transmises",
    "resultat",
    "motif",
    "identifiant_echange",
    "identifiant_correlation",
)


@dataclass(frozen=True, slots=True)
class ExchangePage:
    exchanges: list[Exchange]
    page: int
    pages: int
    total: int


class ExchangeHistory:
    """The journal as one citizen may read it: only the records whose ``subject`` is their
    pseudonym, newest first, in words."""

    def __init__(self, session_factory: sessionmaker[Session], page_size: int = PAGE_SIZE):
        self.session_factory = session_factory
        self.page_size = page_size
        self._reasons = _error_titles()

    def page(self, subject: str, page: int) -> ExchangePage:
        with self.session_factory() as session:
            total = session.scalar(
                select(func.count())
                .select_from(JournalRecord)
                .where(JournalRecord.subject == subject)
            )
            count = int(total or 0)
            pages = max(1, -(-count // self.page_size))
            page = min(max(1, page), pages)
            rows = session.scalars(
                select(JournalRecord)
                .where(JournalRecord.subject == subject)
                .order_by(JournalRecord.seq.desc())
                .limit(self.page_size)
                .offset((page - 1) * self.page_size)
            ).all()
            exchanges = self._describe(session, rows)
        return ExchangePage(exchanges, page, pages, count)

    def all(self, subject: str) -> list[Exchange]:
        with self.session_factory() as session:
            rows = session.scalars(
                select(JournalRecord)
                .where(JournalRecord.subject == subject)
                .order_by(JournalRecord.seq.desc())
            ).all()
            return self._describe(session, rows)

    def _describe(self, session: Session, rows: Sequence[JournalRecord]) -> list[Exchange]:
        """Partner and démarche from the habilitation (→ its organisation), else from the
        record's partner (organisation) id."""
        hab_ids = {r.habilitation_id for r in rows if r.habilitation_id is not None}
        org_ids = {r.partner_id for r in rows if r.partner_id is not None}
        habs: dict[uuid.UUID, tuple[str, str]] = {}
        if hab_ids:
            for hab_id, demarche, org_name in session.execute(
                select(Habilitation.id, Habilitation.demarche, Organisation.name)
                .join(Organisation, Organisation.id == Habilitation.organisation_id)
                .where(Habilitation.id.in_(hab_ids))
            ):
                habs[hab_id] = (org_name, demarche)
        orgs: dict[uuid.UUID, str] = {}
        if org_ids:
            for org_id, org_name in session.execute(
                select(Organisation.id, Organisation.name).where(Organisation.id.in_(org_ids))
            ):
                orgs[org_id] = org_name
        return [self._exchange(r, habs, orgs) for r in rows]

    def _exchange(
        self,
        record: JournalRecord,
        habs: Mapping[uuid.UUID, tuple[str, str]],
        orgs: Mapping[uuid.UUID, str],
    ) -> Exchange:
        partner, demarche = "Partenaire non identifié", "Non précisée"
        if record.habilitation_id is not None and record.habilitation_id in habs:
            partner, demarche = habs[record.habilitation_id]
        elif record.partner_id is not None and record.partner_id in orgs:
            partner = orgs[record.partner_id]
        product = PRODUCTS.get(record.api or "")
        op_name = record.operation.split(" ", 1)[-1]
        served = record.outcome == "ok"
        at = record.at if record.at.tzinfo else record.at.replace(tzinfo=dt.UTC)
        return Exchange(
            record_id=str(record.id),
            at=at.astimezone(dt.UTC),
            when=at.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M:%S"),
            environment=ENVIRONMENT_LABELS.get(record.environment, record.environment),
            partner=partner,
            demarche=demarche,
            api=product.name if product else (record.api or "API inconnue"),
            operation=OPERATION_LABELS.get(op_name, op_name),
            data=tuple(
                CATALOGUE_LABELS.get(s) or OTHER_DATA_LABELS.get(s) or s for s in record.data_scopes
            )
            if served
            else (),
            served=served,
            outcome="Données transmises" if served else "Refusé : aucune donnée transmise",
            reason=None
            if served
            else self._reasons.get(record.outcome, f"Motif technique « {record.outcome} »"),
            correlation_id=record.correlation_id,
        )


# What makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection"); leading
# spaces are skipped by some spreadsheets before they look.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")


def spreadsheet_cell(value: str) -> str:
    """``value`` as a CSV cell no spreadsheet evaluates: a leading trigger gets a ``'``
    (organisation names and démarches are the partners' own words)."""
    return f"'{value}" if value.lstrip(" ").startswith(FORMULA_TRIGGERS) else value


def exchanges_csv(exchanges: Sequence[Exchange]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(DOWNLOAD_COLUMNS)
    for exchange in exchanges:
        row = exchange.row()
        writer.writerow(
            spreadsheet_cell("; ".join(row[c]) if isinstance(row[c], list) else str(row[c]))
            for c in DOWNLOAD_COLUMNS
        )
    return out.getvalue()


def exchanges_json(exchanges: Sequence[Exchange]) -> str:
    return json.dumps([e.row() for e in exchanges], ensure_ascii=False, indent=2) + "\n"


# --- the space, as the portal holds it ------------------------------------------------------


@dataclass
class CitizenSpace:
    """What the citizen's pages need; ``relying_party`` is None until ``guichet init`` has
    registered the portal at the federation (then the pages say it is not configured)."""

    session_factory: sessionmaker[Session]
    master: MasterSecret
    clock: Clock
    issuer: str
    redirect_uri: str
    data_dir: Path
    transport: httpx.AsyncBaseTransport | None = None
    history: ExchangeHistory = field(init=False)
    cookie: CitizenCookie = field(init=False)
    _party: FederationRelyingParty | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.history = ExchangeHistory(self.session_factory)
        self.cookie = CitizenCookie(self.master, self.clock)

    @classmethod
    def from_runtime(
        cls,
        runtime: Runtime,
        *,
        issuer: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> CitizenSpace:
        settings = runtime.settings
        return cls(
            session_factory=runtime.session_factory,
            master=runtime.master,
            clock=runtime.clock,
            issuer=(issuer or settings.embedded_federation_url).rstrip("/"),
            redirect_uri=f"{settings.resolved_portal_url}{CALLBACK_PATH}",
            data_dir=settings.data_dir,
            transport=transport,
        )

    def relying_party(self) -> FederationRelyingParty | None:
        """The relying party, once the portal's credentials exist (read when they appear)."""
        if self._party is None:
            client = load_portal_client(self.data_dir)
            if client is not None:
                self._party = FederationRelyingParty(
                    self.issuer, client, self.redirect_uri, self.clock, transport=self.transport
                )
        return self._party


def space(request: Request) -> CitizenSpace:
    found = request.app.state.citizen
    assert isinstance(found, CitizenSpace)
    return found


async def signed_in(request: Request) -> Citizen | None:
    data = space(request).cookie.load(request, await current_session(request))
    subject, name = data.get("subject"), data.get("name")
    if isinstance(subject, str) and isinstance(name, str) and subject:
        return Citizen(subject, name)
    return None


# --- routes ---------------------------------------------------------------------------------


async def _error(
    request: Request, title: str, message: str, status: int, code: str | None = None
) -> Response:
    return await render(
        request, "citizen/error.html", status_code=status, title=title, message=message, code=code
    )


async def home(request: Request) -> Response:
    return await render(
        request,
        "citizen/home.html",
        configured=space(request).relying_party() is not None,
        citizen=await signed_in(request),
        signed_out=request.query_params.get("deconnecte") == "1",
    )


async def sign_in(request: Request) -> Response:
    """Starts the sign-in: a new pending request in the cookie, then to the federation."""
    party = space(request).relying_party()
    if party is None:
        return await render(
            request, "citizen/home.html", status_code=503, configured=False, citizen=None
        )
    session = await ensure_session(request)
    try:
        url, pending = await party.start()
    except SignInRefused as exc:
        return await _error(request, "Connexion impossible", exc.message, exc.status, exc.code)
    except Exception as exc:  # never a traceback to the citizen
        event(log, "portal.citizen:start_failed", logging.ERROR, error=type(exc).__name__)
        return await _error(
            request,
            "Connexion impossible",
            "Une erreur technique empêche la connexion. Réessayez dans quelques minutes.",
            500,
        )
    response = RedirectResponse(url, status_code=302)
    space(request).cookie.save(
        request, response, session, {"flow": pending.as_dict()}, FLOW_LIFETIME
    )
    event(log, "portal.citizen:sign_in_started")
    return finish(request, response)


async def callback(request: Request) -> Response:
    """OpenID Connect Core §3.1.2.5–7: the federation's answer. Whatever happens, the
    pending request is spent (the cookie is replaced or cleared)."""
    citizen_space = space(request)
    session = await current_session(request)
    data = citizen_space.cookie.load(request, session)
    pending = PendingSignIn.of(data.get("flow"))
    try:
        citizen = await _complete(request, citizen_space, pending)
    except SignInRefused as exc:
        event(log, "portal.citizen:sign_in_refused", code=exc.code)
        title = "Connexion annulée" if exc.code == "access_denied" else "Connexion impossible"
        response = await _error(request, title, exc.message, exc.status, exc.code)
        citizen_space.cookie.clear(request, response)
        return response
    except Exception as exc:  # never a traceback to the citizen
        event(log, "portal.citizen:sign_in_failed", logging.ERROR, error=type(exc).__name__)
        response = await _error(
            request,
            "Connexion impossible",
            "Une erreur technique a interrompu la connexion. Recommencez dans quelques minutes.",
            500,
        )
        citizen_space.cookie.clear(request, response)
        return response
    assert session is not None  # _complete needs a pending request, bound to a session
    sessions = deps(request).sessions
    if session.user_id is None:
        # A new anonymous session, a new CSRF token: no fixation of the previous one.
        await run_in_threadpool(sessions.destroy, session.token)
        session = await run_in_threadpool(sessions.create)
        use_session(request, session)
    response = RedirectResponse(EXCHANGES_PATH, status_code=303)
    citizen_space.cookie.save(
        request,
        response,
        session,
        {"subject": citizen.subject, "name": citizen.display_name},
        SIGNED_IN_LIFETIME,
    )
    event(log, "portal.citizen:signed_in")
    return finish(request, response)


async def _complete(
    request: Request, citizen_space: CitizenSpace, pending: PendingSignIn | None
) -> Citizen:
    party = citizen_space.relying_party()
    if party is None:
        raise SignInRefused("not_configured", "Ce service n'est pas configuré sur ce guichet.", 503)
    params = request.query_params
    if any(len(params.getlist(name)) > 1 for name in params):
        raise _refused("parameter_repeated")
    if pending is None:
        raise SignInRefused(
            "no_pending_sign_in",
            "Votre demande de connexion a expiré ou a déjà servi. Recommencez depuis la page "
            "« Qui a consulté mes données ».",
        )
    if not _same(params.get("state"), pending.state):
        event(log, "portal.citizen:state_mismatch")
        raise SignInRefused(
            "state_mismatch",
            "Cette réponse ne correspond pas à la connexion que vous avez demandée depuis ce "
            "navigateur : par prudence, elle est ignorée. Recommencez la connexion.",
        )
    if params.get("error"):
        if params["error"] == "access_denied":
            raise SignInRefused(
                "access_denied",
                "Vous avez annulé la connexion avec FranceConnect : rien n'a été transmis.",
            )
        raise _refused("authorization_error")
    code = params.get("code")
    if not code or len(code) > 512:
        raise _refused("code_missing")
    info = await party.finish(pending, code)
    return await run_in_threadpool(
        find_citizen, citizen_space.session_factory, citizen_space.master, info
    )


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() and len(raw) <= 6 else 1


async def exchanges(request: Request) -> Response:
    citizen = await signed_in(request)
    if citizen is None:
        return redirect(request, HOME_PATH)
    found = await run_in_threadpool(
        space(request).history.page, citizen.subject, min(_page_number(request), MAX_PAGE)
    )
    return await render(request, "citizen/exchanges.html", form=True, citizen=citizen, page=found)


async def download_csv(request: Request) -> Response:
    return await _download(request, "csv")


async def download_json(request: Request) -> Response:
    return await _download(request, "json")


async def _download(request: Request, fmt: str) -> Response:
    """The citizen's own records, whole: the subject comes from their cookie, nothing else."""
    citizen = await signed_in(request)
    if citizen is None:
        return redirect(request, HOME_PATH)
    found = await run_in_threadpool(space(request).history.all, citizen.subject)
    event(log, "portal.citizen:download", format=fmt, records=len(found))
    if fmt == "csv":
        body, media = exchanges_csv(found), "text/csv; charset=utf-8"
    else:
        body, media = exchanges_json(found), "application/json"
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="mes-echanges.{fmt}"'},
    )


@csrf_protected
async def sign_out(request: Request, _: FormData, session: SessionData) -> Response:
    """Forgets the citizen: the cookie goes, and an anonymous portal session with it."""
    if session.user_id is None:
        await run_in_threadpool(deps(request).sessions.destroy, session.token)
        use_session(request, None)
    response = RedirectResponse(f"{HOME_PATH}?deconnecte=1", status_code=303)
    space(request).cookie.clear(request, response)
    event(log, "portal.citizen:signed_out")
    return finish(request, response)


ROUTES: Final = [
    Route(HOME_PATH, home, methods=["GET"]),
    Route("/mes-donnees/connexion", sign_in, methods=["GET"]),
    Route(CALLBACK_PATH, callback, methods=["GET"]),
    Route(EXCHANGES_PATH, exchanges, methods=["GET"]),
    Route(f"{EXCHANGES_PATH}.csv", download_csv, methods=["GET"]),
    Route(f"{EXCHANGES_PATH}.json", download_json, methods=["GET"]),
    Route("/mes-donnees/deconnexion", sign_out, methods=["POST"]),
]
