"""The data provider's check of a citizen's federation access token (FranceConnect v2
``/checktoken``), answered as a signed, and when a decryption key is configured signed then
encrypted, JWT introspection response (RFC 9701).

``FederationCheck`` is the seam: ``HttpFederationCheck`` talks to the configured federation
(the embedded sandbox federation by default, the real FranceConnect by configuration — same
code, other URL and credentials); tests drive it against the real sandbox federation app.
Every refusal is a domain error: no data is ever released without a verified, active answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

from guichet import jose
from guichet.clock import Clock
from guichet.errors import Unauthenticated, UpstreamUnavailable
from guichet.federation.pivot import IdentityPivot
from guichet.logs import event
from guichet.settings import Settings

log = logging.getLogger(__name__)

# RFC 9701 §5: "the media type application/token-introspection+jwt"; the JOSE header's
# ``typ`` is that media type without its "application/" prefix (RFC 7515 §4.1.9).
INTROSPECTION_MEDIA_TYPE: Final = "application/token-introspection+jwt"
INTROSPECTION_TYP: Final = "token-introspection+jwt"
# FranceConnect v2 signs with ES256 or RS256. Nothing else is accepted: not ``none``, not
# HS256 keyed with a public key (key confusion), not a family the key does not belong to.
ALLOWED_ALGS: Final = ("ES256", "RS256")
SIGNATURE: Final = jose.SignaturePolicy(
    ALLOWED_ALGS, frozenset({INTROSPECTION_TYP, INTROSPECTION_MEDIA_TYPE})
)
RETRY_AFTER: Final = 30  # seconds a caller waits after a federation outage
CLOCK_LEEWAY: Final = 60  # seconds of skew tolerated on the answer's ``iat``
MAX_ANSWER_AGE: Final = 300  # an older answer is not a fresh answer to this request
CLAIMS: Final = jose.ClaimRules(
    checked=("iss", "aud", "iat"), required=("iss", "aud", "iat"), leeway=CLOCK_LEEWAY
)
JWKS_REFRESH_INTERVAL: Final = 30  # an unknown ``kid`` refetches the JWKS at most this often
FRANCE: Final = "99100"
# RFC 9701 §5 nested JWT, as FranceConnect encrypts to a data provider's key: ECDH-ES for
# an EC P-256 key, RSA-OAEP-256 for an RSA key, A256GCM content. Nothing else: not ``dir``
# (a key shared with nobody), not RSA1_5, no compression.
DECRYPTION_ALGS: Final = {"EC": "ECDH-ES", "RSA": "RSA-OAEP-256"}
CONTENT_ENCRYPTION: Final = "A256GCM"
MIN_RSA_BITS: Final = 2048
# FranceConnect v2's authentication levels (eIDAS low, substantial, high): a token whose
# ``acr`` is not one of them — absent, ``eidas0``, anything else — gives no data.
ACCEPTED_ACR: Final = frozenset({"eidas1", "eidas2", "eidas3"})


class FederationTokenMissing(Unauthenticated):
    code = "federation_token_missing"
    title = "Jeton FranceConnect absent"


class FederationTokenInvalid(Unauthenticated):
    code = "federation_token_invalid"
    title = "Jeton FranceConnect inactif, expiré ou inconnu"


class FederationAcrInsufficient(Unauthenticated):
    """The citizen signed in below the eIDAS "low" level (or the answer names no level):
    FranceConnect's data providers serve ``eidas1`` and above only."""

    code = "federation_acr_insufficient"
    title = "Niveau d'authentification FranceConnect insuffisant"


class FederationAnswerInvalid(UpstreamUnavailable):
    """The federation answered something we cannot trust (bad signature, issuer, audience…):
    treated as an outage of the federation — no data without a verified check."""

    code = "federation_answer_invalid"
    title = "Réponse du fournisseur d'identité invalide"


@dataclass(frozen=True, slots=True)
class FederationIdentity:
    """An active federation token, as the federation described it (RFC 7662 §2.2 members)."""

    active: bool
    sub: str
    scopes: frozenset[str]
    client_id: str  # the service provider (partner) the token was issued to
    acr: str  # eidas1, eidas2 or eidas3 (ACCEPTED_ACR)
    exp: dt.datetime
    pivot: IdentityPivot


