"""One environment's gateway origin: OAuth endpoints, API operations behind the control chain.

A call: correlation id → control chain (``gateway.chain``) → body read and operation input →
rights → quota → backend → journal record committed → response. Any refusal is journaled too
and answered as RFC 9457 problem+json (or in the provider's own error shape, for a product
that has one: ``ApiProduct.error_format``); no data leaves unless every step passed.

An operation taking a body (``Operation.max_body_bytes``) reads it only once the control chain
has passed: 415 unless its ``Content-Type`` is the operation's, 413 beyond its size (counted
as it streams in, never buffered beyond), 400 unless it is a JSON document; the handler then
validates the document and names the field at fault.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guichet import edge, errors
from guichet.apis import DOCUMENTS, load_openapi
from guichet.apis.context import ApiResponse, CallContext, OperationHandler
from guichet.catalog.products import PRODUCTS, ApiProduct, Operation
from guichet.clock import Clock
from guichet.gateway import faults
from guichet.gateway.chain import ControlChain
from guichet.gateway.metrics import CALLS, JOURNAL_LATENCY, LATENCY, live_workers
from guichet.gateway.problem import problem_response, reponse_erreur_response
from guichet.habilitation.models import Environment
from guichet.journal.service import JournalEntry, JournalWriter
from guichet.logs import event
from guichet.oauth.policy import PolicyCache
from guichet.quota import QuotaService, ratelimit_headers
from guichet.secrets import MasterSecret
from guichet.settings import Network

log = logging.getLogger(__name__)

# ``/openapi/<slug>.json|yaml`` → the document's key in ``guichet.apis.DOCUMENTS``.
OPENAPI_DOCUMENTS = {d.slug: d.key for d in DOCUMENTS.values()}


@dataclass
class GatewayDeps:
    environment: Environment
    public_url: str
    session_factory: sessionmaker[Session]
    master: MasterSecret
    clock: Clock
    cache: PolicyCache
    chain: ControlChain
    journal: JournalWriter
    quota: QuotaService
    operations: dict[str, OperationHandler]
    trusted_proxies: list[Network]
    client_cert_header: str = "Client-Cert"
    maintenance: bool = False
    maintenance_retry_after: int = 600
    # Product key → the hour (Europe/Paris) it is closed every day (API FICOBA: 23 h/24).
    closed_hours: dict[str, int] = field(default_factory=dict)


_PARIS = ZoneInfo("Europe/Paris")
_HEADER_VALUE_LENGTH = 128  # X-Request-ID and the like


def _header(scope: Scope, name: bytes) -> str | None:
    """The first ``name`` header (lower case) of the raw ASGI headers."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _call_headers(scope: Scope) -> tuple[str | None, str | None]:
    """``X-Correlation-ID`` and ``Authorization``, first occurrence of each, in one pass
    over the raw ASGI headers (what ``Request.headers.get`` returns, without the object)."""
    correlation: str | None = None
    authorization: str | None = None
    for key, value in scope["headers"]:
        if key == b"x-correlation-id":
            if correlation is None:
                correlation = value.decode("latin-1")
        elif key == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
    return correlation, authorization


class _RecordIds:
    """Journal record ids (UUID version 4) from the OS's random source, 4 KiB at a time.

    ``uuid.uuid4()`` makes one ``os.urandom`` system call per call, and releases the GIL for
    it: under load the journal writer took the GIL at each of them and the event loop then
    waited for it back. Same randomness, one system call per 256 ids.
    """

    _SIZE = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0
        # A forked child must not hand out its parent's remaining ids.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._buffer = b""
        self._offset = 0

    def next(self) -> uuid.UUID:
        with self._lock:
            if self._offset >= len(self._buffer):
                self._buffer = os.urandom(self._SIZE)
                self._offset = 0
            start = self._offset
            self._offset = start + 16
            return uuid.UUID(bytes=self._buffer[start : start + 16], version=4)


_record_ids = _RecordIds()


# What ``json.dumps(body, ensure_ascii=False, separators=(",", ":"))`` does, built once.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_MEDIA_TYPES: dict[str, bytes] = {}


def _media_type(media_type: str) -> bytes:
    value = _MEDIA_TYPES.get(media_type)
    if value is None:
        # Starlette's rule: text types get their charset spelt out.
        text = media_type
        if text.startswith("text/") and "charset=" not in text.lower():
            text += "; charset=utf-8"
        value = _MEDIA_TYPES[media_type] = text.encode("latin-1")
    return value


