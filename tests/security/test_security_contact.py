"""Issue 11: where to report a flaw (``GUICHET_SECURITY_CONTACT``), on the portal's legal
notice and in its ``/.well-known/security.txt`` (RFC 9116), as docs/security.md says."""

from __future__ import annotations

import datetime as dt

from starlette.testclient import TestClient

from guichet.clock import FrozenClock
from tests.security.conftest import REMOTE_PEER, PortalFactory

CONTACT = "vulnerabilites@exemple.gouv.fr"


def test_the_reporting_address_is_published(make_portal: PortalFactory, clock: FrozenClock) -> None:
    portal = make_portal(portal_public_url="http://testserver", security_contact=CONTACT)
    with TestClient(portal, client=REMOTE_PEER) as visitor:
        notice = visitor.get("/mentions-legales")
        txt = visitor.get("/.well-known/security.txt")
    assert notice.status_code == 200
    assert f'href="mailto:{CONTACT}"' in notice.text
    assert 'id="securite"' in notice.text
    assert txt.status_code == 200
    assert txt.headers["content-type"].startswith("text/plain")
    fields = dict(line.split(": ", 1) for line in txt.text.splitlines())
    assert fields["Contact"] == f"mailto:{CONTACT}"
    expires = dt.datetime.strptime(fields["Expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert clock.now() < expires < clock.now() + dt.timedelta(days=365)
    assert fields["Canonical"] == "http://testserver/.well-known/security.txt"