class FederationCheck(Protocol):
    """Checks a citizen's federation access token; raises a domain error when it must not
    be trusted (inactive → ``FederationTokenInvalid``; outage → ``UpstreamUnavailable``)."""

    async def check(self, token: str) -> FederationIdentity: ...


def token_key(token: str) -> str:
    """The cache key of a token: its SHA-256, so the cache never holds a usable token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class FederationConfig:
    checktoken_url: str
    jwks_url: str
    issuer: str
    client_id: str | None  # the provider's data-provider credentials at the federation
    client_secret: str | None
    timeout: float = 3.0
    # The provider's private key the federation encrypts its answers to; when set, an answer
    # that is not encrypted is refused (no downgrade to a plain signed answer).
    decryption_key: ECKey | RSAKey | None = None


class HttpFederationCheck:
    """``FederationCheck`` over HTTP: ``POST /checktoken``, RFC 9701 verification, a cache.

    Answers are cached in memory, keyed by ``token_key``, until the token's ``exp``: a burst
    of calls for one citizen costs one check (concurrent calls for one token share it).
    The cache is per process; a token revoked at the federation stays usable here until its
    ``exp`` (60 seconds on FranceConnect).
    """

    def __init__(
        self,
        config: FederationConfig,
        clock: Clock,
        *,
        client: httpx.AsyncClient | None = None,
        max_entries: int = 10_000,
    ) -> None:
        self.config = config
        self._clock = clock
        self._client = client
        self._owns_client = client is None
        self._max_entries = max_entries
        self._answers: OrderedDict[str, FederationIdentity] = OrderedDict()
        self._pending: dict[str, asyncio.Future[FederationIdentity]] = {}
        self._keys = KeySet([])
        self._jwks_fetched_at: float | None = None
        self.checks_sent = 0  # federation round trips, for metrics and tests

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.config.timeout)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    # cache -------------------------------------------------------------------------------

    def _cached(self, key: str) -> FederationIdentity | None:
        found = self._answers.get(key)
        if found is None:
            return None
        if found.exp <= self._clock.now():
            del self._answers[key]
            return None
        self._answers.move_to_end(key)
        return found

    def _remember(self, key: str, identity: FederationIdentity) -> None:
        self._answers[key] = identity
        self._answers.move_to_end(key)
        while len(self._answers) > self._max_entries:
            self._answers.popitem(last=False)

    async def check(self, token: str) -> FederationIdentity:
        if not token:
            raise FederationTokenMissing("En-tête X-FranceConnect-OAuth attendu.")
        key = token_key(token)
        cached = self._cached(key)
        if cached is not None:
            return cached
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[FederationIdentity] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            identity = await self._check_remote(token)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        else:
            future.set_result(identity)
            self._remember(key, identity)
            return identity
        finally:
            del self._pending[key]

    # the round trip ----------------------------------------------------------------------

    async def _check_remote(self, token: str) -> FederationIdentity:
        """FranceConnect v2 data-provider check: form ``token``, ``client_id``,
        ``client_secret``; RFC 9701 §4: "the resource server … requests a JWT response by
        sending an introspection request with an Accept HTTP header field set to
        application/token-introspection+jwt"."""
        cfg = self.config
        if not cfg.client_id or not cfg.client_secret:
            event(log, "federation_check:not_configured", logging.ERROR)
            raise UpstreamUnavailable(
                "La vérification FranceConnect n'est pas configurée sur cet environnement.",
                retry_after=RETRY_AFTER,
            )
        self.checks_sent += 1
        try:
            response = await self.client.post(
                cfg.checktoken_url,
                data={
                    "token": token,
                    "client_id": cfg.client_id,
                    "client_secret": cfg.client_secret,
                },
                headers={"Accept": INTROSPECTION_MEDIA_TYPE},
                timeout=cfg.timeout,
            )
        except httpx.HTTPError as exc:
            event(log, "federation_check:unreachable", logging.WARNING, error=type(exc).__name__)
            raise UpstreamUnavailable(
                "Le fournisseur d'identité ne répond pas : aucune donnée n'est transmise.",
                retry_after=RETRY_AFTER,
            ) from exc
        if response.status_code != 200:
            level = logging.ERROR if response.status_code in (400, 401) else logging.WARNING
            event(log, "federation_check:refused", level, status=response.status_code)
            raise UpstreamUnavailable(
                "Le fournisseur d'identité n'a pas pu vérifier le jeton : "
                "aucune donnée n'est transmise.",
                retry_after=RETRY_AFTER,
            )
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != INTROSPECTION_MEDIA_TYPE:
            raise _bad_answer(f"type de contenu {media_type or 'absent'}")
        claims = await self.verify(response.text)
        return self._identity(claims)

    # RFC 9701 verification ----------------------------------------------------------------

    async def verify(self, answer: str) -> dict[str, Any]:
        """RFC 9701 §5–6: the answer is a JWS whose ``typ`` is ``token-introspection+jwt``,
        signed by the federation ("The AS MUST sign the JWT"), with ``iss`` (the federation),
        ``aud`` (this data provider's client id), ``iat`` and ``token_introspection``.
        "The RS MUST … validate the signature" — with a key of the federation's JWKS, by
        ``kid``, in an allowed algorithm whose family matches the key's. With a decryption
        key configured, "the JWT is … signed and encrypted … a Nested JWT": decrypted
        first, and an answer that is not encrypted is refused."""
        compact = answer.strip()
        parts = compact.count(".") + 1
        if self.config.decryption_key is not None:
            if parts != 5:
                raise _bad_answer("réponse non chiffrée, une réponse chiffrée est attendue")
            compact = self._decrypt(compact, self.config.decryption_key)
        elif parts == 5:
            raise _bad_answer("réponse chiffrée mais aucune clé de déchiffrement configurée")
        try:
            unverified = jose.read_jws(compact, SIGNATURE)
            if not jose.has_key(self._keys, unverified.kid):
                await self._refresh_keys()
            claims = jose.verify_signature(unverified, self._keys).claims
        except jose.JoseRefused as exc:
            raise _bad_answer(_signature_refused(exc)) from exc
        self._check_claims(claims)
        return claims

    @staticmethod
    def _decrypt(compact: str, key: ECKey | RSAKey) -> str:
        """RFC 7516 §5.2 decryption of the outer JWE, RFC 8725 §3.1: only the algorithm of
        our key's family (``ECDH-ES`` or ``RSA-OAEP-256``) and ``A256GCM``; ``cty``, when
        present, ``JWT`` (RFC 7519 §5.2) and ``typ``, when present, the answer's."""
        expected = DECRYPTION_ALGS["EC" if isinstance(key, ECKey) else "RSA"]
        try:
            return jose.decrypt_jwe(
                compact,
                key,
                algorithm=expected,
                encryption=CONTENT_ENCRYPTION,
                types=SIGNATURE.types,
            )
        except jose.JoseRefused as exc:
            raise _bad_answer(_decryption_refused(exc)) from exc

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        """RFC 9701 §5: ``iss`` the federation, ``aud`` this data provider, ``iat`` at most
        ``CLOCK_LEEWAY`` ahead and ``MAX_ANSWER_AGE`` behind, a ``token_introspection``."""
        if self.config.client_id is None:
            raise _bad_answer("destinataire inattendu")
        now = self._clock.now()
        try:
            jose.check_claims(
                claims, CLAIMS, now=now, issuer=self.config.issuer, audience=self.config.client_id
            )
        except jose.JoseRefused as exc:
            raise _bad_answer(_claim_refused(exc)) from exc
        if claims["iat"] < now.timestamp() - MAX_ANSWER_AGE:
            raise _bad_answer("réponse hors délai")
        if not isinstance(claims.get("token_introspection"), dict):
            raise _bad_answer("token_introspection absent")

    def _identity(self, claims: Mapping[str, Any]) -> FederationIdentity:
        """RFC 7662 §2.2 members of ``token_introspection``; "active" false alone for a token
        that is not usable. A token past its ``exp`` is inactive whatever the answer says."""
        body: Mapping[str, Any] = claims["token_introspection"]
        if body.get("active") is not True:
            event(log, "federation_check:inactive")
            raise FederationTokenInvalid(
                "Le jeton FranceConnect est inactif, expiré ou inconnu du fournisseur d'identité."
            )
        exp = body.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise _bad_answer("exp absent")
        expires = dt.datetime.fromtimestamp(exp, dt.UTC)
        if expires <= self._clock.now():
            raise FederationTokenInvalid("Le jeton FranceConnect a expiré.")
        sub, scope, client_id = body.get("sub"), body.get("scope"), body.get("client_id")
        if not (isinstance(sub, str) and sub and isinstance(scope, str)):
            raise _bad_answer("sub ou scope absent")
        if not isinstance(client_id, str) or not client_id:
            raise _bad_answer("client_id absent")
        acr = body.get("acr")
        if acr not in ACCEPTED_ACR:
            event(
                log,
                "federation_check:acr_refused",
                client_id=client_id,
                acr=acr if isinstance(acr, str) else None,
            )
            raise FederationAcrInsufficient(
                "Le jeton FranceConnect atteste un niveau d'authentification inférieur à "
                "eidas1 (ou n'en atteste aucun) : aucune donnée n'est transmise."
            )
        identity = FederationIdentity(
            active=True,
            sub=sub,
            scopes=frozenset(scope.split()),
            client_id=client_id,
            acr=str(acr),
            exp=expires,
            pivot=_pivot(body),
        )
        event(log, "federation_check:active", client_id=client_id)
        return identity

    # keys --------------------------------------------------------------------------------

    async def _refresh_keys(self) -> None:
        """RFC 7517: an unknown ``kid`` refetches the federation's JWKS, at most every
        ``JWKS_REFRESH_INTERVAL`` seconds (rotation); an answer still under an unknown
        ``kid`` is then refused."""
        now = self._clock.now().timestamp()
        fetched = self._jwks_fetched_at
        if fetched is None or now - fetched >= JWKS_REFRESH_INTERVAL:
            await self._fetch_jwks()

    async def _fetch_jwks(self) -> None:
        try:
            response = await self.client.get(self.config.jwks_url, timeout=self.config.timeout)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            event(log, "federation_check:jwks_unavailable", logging.WARNING)
            raise UpstreamUnavailable(
                "Les clés du fournisseur d'identité sont indisponibles : "
                "aucune donnée n'est transmise.",
                retry_after=RETRY_AFTER,
            ) from exc
        self._jwks_fetched_at = self._clock.now().timestamp()
        published = document.get("keys", []) if isinstance(document, dict) else []
        self._keys = jose.signing_keys(published, SIGNATURE)
        event(log, "federation_check:jwks_loaded", keys=len(self._keys.keys))