@dataclass(frozen=True, slots=True)
class _Answer:
    """A successful call's answer, as raw ASGI headers and body: sent as is."""

    status_code: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class GatewayCall:
    """The ASGI endpoint of one API operation (or of an unknown path, operation=None)."""

    def __init__(
        self,
        deps: GatewayDeps,
        product: ApiProduct | None,
        operation: Operation | None,
        handler: OperationHandler | None,
    ) -> None:
        self.deps = deps
        self.product = product
        self.operation = operation
        self.handler = handler
        self._op_name = operation.name if operation else "unknown"
        self._api = product.key if product else None
        method = operation.method if operation else "GET"
        self._methods = ("GET", "HEAD") if method == "GET" else (method,)
        self._allow = ", ".join(self._methods)
        self._required_headers = tuple(
            (h, h.lower().encode("latin-1")) for h in (product.required_headers if product else ())
        )
        # Prometheus children, looked up once per outcome rather than on every call.
        self._calls: dict[str, Any] = {}
        self._latency = LATENCY.labels(deps.environment.value)
        self._journal_latency = JOURNAL_LATENCY.labels(deps.environment.value)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        deps = self.deps
        started = time.perf_counter()
        raw_correlation_id, authorization = _call_headers(scope)
        correlation_id, cid_ok = edge.checked_correlation_id(raw_correlation_id)
        ctx = CallContext(
            environment=deps.environment,
            correlation_id=correlation_id,
            source_ip=edge.client_ip(scope, deps.trusted_proxies),
            now=deps.clock.now(),
            method=scope["method"],
            path=scope["path"],
            authorization=authorization,
            product=self.product,
            operation=self.operation,
        )
        headers: dict[str, str] = {}
        answer: _Answer | Response
        try:
            answer = await self._run(ctx, scope, receive, cid_ok, headers)
            outcome = "ok"
        except errors.GuichetError as exc:
            outcome = exc.code
            ctx.data_scopes_returned = []
            answer = self._refusal(exc, ctx, headers)
        except faults.OUTAGE_ERRORS as exc:
            # The database (or Redis) failed under the call: 503, logged once per outage.
            refusal = faults.unavailable(exc)
            outcome = refusal.code
            ctx.data_scopes_returned = []
            answer = self._refusal(refusal, ctx)
        except Exception as exc:
            # Never a stack trace to the caller. The log gets the exception's class and its
            # frames, not its message: a message may quote a row, hence an SPI or a name.
            event(
                log,
                "gateway.internal_error",
                logging.ERROR,
                correlation_id=correlation_id,
                operation=self._op_name,
                error=type(exc).__name__,
                frames=" | ".join(
                    f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}:{f.name}"
                    for f in traceback.extract_tb(exc.__traceback__)
                ),
            )
            outcome = "internal_error"
            ctx.data_scopes_returned = []
            answer = self._refusal(errors.InternalError(), ctx)
        latency = time.perf_counter() - started
        try:
            # The record is committed before a single byte of the answer leaves.
            await deps.journal.append(
                self._journal_entry(ctx, outcome, answer.status_code, latency)
            )
        except errors.JournalUnavailable as exc:
            # No data without its record: 503, Retry-After; the outage logged once (issue 13).
            faults.DATABASE.failed(exc.__cause__ or exc)
            exc.retry_after = exc.retry_after or faults.RETRY_AFTER
            outcome = exc.code
            answer = self._refusal(exc, ctx)
        else:
            faults.DATABASE.answered()
        self._journal_latency.observe(time.perf_counter() - started - latency)
        self._count(outcome, started)
        if isinstance(answer, _Answer):
            await send(
                {
                    "type": "http.response.start",
                    "status": answer.status_code,
                    "headers": answer.headers,
                }
            )
            await send({"type": "http.response.body", "body": answer.body})
        else:
            await answer(scope, receive, send)

    def _refusal(
        self, error: errors.GuichetError, ctx: CallContext, headers: dict[str, str] | None = None
    ) -> Response:
        """The refusal in the product's error shape: problem+json, or the provider's
        ``ReponseErreur`` (under ``erreur`` for a health check)."""
        if self.product is not None and self.product.error_format == "reponse_erreur":
            # The health check's unavailability: the provider's ResultatErreurApiSante.
            health = self.operation is not None and self.operation.health and error.status == 503
            extra = dict(headers or {})
            if ctx.request_id is not None:
                extra["X-Request-ID"] = ctx.request_id
            return reponse_erreur_response(error, ctx.correlation_id, ctx.now, extra, health=health)
        return problem_response(error, ctx.correlation_id, ctx.path, headers, self._codeapp(error))

    def _check_open(self, ctx: CallContext) -> None:
        """A product's daily closed hour (Paris time): 503 until the next hour."""
        if self.product is None:
            return
        hour = self.deps.closed_hours.get(self.product.key)
        if hour is None:
            return
        local = ctx.now.astimezone(_PARIS)
        if local.hour == hour:
            raise errors.ServiceClosed(
                f"{self.product.name} est fermée chaque jour de {hour:02d} h à "
                f"{(hour + 1) % 24:02d} h (heure de Paris) : service 23 h sur 24.",
                retry_after=3600 - local.minute * 60 - local.second,
            )

    def _check_required_headers(self, scope: Scope, ctx: CallContext) -> None:
        """The product's required headers (API FICOBA: ``X-Request-ID``, echoed back)."""
        for name, raw in self._required_headers:
            value = _header(scope, raw)
            if (
                value is None
                or not value.strip()
                or len(value) > _HEADER_VALUE_LENGTH
                or not value.isprintable()
                or not value.isascii()
            ):
                raise errors.HeaderMissing(
                    f"L'en-tête {name} est obligatoire : une chaîne non vide de "
                    f"{_HEADER_VALUE_LENGTH} caractères au plus.",
                    field=name,
                )
            if raw == b"x-request-id":
                ctx.request_id = value

    async def _read_body(self, scope: Scope, receive: Receive, operation: Operation) -> Any:
        """The request's JSON document, read within ``operation.max_body_bytes``."""
        expected = operation.request_media_type or "application/json"
        media, _, parameters = (_header(scope, b"content-type") or "").partition(";")
        charset = next(
            (
                v.strip().strip('"').lower()
                for k, _, v in (p.partition("=") for p in parameters.split(";"))
                if k.strip().lower() == "charset"
            ),
            "utf-8",
        )
        if media.strip().lower() != expected or charset not in ("utf-8", "utf8"):
            raise errors.UnsupportedMediaType(
                f"Le corps de la requête doit être de type {expected} (encodé en UTF-8)."
            )
        limit = operation.max_body_bytes
        too_large = errors.PayloadTooLarge(f"Le corps de la requête dépasse {limit} octets.")
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise errors.BodyInvalid("Le corps de la requête est incomplet.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        if not raw.strip():
            raise errors.BodyInvalid(
                "Le corps de la requête est vide : un document JSON est attendu."
            )
        try:
            return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise errors.BodyInvalid(
                "Le corps de la requête n'est pas un document JSON valide "
                f"(ligne {exc.lineno}, colonne {exc.colno})."
            ) from None
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise errors.BodyInvalid(
                "Le corps de la requête n'est pas un document JSON valide."
            ) from None

    def _codeapp(self, error: errors.GuichetError) -> int | None:
        """The provider's ``codeapp`` for a 403 of this operation (``forbidden_codeapp``),
        whichever check refused, unless the error carries its own."""
        if error.codeapp is None and error.status == 403 and self.operation is not None:
            return self.operation.forbidden_codeapp
        return None

    def _count(self, outcome: str, started: float) -> None:
        calls = self._calls.get(outcome)
        if calls is None:
            calls = self._calls[outcome] = CALLS.labels(
                self.deps.environment.value, self._api or "none", outcome
            )
        calls.inc()
        self._latency.observe(time.perf_counter() - started)

    async def _run(
        self,
        ctx: CallContext,
        scope: Scope,
        receive: Receive,
        cid_ok: bool,
        headers: dict[str, str],
    ) -> _Answer:
        deps = self.deps
        if deps.maintenance:
            raise errors.Maintenance(
                "Intervention programmée en cours.", retry_after=deps.maintenance_retry_after
            )
        self._check_open(ctx)
        presented = edge.client_certificate(scope, deps.client_cert_header)
        if presented is not None:
            ctx.certificate = presented.certificate
            ctx.cert_thumbprint = presented.thumbprint
        if not cid_ok:
            raise errors.CorrelationIdInvalid(
                "L'en-tête X-Correlation-ID doit contenir un UUID.", field="X-Correlation-ID"
            )
        if self.handler is None or self.product is None or self.operation is None:
            raise errors.RouteNotFound(f"Aucune ressource {ctx.method} {ctx.path}.")
        if ctx.method not in self._methods:
            headers["Allow"] = self._allow
            raise errors.MethodNotAllowed(
                f"{ctx.method} n'est pas permis ici ; utilisez {self._methods[0]}."
            )
        self._check_required_headers(scope, ctx)
        deps.chain.run(ctx)
        body = None
        try:
            if self.operation.max_body_bytes > 0:
                body = await self._read_body(scope, receive, self.operation)
            params = self.handler.parse(Request(scope, receive), body)
        except errors.BadRequest:
            # A search refused on its body is journaled with its type when the path or the
            # body tells it (API FICOBA's ``search_type_of``).
            search_type_of = getattr(self.handler, "search_type_of", None)
            if search_type_of is not None:
                ctx.search_type = search_type_of(body)
            raise
        ctx.subject_spi = getattr(params, "spi", None)
        self.handler.authorize(ctx, params)
        assert ctx.habilitation is not None
        limit = int(
            ctx.habilitation.quotas.get(self.product.key, self.product.default_quota_per_minute)
        )
        decision = await deps.quota.hit(f"{ctx.habilitation.id}:{self.product.key}", limit)
        headers.update(ratelimit_headers(decision))
        if not decision.allowed:
            raise errors.QuotaExceeded(
                f"Quota de {limit} appels par minute atteint.", retry_after=decision.retry_after
            )
        result: ApiResponse = await self.handler.fetch(ctx, params)
        raw_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ]
        raw_headers += [
            (b"x-correlation-id", ctx.correlation_id.encode("latin-1")),
            (b"cache-control", b"no-store"),
        ]
        if ctx.request_id is not None:
            raw_headers.append((b"x-request-id", ctx.request_id.encode("latin-1")))
        if not result.has_content:
            # RFC 9110 §15.3.5 / §8.6: a 204 has no content, hence no Content-Length either.
            return _Answer(result.status, raw_headers, b"")
        body = _encode(result.body).encode()
        raw_headers += [
            (b"content-length", str(len(body)).encode("latin-1")),
            (b"content-type", _media_type(result.media_type)),
        ]
        return _Answer(result.status, raw_headers, body)

    def _journal_entry(
        self, ctx: CallContext, outcome: str, status: int, latency: float
    ) -> JournalEntry:
        hab = ctx.habilitation
        pseudonym = self.deps.master.pseudonym
        subjects = list(dict.fromkeys(pseudonym(s) for s in ctx.subjects)) or None
        subject = pseudonym(ctx.subject_spi) if ctx.subject_spi else None
        if subject is None and subjects:
            subject = subjects[0]
        return JournalEntry(
            id=_record_ids.next(),
            at=ctx.now,
            environment=ctx.environment.value,
            correlation_id=ctx.correlation_id,
            partner_id=hab.organisation_id if hab else None,
            habilitation_id=hab.id if hab else None,
            client_id=ctx.client.client_id if ctx.client else None,
            api=self._api,
            operation=f"{ctx.method} {self._op_name}",
            source_ip=ctx.source_ip,
            cert_thumbprint=ctx.cert_thumbprint,
            subject=subject,
            data_scopes=list(ctx.data_scopes_returned),
            outcome=outcome,
            http_status=status,
            latency_ms=round(latency * 1000, 3),
            search_type=ctx.search_type,
            subjects=subjects,
        )


