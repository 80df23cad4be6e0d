"""The city's calls to API Impôt Particulier in FranceConnect mode: mutual TLS, its own
gateway token, and the citizen's federation access token in ``X-FranceConnect-OAuth``."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import Any, Final

import httpx
from examples.quotient_familial.config import Config

log = logging.getLogger("quotient_familial")

# The media type of the provider's operation ``SituationsIrAssiettesFCV1`` (its published
# OpenAPI document): one ``SituationsIRAssiettesJAXBbean``, the household's first situation
# of the year. Refusals come as ``application/problem+json``.
MEDIA_TYPE: Final = "application/prs.dgfip.part.situations.ir.assiettes.v1+json"


@dataclass(frozen=True)
class GatewayAnswer:
    status: int
    body: Any
    correlation_id: str


class Gateway:
    """The city's calls to API Impôt Particulier: mutual TLS with the city's certificate, a
    client-credentials token (kept until shortly before it expires), both tokens per call."""

    def __init__(self, config: Config) -> None:
        self.config = config
        tls = ssl.create_default_context(cafile=config.ca_file)
        tls.load_cert_chain(config.cert_file, config.key_file)
        self._http = httpx.AsyncClient(verify=tls, timeout=10)
        self._token: tuple[str, float] | None = None
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        await self._http.aclose()

    async def _gateway_token(self) -> str:
        async with self._lock:
            if self._token is None or self._token[1] <= time.monotonic():
                response = await self._http.post(
                    self.config.token_url,
                    data={"grant_type": "client_credentials", "scope": "RessourceIR"},
                    auth=(self.config.gateway_client_id, self.config.gateway_client_secret),
                )
                response.raise_for_status()
                body = response.json()
                lifetime = max(int(body.get("expires_in", 60)) - 30, 0)
                self._token = (str(body["access_token"]), time.monotonic() + lifetime)
            return self._token[0]

    async def assiettes(self, federation_token: str, annrev: int) -> GatewayAnswer:
        """``GET /situations/ir/assiettes/annrev/{annrev}`` for the signed-in citizen
        (``SituationsIrAssiettesFCV1``); the body as the provider's document defines it."""
        correlation_id = str(uuid.uuid4())  # quote it to the provider to find the call
        response = await self._http.get(
            f"{self.config.api_base_url}/situations/ir/assiettes/annrev/{annrev}",
            headers={
                "Authorization": f"Bearer {await self._gateway_token()}",
                "X-FranceConnect-OAuth": federation_token,
                "X-Correlation-ID": correlation_id,
                "Accept": f"{MEDIA_TYPE}, application/problem+json",
            },
        )
        if response.status_code == 401:
            self._token = None  # e.g. the token was revoked: the next call gets a new one
        log.info(
            "quotient_familial:gateway:answered status=%s annrev=%s correlation_id=%s",
            response.status_code,
            annrev,
            correlation_id,
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        return GatewayAnswer(response.status_code, body, correlation_id)
