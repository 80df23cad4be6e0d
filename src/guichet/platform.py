"""Assembles the running product: the two gateway origins, the portal, the sandbox
federation, their shared parts and their listeners (TCP, or the proxy's Unix socket)."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import signal
import socket
import ssl
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from guichet import errors
from guichet.apis.context import ApiDeps, OperationHandler
from guichet.apis.ficoba import build_operations as ficoba_operations
from guichet.apis.impot_particulier import build_operations as ip_operations
from guichet.apis.r2p import build_operations as r2p_operations
from guichet.application.runner import run_periodically
from guichet.clock import Clock
from guichet.connections import BodyLimit, ConnectionLimits
from guichet.edge import ProxyChannel
from guichet.federation.checktoken import from_settings as franceconnect_from_settings
from guichet.federation.citizens import SuggestedCitizen
from guichet.federation.clients import directory
from guichet.federation.server import FederationDeps
from guichet.federation_web.app import build_federation_app
from guichet.federation_web.app import too_large as federation_too_large
from guichet.gateway.app import GatewayDeps, build_gateway_app, edge_refusal
from guichet.gateway.chain import ChainConfig, ControlChain, load_trust_store
from guichet.gateway.tls import TrustStore, build_server_ssl_context, make_server
from guichet.habilitation.models import Environment
from guichet.journal.service import JournalWriter
from guichet.logs import event
from guichet.oauth.policy import PolicyCache, Snapshot
from guichet.oauth.server import OAuthDeps, token_routes
from guichet.portal.app import build_portal_app
from guichet.portal.citizen import load_portal_client
from guichet.quota import QuotaService
from guichet.runtime import Runtime
from guichet.sandbox.personas import PERSONAS, SIGN_IN_SUGGESTIONS

log = logging.getLogger(__name__)


@dataclass
class TlsFiles:
    server_cert: Path
    server_key: Path
    client_cas: list[Path] = field(default_factory=list)


class Platform:
    """Shared state of one process: policy cache, journal writer, quota service — and, in the
    one process that runs them (``scheduler=True``), the scheduled operations."""

    def __init__(
        self, runtime: Runtime, tls: TlsFiles | None = None, *, scheduler: bool = False
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.tls = tls
        self.scheduler = scheduler
        self.cache = PolicyCache(runtime.session_factory, directory)
        self.journal = JournalWriter(runtime.session_factory)
        self.quota = QuotaService.from_settings(self.settings)
        # One federation check (and its cache) shared by the gateways that trust it.
        self.federation_check = franceconnect_from_settings(self.settings, runtime.clock)
        self._federation = {
            Environment(e): self.federation_check for e in self.settings.federation_environments
        }
        # Each gateway's operations read its environment's records store only (issue 12):
        # the sandbox's (the main database) now, the production's when that gateway is built.
        self._operations: dict[Environment, dict[str, OperationHandler]] = {}
        self.operations = self.operations_for(Environment.SANDBOX)
        self._tasks: list[asyncio.Task[Any]] = []

    def operations_for(self, environment: Environment) -> dict[str, OperationHandler]:
        """The API operations of ``environment``'s gateway, on that environment's records."""
        found = self._operations.get(environment)
        if found is None:
            api_deps = ApiDeps(self.runtime.records(environment.value), self.runtime.clock)
            federation = self._federation
            found = self._operations[environment] = {
                **ip_operations(api_deps, federation),
                **r2p_operations(api_deps),
                **ficoba_operations(api_deps),
            }
        return found

    def gateway_app(self, environment: Environment) -> ASGIApp:
        settings = self.settings
        public_url = settings.public_url(environment.value)
        trust = load_trust_store(self.tls.client_cas[0]) if self.tls and self.tls.client_cas else []
        if settings.client_ca_file:
            trust = load_trust_store(settings.client_ca_file)
        chain = ControlChain(
            self.cache, ChainConfig(issuer=public_url, audience=public_url, trust_store=trust)
        )
        deps = GatewayDeps(
            environment=environment,
            public_url=public_url,
            session_factory=self.runtime.session_factory,
            master=self.runtime.master,
            clock=self.runtime.clock,
            cache=self.cache,
            chain=chain,
            journal=self.journal,
            quota=self.quota,
            operations=self.operations_for(environment),
            trusted_proxies=list(settings.trusted_proxies),
            client_cert_header=settings.client_cert_header,
            maintenance=settings.maintenance,
            maintenance_retry_after=settings.maintenance_retry_after,
            closed_hours=(
                {}
                if settings.ficoba_closed_hour is None
                else {"ficoba": settings.ficoba_closed_hour}
            ),
        )
        oauth = OAuthDeps(
            environment=environment,
            issuer=public_url,
            audience=public_url,
            session_factory=self.runtime.session_factory,
            master=self.runtime.master,
            clock=self.runtime.clock,
            cache=self.cache,
            trusted_proxies=list(settings.trusted_proxies),
            client_cert_header=settings.client_cert_header,
            token_lifetime=settings.token_lifetime,
            trust_store=trust,
            journal=self.journal,
        )
        app = build_gateway_app(deps, token_routes(oauth))
        return BodyLimit(
            app, settings.max_body_bytes, partial(_gateway_too_large, clock=self.runtime.clock)
        )

    def federation_app(self) -> ASGIApp:
        """The sandbox identity federation (behaves like FranceConnect v2), its own origin."""
        deps = FederationDeps(
            issuer=self.settings.embedded_federation_url,
            session_factory=self.runtime.session_factory,
            master=self.runtime.master,
            clock=self.runtime.clock,
            first_party_clients=partial(portal_client_ids, self.settings.data_dir),
            suggested=tuple(SuggestedCitizen(spi, label) for spi, label in SIGN_IN_SUGGESTIONS),
        )
        return BodyLimit(
            build_federation_app(deps), self.settings.max_body_bytes, federation_too_large
        )

    def portal_app(self) -> ASGIApp:
        return build_portal_app(self.runtime, self.quota, personas=PERSONAS)

    def ssl_context(self) -> ssl.SSLContext:
        assert self.tls is not None
        cas = [Path(p) for p in self.tls.client_cas]
        if self.settings.client_ca_file:
            cas.append(self.settings.client_ca_file)
        context = build_server_ssl_context(self.tls.server_cert, self.tls.server_key, cas)
        store = TrustStore(context)

        def trust_pinned(snapshot: Snapshot) -> None:
            for pem in snapshot.pinned_certificates():
                store.add(pem)

        self.cache.on_reload(trust_pinned)
        return context

    async def start(self) -> None:
        self.journal.start()
        await self.quota.start()  # joins the workers in Redis (issue 13)
        self._tasks.append(asyncio.create_task(self.cache.poll(self.settings.cache_poll_interval)))
        if self.scheduler:
            interval = self.settings.scheduler_interval
            if interval > 0:
                self._tasks.append(asyncio.create_task(run_periodically(self.runtime, interval)))
            else:
                event(log, "operations:scheduler_disabled", setting="GUICHET_SCHEDULER_INTERVAL")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.journal.close()
        await self.quota.aclose()
        await self.federation_check.aclose()


def _gateway_too_large(limit: int, *, clock: Clock) -> ASGIApp:
    error = errors.PayloadTooLarge(f"Le corps de la requête dépasse {limit} octets.")
    return edge_refusal(error, clock)


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run the servers on uvloop where available (faster TLS and sockets), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        asyncio.run(main)
    else:
        uvloop.run(main)


def bind_unix(path: Path, group: str | None = None) -> socket.socket:
    """The proxy channel: a Unix socket at ``path``, mode 0660, in ``group`` (the proxy's)
    if given — no other local user may connect, so ``guichet.edge`` believes what the proxy
    forwards on it. A stale socket left by a previous run is replaced; any other file is not."""
    if path.is_socket():
        path.unlink()
    elif path.exists():
        raise OSError(f"{path} existe et n'est pas un socket")
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Created without any permission for others, before chmod opens it to the group.
    previous = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(previous)
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            sock.close()
            raise OSError(f"groupe inconnu « {group} » (GUICHET_PROXY_SOCKET_GROUP)") from None
        os.chown(path, -1, gid)
    path.chmod(0o660)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@dataclass
class Listener:
    name: str
    app: ASGIApp
    sock: socket.socket
    ssl_context: ssl.SSLContext | None


def address(sock: socket.socket) -> str:
    """Where a listener is, for the logs: ``http://host:port`` or ``unix:/path``."""
    if sock.family == socket.AF_UNIX:
        return f"unix:{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def server_for(listener: Listener, limits: ConnectionLimits) -> uvicorn.Server:
    """The uvicorn server of one origin, under the origin's resource limits. A Unix socket
    is the proxy channel: its requests may carry the forwarded certificate and address."""
    app = listener.app
    if listener.sock.family == socket.AF_UNIX:
        app = ProxyChannel(app)
        host, port = str(listener.sock.getsockname()), 0
    else:
        host, port = listener.sock.getsockname()[:2]
    return make_server(
        app,
        host=host,
        port=port,
        ssl_context=listener.ssl_context,
        log_level="warning",
        limits=limits,
        # URLs carry SPIs: no access log (the journal is the record, with pseudonyms),
        # and uvicorn's own handlers give way to guichet's key=value logging.
        access_log=False,
        log_config=None,
    )


async def serve(platform: Platform, listeners: Iterable[Listener]) -> None:
    """Serve every listener until SIGINT/SIGTERM, then drain the journal and stop cleanly."""
    await platform.start()
    servers: list[uvicorn.Server] = []
    limits = ConnectionLimits.from_settings(platform.settings)
    try:
        for listener in listeners:
            server = server_for(listener, limits)
            # One signal handler for all servers (uvicorn's own would stop only one of them).
            server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
            servers.append(server)

        def stop_all() -> None:
            event(log, "platform.stopping")
            for s in servers:
                s.should_exit = True

        for lst in listeners:
            where = address(lst.sock)
            if lst.sock.family != socket.AF_UNIX:
                where = f"{'https' if lst.ssl_context else 'http'}://{where}"
            event(log, "platform.listening", origin=lst.name, url=where)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop_all)
        results = await asyncio.gather(
            *(s.serve(sockets=[lst.sock]) for s, lst in zip(servers, listeners, strict=True)),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result
    finally:
        await platform.stop()
        event(log, "platform.stopped")


def portal_client_ids(data_dir: Path) -> frozenset[str]:
    """The portal's own federation client (``guichet init`` registers it), if any."""
    client = load_portal_client(data_dir.resolve())
    return frozenset({client.client_id}) if client else frozenset()