def edge_refusal(error: errors.GuichetError, clock: Clock) -> ASGIApp:
    """A refusal made at the origin's edge, before the gateway (``connections.BodyLimit``):
    in the error shape of the product whose path the request is for (problem+json outside
    them), with the request's correlation id when it sent a valid one."""

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        correlation_id, _ = edge.checked_correlation_id(_call_headers(scope)[0])
        path = scope.get("path", "")
        response: Response = problem_response(error, correlation_id, path)
        for product in PRODUCTS.values():
            if product.error_format == "reponse_erreur" and path.startswith(
                product.base_path + "/"
            ):
                response = reponse_erreur_response(error, correlation_id, clock.now())
        await response(scope, receive, send)

    return answer


def api_routes(deps: GatewayDeps) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for product in PRODUCTS.values():
        for op in product.operations:
            handler = deps.operations[op.name]
            routes.append(
                # No method filter here: GatewayCall answers 405 itself, as problem+json.
                Route(product.base_path + op.path, GatewayCall(deps, product, op, handler))
            )
    return routes


HEALTH_TIMEOUT = 2.0  # seconds the health probe waits for the database


def health_route(deps: GatewayDeps) -> Route:
    quota = deps.quota

    async def healthz(_: Request) -> Response:
        def ping() -> None:
            with deps.session_factory() as session:
                session.execute(text("SELECT 1"))

        try:
            # Bounded: a hung database makes the probe fail, not wait.
            await asyncio.wait_for(asyncio.to_thread(ping), HEALTH_TIMEOUT)
        except Exception:
            return JSONResponse(
                {
                    "status": "unavailable",
                    "environment": deps.environment.value,
                    "workers": live_workers(),
                },
                503,
                headers={"Retry-After": str(faults.RETRY_AFTER)},
            )
        return JSONResponse(
            {
                "status": "ok",
                "environment": deps.environment.value,
                # The quota's own state (its heartbeat sees Redis every second): no Redis
                # call here, so a hung Redis never holds a probe. Degraded quotas still
                # serve (within each worker's share), hence still 200.
                "quota": "degraded" if quota.degraded else "ok",
                "workers": live_workers(),
                "policyGeneration": deps.cache.snapshot.generation,
            }
        )

    return Route("/healthz", healthz, methods=["GET"])


