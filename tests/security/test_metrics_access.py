"""Issue 11 §8: the portal's ``/metrics`` (calls per API and outcome) was public."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.security.conftest import LOOPBACK_PEER, REMOTE_PEER, PortalFactory

SCRAPER = ("192.0.2.20", 40000)
PROXY = ("10.1.2.3", 40000)


def metrics(portal: object, peer: tuple[str, int], **headers: str) -> int:
    with TestClient(portal, client=peer) as client:  # type: ignore[arg-type]
        answer = client.get("/metrics", headers=headers)
    if answer.status_code == 200:
        assert "guichet_policy_generation" in answer.text
    else:
        assert "Page introuvable" in answer.text
    return answer.status_code


def test_only_this_machine_reads_the_metrics_by_default(make_portal: PortalFactory) -> None:
    portal = make_portal(portal_public_url="http://testserver")
    assert metrics(portal, LOOPBACK_PEER) == 200
    assert metrics(portal, REMOTE_PEER) == 404
    assert metrics(portal, SCRAPER) == 404
    # Relayed by a proxy on this machine: the caller is someone else.
    assert metrics(portal, LOOPBACK_PEER, **{"X-Forwarded-For": "203.0.113.9"}) == 404


@pytest.mark.parametrize("allowed", ["192.0.2.0/27", "192.0.2.20/32,2001:db8::/32"])
def test_configured_addresses_read_the_metrics(make_portal: PortalFactory, allowed: str) -> None:
    portal = make_portal(
        portal_public_url="http://testserver", metrics_allowed=allowed, trusted_proxies="10.0.0.0/8"
    )
    assert metrics(portal, SCRAPER) == 200
    assert metrics(portal, REMOTE_PEER) == 404
    # Through a trusted proxy, its client is what counts, not the proxy.
    assert metrics(portal, PROXY, **{"X-Forwarded-For": "192.0.2.20"}) == 200
    assert metrics(portal, PROXY, **{"X-Forwarded-For": "203.0.113.9"}) == 404
    # And a forged header from anyone else changes nothing.
    assert metrics(portal, REMOTE_PEER, **{"X-Forwarded-For": "192.0.2.20"}) == 404
