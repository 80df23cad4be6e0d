"""The city's credentials and addresses, as ``guichet init`` writes them
(``var/demo/franceconnect.json``); in production they come from your secret store."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Config:
    """What the city received with its habilitation, as ``guichet init`` writes it in
    ``var/demo/franceconnect.json``. Keep the secrets out of your code and your logs."""

    partner_url: str
    # the identity federation (FranceConnect, or guichet's sandbox federation)
    issuer: str
    discovery_url: str
    fc_client_id: str
    fc_client_secret: str
    redirect_uri: str
    post_logout_redirect_uri: str
    # the provider's API gateway
    token_url: str
    api_base_url: str
    gateway_client_id: str
    gateway_client_secret: str
    cert_file: str
    key_file: str
    ca_file: str

    @classmethod
    def load(cls, path: Path) -> Config:
        doc = json.loads(path.read_text(encoding="utf-8"))
        fc, gw = doc["federation"], doc["gateway"]
        return cls(
            partner_url=doc["partner_url"].rstrip("/"),
            issuer=fc["issuer"],
            discovery_url=fc["discovery_url"],
            fc_client_id=fc["client_id"],
            fc_client_secret=fc["client_secret"],
            redirect_uri=fc["redirect_uri"],
            post_logout_redirect_uri=fc["post_logout_redirect_uri"],
            token_url=gw["token_url"],
            api_base_url=gw["api_base_url"].rstrip("/"),
            gateway_client_id=gw["client_id"],
            gateway_client_secret=gw["client_secret"],
            cert_file=gw["cert_file"],
            key_file=gw["key_file"],
            ca_file=gw["ca_file"],
        )

    def __repr__(self) -> str:  # never print the secrets
        return f"Config(partner_url={self.partner_url!r}, issuer={self.issuer!r})"