def openapi_routes(public_url: str) -> list[BaseRoute]:
    """``/openapi/<slug>.json`` and ``.yaml`` for each published document, its server
    being this environment's origin followed by the document's base path."""

    def endpoint(key: str) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            doc = load_openapi(key, public_url)
            if request.url.path.endswith(".yaml"):
                import yaml

                return PlainTextResponse(
                    yaml.safe_dump(doc, sort_keys=False, allow_unicode=True),
                    media_type="application/yaml",
                )
            return JSONResponse(doc)

        return serve

    routes: list[BaseRoute] = []
    for slug, key in OPENAPI_DOCUMENTS.items():
        routes.append(Route(f"/openapi/{slug}.json", endpoint(key), methods=["GET"]))
        routes.append(Route(f"/openapi/{slug}.yaml", endpoint(key), methods=["GET"]))
    return routes


def build_gateway_app(deps: GatewayDeps, extra_routes: list[BaseRoute]) -> ASGIApp:
    """The environment's ASGI app; unknown paths get a journaled problem+json 404."""
    routes = [
        health_route(deps),
        *openapi_routes(deps.public_url),
        *extra_routes,
        *api_routes(deps),
    ]
    fallback = GatewayCall(deps, None, None, None)
    return _Dispatcher(Router(routes, default=fallback))


