"""The portal's public origin: the ``Host`` names it answers, whether a request came over
HTTPS, and who may read the web outbox.

Links in mails are built from ``GUICHET_PORTAL_PUBLIC_URL`` (``Settings.resolved_portal_url``),
never from the request: a forged ``Host`` could otherwise send a reset link to another site.
Refusing unknown ``Host`` values as well keeps every page's absolute URLs honest.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from guichet.edge import client_ip, is_trusted_proxy, on_proxy_channel
from guichet.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# Probes and scrapers address a process by its IP; these pages build no link.
HOST_FREE_PATHS = frozenset({"/healthz", "/metrics"})


class OutboxExposed(Exception):
    """The web outbox (sign-in and reset links in clear) would be reachable beyond loopback."""


def is_loopback(host: str) -> bool:
    """``host`` (an address or ``localhost``) designates this machine only."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def outbox_exposure(settings: Settings, listen_host: str | None = None) -> str | None:
    """Why serving the portal on ``listen_host`` with the web outbox is refused, or ``None``."""
    host = listen_host or settings.host
    if settings.smtp_url is not None or not settings.outbox_web or is_loopback(host):
        return None
    return (
        f"le portail écouterait sur {host} avec la boîte d'envoi web (/outbox), qui contient "
        "les liens de connexion et de réinitialisation de mot de passe : n'importe qui sur le "
        "réseau pourrait prendre un compte. Configurez un serveur SMTP (GUICHET_SMTP_URL), "
        "désactivez la boîte d'envoi web (GUICHET_OUTBOX_WEB=false) ou écoutez sur 127.0.0.1."
    )


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """Host names the portal answers: its public origin's, plus loopback aliases in the
    embedded default (no ``GUICHET_PORTAL_PUBLIC_URL``)."""
    public = (urlsplit(settings.resolved_portal_url).hostname or "").lower()
    if settings.portal_public_url is None:
        return frozenset({public, *LOOPBACK_NAMES})
    return frozenset({public})


def host_name(value: str) -> str | None:
    """The name part of a ``Host`` header (``name[:port]`` or ``[v6]:port``), lower-cased."""
    try:
        parsed = urlsplit(f"//{value}")
        name = parsed.hostname
        _ = parsed.port  # a malformed port raises here
    except ValueError:
        return None
    return name.lower() if name else None


class HostCheck:
    """Answers 400 to any request whose ``Host`` is not one of the portal's own names."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str], public_url: str) -> None:
        self.app = app
        self.hosts = frozenset(h.lower() for h in hosts)
        self.public_url = public_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in HOST_FREE_PATHS:
            await self.app(scope, receive, send)
            return
        if host_name(_header(scope, b"host")) in self.hosts:
            await self.app(scope, receive, send)
            return
        response = PlainTextResponse(
            f"Adresse non reconnue : ce portail répond à l'adresse {self.public_url}.",
            status_code=400,
        )
        await response(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers") or []:
        if key == name:
            return bytes(value).decode("latin-1")
    return ""


def _peer(scope: Scope) -> str:
    """The TCP peer's address; an IPv4 client of a dual-stack socket as IPv4."""
    client = scope.get("client")
    if not client:
        return ""
    try:
        address = ipaddress.ip_address(str(client[0]))
    except ValueError:
        return str(client[0])
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return str(mapped or address)


def request_is_https(scope: Scope, settings: Settings) -> bool:
    """The browser reached the portal over HTTPS: TLS ended here, the public origin is
    ``https://`` (a TLS proxy in front), or the proxy says so in ``X-Forwarded-Proto`` — on
    its Unix socket or from ``GUICHET_TRUSTED_PROXIES``; from anyone else that header is
    ignored."""
    if scope.get("scheme") == "https" or settings.resolved_portal_url.startswith("https://"):
        return True
    if not (on_proxy_channel(scope) or is_trusted_proxy(_peer(scope), settings.trusted_proxies)):
        return False
    # The first value is the client-facing hop's, when proxies append theirs.
    return _header(scope, b"x-forwarded-proto").split(",")[0].strip().lower() == "https"


def loopback_peer(scope: Scope) -> bool:
    """The request comes straight from this machine: a loopback TCP peer, not relayed by a
    proxy (a proxy on the same machine would make every visitor look local)."""
    peer = _peer(scope)
    if not peer or not is_loopback(peer):
        return False
    names = {name for name, _ in scope.get("headers") or []}
    return not names & {b"forwarded", b"x-forwarded-for", b"x-real-ip"}


def metrics_reader(scope: Scope, settings: Settings) -> bool:
    """May read ``/metrics``: this machine (``loopback_peer``), or an address of
    ``GUICHET_METRICS_ALLOWED`` — a trusted proxy's client counts, not the proxy."""
    if loopback_peer(scope):
        return True
    caller = client_ip(scope, settings.trusted_proxies)
    return is_trusted_proxy(caller, settings.metrics_allowed)