_SIGNATURE_REFUSED: Final = {
    jose.Refusal.MALFORMED: "JWS compact attendu",
    jose.Refusal.TYPE: "typ token-introspection+jwt attendu",
    jose.Refusal.MISSING_KEY_ID: "kid absent",
    jose.Refusal.UNKNOWN_KEY: "clé de signature inconnue",
    jose.Refusal.KEY_MISMATCH: "clé d'une autre famille que l'algorithme",
    jose.Refusal.PAYLOAD: "contenu illisible",
}
_DECRYPTION_REFUSED: Final = {
    jose.Refusal.MALFORMED: "JWE compact attendu",
    jose.Refusal.COMPRESSION: "compression refusée",
    jose.Refusal.CONTENT_TYPE: "cty JWT attendu",
    jose.Refusal.TYPE: "typ token-introspection+jwt attendu",
}
_CLAIM_REFUSED: Final = {"iss": "émetteur inattendu", "aud": "destinataire inattendu"}


def _signature_refused(exc: jose.JoseRefused) -> str:
    if exc.refusal is jose.Refusal.ALGORITHM:
        return f"algorithme {exc.value!r} refusé"
    return _SIGNATURE_REFUSED.get(exc.refusal, "signature invalide")


def _decryption_refused(exc: jose.JoseRefused) -> str:
    if exc.refusal is jose.Refusal.ENCRYPTION_ALGORITHM:
        return f"algorithme de chiffrement {exc.value!r} refusé"
    if exc.refusal is jose.Refusal.CONTENT_ENCRYPTION:
        return f"chiffrement de contenu {exc.value!r} refusé"
    return _DECRYPTION_REFUSED.get(exc.refusal, "déchiffrement impossible")