# Every answer of a gateway, a TLS origin (issue 11 §6): HTTPS only from now on, for a year,
# and no content sniffing. Added at the edge, so refusals, 404s and /token carry them too.
_EDGE_HEADERS = (
    (b"strict-transport-security", b"max-age=31536000"),
    (b"x-content-type-options", b"nosniff"),
)


def _with_edge_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *_EDGE_HEADERS]}
        await send(message)

    return sending


class _Dispatcher:
    """Starlette's ``Router``, with its routes looked up by the path's first segment.

    ``Router`` tries every route in turn (a regular expression each): the IR operations
    came after a dozen others. A route whose first segment is literal can only match paths
    with that segment, so trying just those routes, in the router's order, finds the same
    first full match. Anything else — no full match there (404, 405, redirects), a route
    whose first segment is a parameter, lifespan — goes to the router itself.
    """

    def __init__(self, router: Router) -> None:
        self.router = router
        self._by_segment: dict[str, list[Route]] = {}
        for route in router.routes:
            if not isinstance(route, Route):
                self._by_segment = {}
                return
            first = _first_segment(route.path)
            if "{" in first or ":" in first:
                self._by_segment = {}  # a parameter could match any segment: no shortcut
                return
            self._by_segment.setdefault(first, []).append(route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            send = _with_edge_headers(send)
            # The route matches against the path less any root_path; a wrong pick finds no
            # full match and goes to the router, so the raw path is good enough to pick.
            candidates = self._by_segment.get(_first_segment(scope["path"]))
            for route in candidates or ():
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    # What Router.app does with its first full match.
                    scope.setdefault("router", self.router)
                    scope["route"] = route
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        await self.router(scope, receive, send)


def _first_segment(path: str) -> str:
    return path.split("/", 2)[1] if path.startswith("/") and len(path) > 1 else path
