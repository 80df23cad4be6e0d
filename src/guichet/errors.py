"""Domain errors: each has a stable ``code``; one handler turns them into RFC 9457 problems.

Where the provider's interface documents a numeric application code for a refusal (e.g. LEP's
``codeapp`` 4001, 4031, 4101), the error carries it too: the problem+json body then has a
``codeapp`` member, so a client written for the provider finds it, and ``code`` stays."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar


class GuichetError(Exception):
    """A refusal or failure the caller is told about; never carries personal data."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Erreur technique"

    def __init__(
        self,
        detail: str | None = None,
        *,
        field: str | None = None,
        retry_after: int | None = None,
        codeapp: int | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.field = field
        self.retry_after = retry_after
        self.codeapp = codeapp  # the provider's numeric application code, when it has one


@contextmanager
def codeapp(code: int) -> Iterator[None]:
    """Gives ``code`` as its ``codeapp`` to a domain error raised inside the block that has
    none yet: the provider documents some refusals by a numeric code (e.g. LEP's 4001 for
    an SPI in the wrong format), while the checks raising them are shared."""
    try:
        yield
    except GuichetError as exc:
        if exc.codeapp is None:
            exc.codeapp = code
        raise


# 400 — bad input
class BadRequest(GuichetError):
    status = 400
    code = "invalid_request"
    title = "Requête invalide"


class CorrelationIdInvalid(BadRequest):
    code = "correlation_id_invalid"
    title = "En-tête X-Correlation-ID absent ou invalide"


class ParameterInvalid(BadRequest):
    code = "parameter_invalid"
    title = "Paramètre invalide"


class SpiInvalid(BadRequest):
    code = "spi_invalid"
    title = "Numéro SPI invalide"


# 401 — who are you
class Unauthenticated(GuichetError):
    status = 401
    code = "unauthenticated"
    title = "Authentification requise"


class CertificateMissing(Unauthenticated):
    code = "certificate_missing"
    title = "Certificat client absent"


class CertificateInvalid(Unauthenticated):
    code = "certificate_invalid"
    title = "Certificat client invalide"


class CertificateExpired(Unauthenticated):
    code = "certificate_expired"
    title = "Certificat client hors de sa période de validité"


class CertificateUntrusted(Unauthenticated):
    code = "certificate_untrusted"
    title = "Certificat client non reconnu par l'autorité de confiance"


class CertificateNotDeclared(Unauthenticated):
    code = "certificate_not_declared"
    title = "Certificat client non déclaré dans l'habilitation"


class TokenMissing(Unauthenticated):
    code = "token_missing"
    title = "Jeton d'accès absent"


class TokenInvalid(Unauthenticated):
    code = "token_invalid"
    title = "Jeton d'accès invalide"


class TokenExpired(Unauthenticated):
    code = "token_expired"
    title = "Jeton d'accès expiré"


class TokenRevoked(Unauthenticated):
    code = "token_revoked"
    title = "Jeton d'accès révoqué"


class TokenWrongAudience(Unauthenticated):
    code = "token_wrong_audience"
    title = "Jeton d'accès émis pour un autre environnement"


class TokenCertificateMismatch(Unauthenticated):
    code = "token_certificate_mismatch"
    title = "Jeton d'accès lié à un autre certificat"


# 403 — no right
class Forbidden(GuichetError):
    status = 403
    code = "forbidden"
    title = "Accès refusé"


class IpNotAllowed(Forbidden):
    code = "ip_not_allowed"
    title = "Adresse IP non déclarée dans l'habilitation"


class HabilitationUnknown(Forbidden):
    code = "habilitation_unknown"
    title = "Aucune habilitation pour ce client"


class HabilitationSuspended(Forbidden):
    code = "habilitation_suspended"
    title = "Habilitation suspendue"


class HabilitationTerminated(Forbidden):
    code = "habilitation_terminated"
    title = "Habilitation résiliée"


class HabilitationWrongEnvironment(Forbidden):
    code = "habilitation_wrong_environment"
    title = "Habilitation d'un autre environnement"


class HabilitationOutOfDates(Forbidden):
    code = "habilitation_out_of_dates"
    title = "Habilitation hors de sa période de validité"


class ApiNotSubscribed(Forbidden):
    code = "api_not_subscribed"
    title = "API non couverte par l'habilitation"


class ScopeNotGranted(Forbidden):
    code = "scope_not_granted"
    title = "Portée de ressource absente du jeton"


class DataScopeNotGranted(Forbidden):
    code = "data_scope_not_granted"
    title = "Aucune donnée de cette ressource n'est couverte par l'habilitation"


class YearNotGranted(Forbidden):
    code = "year_not_granted"
    title = "Année de revenus non couverte par l'habilitation"


class AccessModeNotGranted(Forbidden):
    code = "access_mode_not_granted"
    title = "Mode d'accès non couvert par l'habilitation"


class TooManyAnswers(Forbidden):
    code = "too_many_answers"
    title = "Plusieurs personnes correspondent à ces critères"


class NotCommunicable(Forbidden):
    code = "not_communicable"
    title = "Données non communicables"


# 404 — nothing for this person
class NotFound(GuichetError):
    status = 404
    code = "not_found"
    title = "Aucune information pour cette identité"


class RouteNotFound(NotFound):
    code = "route_not_found"
    title = "Ressource inconnue"


# 410 — the provider's "no result" for a designated person (LEP) [provider's OpenAPI, Ouverturelep]
class Gone(GuichetError):
    status = 410
    code = "gone"
    title = "Aucun résultat"


class NoSituationForYear(Gone):
    code = "no_situation_for_year"
    title = "Aucune situation pour ce numéro fiscal et cette année"


class SpiUnknown(Gone):
    code = "spi_unknown"
    title = "Le numéro fiscal ne correspond à aucun usager"


class MethodNotAllowed(GuichetError):
    status = 405
    code = "method_not_allowed"
    title = "Méthode non autorisée"


# 413 — refused at the origin's edge (guichet.connections.BodyLimit)
class PayloadTooLarge(GuichetError):
    status = 413
    code = "payload_too_large"
    title = "Corps de requête trop volumineux"


# 429 — quota
class QuotaExceeded(GuichetError):
    status = 429
    code = "quota_exceeded"
    title = "Quota d'appels dépassé"


# 5xx
class InternalError(GuichetError):
    status = 500
    code = "internal_error"
    title = "Erreur technique"


class Maintenance(GuichetError):
    status = 503
    code = "maintenance"
    title = "Service en maintenance"


class JournalUnavailable(GuichetError):
    status = 503
    code = "journal_unavailable"
    title = "Journal des échanges indisponible : aucune donnée n'est transmise"


class UpstreamUnavailable(GuichetError):
    status = 503
    code = "upstream_unavailable"
    title = "Service tiers indisponible"


# --- issue 14 (H1): requests with a body, API FICOBA's headers and service window ---------
class BodyInvalid(BadRequest):
    code = "body_invalid"
    title = "Corps de requête invalide"


class HeaderMissing(BadRequest):
    code = "header_missing"
    title = "En-tête obligatoire absent ou invalide"


class UnsupportedMediaType(GuichetError):
    status = 415
    code = "unsupported_media_type"
    title = "Type de contenu non pris en charge"


class ServiceClosed(GuichetError):
    status = 503
    code = "service_closed"
    title = "Service fermé pendant son heure quotidienne d'indisponibilité"


# --- issue 13 (H5): faults answered 503 with Retry-After, never 500, never data ------------
class QuotaUnavailable(GuichetError):
    status = 503
    code = "quota_unavailable"
    title = "Décompte des quotas momentanément indisponible : aucun appel n'est admis"


class DatabaseUnavailable(GuichetError):
    status = 503
    code = "database_unavailable"
    title = "Base de données momentanément indisponible : aucune donnée n'est transmise"


# --- issue 14 (F1): API FICOBA habilitates per search type ----------------------------------
class SearchTypeNotGranted(Forbidden):
    code = "search_type_not_granted"
    title = "Type de recherche non couvert par l'habilitation"