def _claim_refused(exc: jose.JoseRefused) -> str:
    if exc.claim in _CLAIM_REFUSED:
        return _CLAIM_REFUSED[exc.claim]
    if exc.refusal is jose.Refusal.ISSUED_IN_FUTURE:
        return "réponse hors délai"
    return "iat absent"


def _pivot(body: Mapping[str, Any]) -> IdentityPivot:
    """FranceConnect v2 identity pivot: ``given_name``, ``family_name``, ``birthdate``
    (YYYY-MM-DD), ``gender``, ``birthplace`` (COG, required when born in France),
    ``birthcountry`` (COG)."""
    values = {
        name: body.get(name)
        for name in ("given_name", "family_name", "birthdate", "gender", "birthcountry")
    }
    if not all(isinstance(v, str) and v.strip() for v in values.values()):
        raise _bad_answer("identité pivot incomplète")
    birthplace = body.get("birthplace") or ""
    if not isinstance(birthplace, str) or (values["birthcountry"] == FRANCE and not birthplace):
        raise _bad_answer("lieu de naissance absent")
    try:
        birthdate = dt.date.fromisoformat(str(values["birthdate"]))
    except ValueError as exc:
        raise _bad_answer("date de naissance invalide") from exc
    if values["gender"] not in ("male", "female"):
        raise _bad_answer("sexe invalide")
    return IdentityPivot(
        given_name=str(values["given_name"]),
        family_name=str(values["family_name"]),
        birthdate=birthdate,
        gender=str(values["gender"]),
        birthplace=birthplace,
        birthcountry=str(values["birthcountry"]),
    )


