"""Issue 11 §7: malformed ids and block names on the portal's POST routes (a 500 each before)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.security.conftest import PEOPLE, sign_in

MALFORMED = [
    "not-a-uuid",
    "1' OR '1'='1",
    "%00",
    "%E2%80%A8",
    "é" * 40,
    "x" * 600,
    "..%2F..%2Fsecret.key",
    "12345678-1234-1234-1234-1234567890ab",  # well formed, unknown
    "0",
    "-1",
]
PARAM = re.compile(r"\{(\w+)\}")
# The form fields that name something (an id, a role, a choice): the attack fills them all.
NAMING_FIELDS = (
    "organisation_id",
    "user_id",
    "document_id",
    "questionnaire_document_id",
    "role",
    "action",
    "block",
    "api",
    "version",
    "token",
    "security_kind",
)


def post_routes(portal: Starlette) -> list[str]:
    return sorted(
        r.path for r in portal.routes if isinstance(r, Route) and "POST" in (r.methods or set())
    )


def parametrised_post_routes(portal: Starlette) -> list[str]:
    return [path for path in post_routes(portal) if "{" in path]


@pytest.fixture(params=sorted(PEOPLE))
def signed_in(request: pytest.FixtureRequest, peopled_portal: Starlette) -> Iterator[TestClient]:
    with TestClient(
        peopled_portal, follow_redirects=False, raise_server_exceptions=False
    ) as client:
        sign_in(client, request.param)
        yield client


def test_the_routes_under_attack_are_all_there(peopled_portal: Starlette) -> None:
    """A new POST route joins the attack by itself; this says how many there are."""
    # 25, the second factor's seven (issue 14, C4), the Agents page's three (issues 12, 14).
    assert len(post_routes(peopled_portal)) == 35
    assert len(parametrised_post_routes(peopled_portal)) == 16  # the Agents page's two


def test_no_malformed_id_makes_a_500(peopled_portal: Starlette, signed_in: TestClient) -> None:
    csrf = _csrf(signed_in)
    failures = []
    for route in post_routes(peopled_portal):
        if route.endswith("/deconnexion"):
            continue  # the attack goes on signed in
        for value in MALFORMED:
            quoted = quote(value, safe="%")
            path = PARAM.sub(lambda _, q=quoted: q, route)  # type: ignore[misc]
            data = {name: value for name in NAMING_FIELDS}
            answer = signed_in.post(path, data={**data, "csrf_token": csrf})
            if answer.status_code >= 500 or "Traceback" in answer.text:
                failures.append((route, value, answer.status_code))
            elif answer.status_code >= 400:
                assert '<html lang="fr"' in answer.text, (route, value, answer.text)
    assert failures == []
    assert signed_in.get("/mon-compte").status_code == 200


def _csrf(client: TestClient) -> str:
    page = client.get("/demandes")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def test_a_random_id_is_a_readable_404(signed_in: TestClient) -> None:
    answer = signed_in.post(
        f"/demandes/{uuid.uuid4()}/blocs/nope", data={"csrf_token": _csrf(signed_in)}
    )
    assert answer.status_code in {403, 404}
    assert '<html lang="fr"' in answer.text
