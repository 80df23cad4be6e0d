"""RFC 9457 problem details: the one mapping from domain errors to HTTP answers.

An API whose provider documents its own error shape answers that one instead (the product's
``error_format``): API FICOBA's ``ReponseErreur`` (``code``, ``message``, ``horodatage``),
under ``erreur`` for its health check. Same status codes and headers either way.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

from starlette.responses import Response

from guichet.errors import GuichetError, TokenMissing

PROBLEM_MEDIA_TYPE = "application/problem+json"
# Every API operation of the gateway is a read; a caller's ``headers`` may say otherwise.
API_METHODS = "GET, HEAD"


def problem_body(
    error: GuichetError,
    correlation_id: str,
    instance: str | None = None,
    codeapp: int | None = None,
) -> dict[str, Any]:
    """RFC 9457 §3.1 members, plus the extension members ``code``, ``correlationId``,
    ``field`` and ``codeapp`` (an integer: the provider's application code, where its
    interface documents one; ``codeapp`` here, else the error's own)."""
    body: dict[str, Any] = {
        "type": f"urn:guichet:problem:{error.code}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "code": error.code,
        "correlationId": correlation_id,
    }
    if instance:
        body["instance"] = instance
    if error.field:
        body["field"] = error.field
    codeapp = error.codeapp if codeapp is None else codeapp
    if codeapp is not None:
        body["codeapp"] = codeapp
    return body


def www_authenticate(error: GuichetError) -> str:
    """RFC 6750 §3: no error code when no token was sent (§3.1), ``invalid_token`` for a
    token refused, ``invalid_request`` when the mutual-TLS certificate is at fault."""
    if isinstance(error, TokenMissing):
        return 'Bearer realm="guichet"'
    kind = "invalid_request" if error.code.startswith("certificate_") else "invalid_token"
    return f'Bearer realm="guichet", error="{kind}", error_description="{error.code}"'


def error_headers(
    error: GuichetError, correlation_id: str, headers: dict[str, str] | None = None
) -> dict[str, str]:
    """The headers of a refusal, whatever the shape of its body."""
    all_headers = {"X-Correlation-ID": correlation_id, "Cache-Control": "no-store"}
    if error.retry_after is not None:
        all_headers["Retry-After"] = str(error.retry_after)
    if error.status == 405:
        # RFC 9110 §15.5.6: "The origin server MUST generate an Allow header field in a 405
        # response containing a list of the target resource's currently supported methods."
        all_headers["Allow"] = API_METHODS
    if error.status == 401:
        all_headers["WWW-Authenticate"] = www_authenticate(error)
    if headers:
        all_headers.update(headers)
    return all_headers


def problem_response(
    error: GuichetError,
    correlation_id: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    codeapp: int | None = None,
) -> Response:
    return Response(
        json.dumps(problem_body(error, correlation_id, instance, codeapp), ensure_ascii=False),
        status_code=error.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=error_headers(error, correlation_id, headers),
    )


# --- the provider's own error shape (API FICOBA) --------------------------------------------

REPONSE_ERREUR_MEDIA_TYPE = "application/json"
_PARIS = ZoneInfo("Europe/Paris")


def reponse_erreur_body(
    error: GuichetError, correlation_id: str, now: dt.datetime
) -> dict[str, Any]:
    """The provider's ``ReponseErreur``: ``code`` (guichet's stable error code), ``message``
    (in French; the field at fault first, e.g. ``criteresRecherche.nom : …``) and
    ``horodatage`` (ISO 8601, Paris time); guichet's additions ``correlationId`` and, when a
    field is at fault, ``champ`` (marked ``x-guichet-addition`` in guichet's document)."""
    message = f"{error.field} : {error.detail}" if error.field else error.detail
    body: dict[str, Any] = {
        "code": error.code,
        "message": message,
        "horodatage": now.astimezone(_PARIS).isoformat(timespec="seconds"),
        "correlationId": correlation_id,
    }
    if error.field:
        body["champ"] = error.field
    return body


def reponse_erreur_response(
    error: GuichetError,
    correlation_id: str,
    now: dt.datetime,
    headers: dict[str, str] | None = None,
    *,
    health: bool = False,
) -> Response:
    """A refusal in the ``ReponseErreur`` shape; a health check's unavailability (``health``)
    under ``erreur`` (the provider's ``ResultatErreurApiSante``), without guichet's additions."""
    body = reponse_erreur_body(error, correlation_id, now)
    if health:
        # The provider's ReponseErreur only, the correlation id being in the headers.
        body = {"erreur": {k: body[k] for k in ("code", "message", "horodatage")}}
    return Response(
        json.dumps(body, ensure_ascii=False),
        status_code=error.status,
        media_type=REPONSE_ERREUR_MEDIA_TYPE,
        headers=error_headers(error, correlation_id, headers),
    )