def _bad_answer(reason: str) -> FederationAnswerInvalid:
    event(log, "federation_check:answer_refused", logging.WARNING, reason=reason)
    return FederationAnswerInvalid(
        f"Réponse du fournisseur d'identité refusée ({reason}) : aucune donnée n'est transmise.",
        retry_after=RETRY_AFTER,
    )


def from_settings(settings: Settings, clock: Clock) -> HttpFederationCheck:
    """The check configured by ``guichet.settings.Settings`` (``federation_*``); without
    explicit credentials, those ``guichet init`` registered at the embedded federation."""
    issuer, checktoken_url, jwks_url = settings.federation_urls
    client_id, client_secret = settings.federation_client_id, settings.federation_client_secret
    if client_id is None:
        stored = data_provider_credentials(settings.data_dir)
        if stored is not None:
            client_id, client_secret = stored
    key_file = settings.federation_decryption_key_file
    if key_file is None and settings.federation_client_id is None:
        embedded = settings.data_dir / "federation" / DECRYPTION_KEY_FILE
        key_file = embedded if embedded.exists() else None
    return HttpFederationCheck(
        FederationConfig(
            checktoken_url=checktoken_url,
            jwks_url=jwks_url,
            issuer=issuer,
            client_id=client_id,
            client_secret=client_secret,
            timeout=settings.federation_timeout,
            decryption_key=load_decryption_key(key_file) if key_file is not None else None,
        ),
        clock,
    )


DECRYPTION_KEY_FILE: Final = "data-provider-key.pem"  # under DATA_DIR/federation/


def load_decryption_key(path: Path) -> ECKey | RSAKey:
    """The provider's private decryption key from a PEM file: EC P-256 or RSA ≥ 2048 bits.
    A file that holds anything else is a configuration error (``ValueError``)."""
    data = path.read_bytes()
    for family in (ECKey, RSAKey):
        try:
            key = family.import_key(data)
        except (JoseError, ValueError, TypeError):
            continue
        if not key.is_private:
            raise ValueError(f"{path}: a public key; the private decryption key is expected")
        if isinstance(key, ECKey) and key.curve_name != "P-256":
            raise ValueError(f"{path}: an EC decryption key is on P-256")
        if isinstance(key, RSAKey) and key.raw_value.key_size < MIN_RSA_BITS:
            raise ValueError(f"{path}: an RSA decryption key has at least {MIN_RSA_BITS} bits")
        return key
    raise ValueError(f"{path}: not a PEM EC P-256 or RSA private key")


def data_provider_credentials(data_dir: Path) -> tuple[str, str] | None:
    """The gateway's data-provider credentials at the embedded federation, if registered."""
    path = data_dir / "federation" / "data-provider.json"
    if not path.exists():
        return None
    stored = json.loads(path.read_text())
    return str(stored["client_id"]), str(stored["client_secret"])
