"""Issue 11 §7: odd characters in ``redirect_uri`` at the federation's ``/authorize`` gave a
bare 500 (Authlib cannot quote them in its error). They get the OAuth error page instead,
and never a redirection."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest
from starlette.types import Message

from tests.unit.federation.support import REDIRECT, Federation
from tests.unit.federation.test_attacks import params

pytestmark = pytest.mark.anyio

# Percent-encoded as a browser would send them (the raw bytes of the query string).
MALFORMED = {
    "trailing-space": quote(REDIRECT + " "),
    "inner-space": quote(REDIRECT.replace("callback", "call back")),
    "nul": quote(REDIRECT + "\x00"),
    "crlf-header": quote(REDIRECT + "\r\nSet-Cookie: a=b"),
    "del": quote(REDIRECT + "\x7f"),
    "control-only": "%01",
    "accent": quote(REDIRECT + "/é"),
    "idn-host": quote("http://exämple.fr/callback"),
    "line-separator": quote(REDIRECT + "\u2028"),
    "byte-order-mark": quote("\ufeff" + REDIRECT),
    "invalid-utf8": "http%3A%2F%2F127.0.0.1%3A5000%2F%FF%FE",
    "lone-surrogate": "http%3A%2F%2F%ED%A0%80",
    "very-long": quote(REDIRECT + "?" + "é" * 50_000),
}


async def authorize(fed: Federation, query: bytes) -> tuple[int, dict[str, str], str]:
    """One GET /authorize with this exact query string, straight to the ASGI app."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/authorize",
        "raw_path": b"/authorize",
        "query_string": query,
        "headers": [(b"host", b"127.0.0.1:8600")],
        "client": ("203.0.113.7", 50000),
        "server": ("127.0.0.1", 8600),
    }
    answer: dict[str, object] = {"body": b""}

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
        else:
            answer["body"] = bytes(answer["body"]) + message.get("body", b"")  # type: ignore[arg-type]

    await fed.app(scope, receive, send)
    return answer["status"], answer["headers"], bytes(answer["body"]).decode()  # type: ignore[return-value]


def query_with(fed: Federation, redirect_uri: str, **overrides: str) -> bytes:
    rest = urlencode(params(fed, redirect_uri=None, **overrides))
    return f"{rest}&redirect_uri={redirect_uri}".encode("ascii")


@pytest.mark.parametrize("redirect_uri", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_redirect_uri_gets_the_error_page(
    federation: Federation, redirect_uri: str
) -> None:
    status, headers, page = await authorize(federation, query_with(federation, redirect_uri))
    assert status == 400
    assert "location" not in headers
    assert headers["content-type"].startswith("text/html")
    assert "La demande de connexion est invalide" in page
    assert "invalid_request: The &#39;redirect_uri&#39; parameter is malformed." in page


@pytest.mark.parametrize("name", ["scope", "state", "nonce", "acr_values", "code_challenge"])
@pytest.mark.parametrize("value", ["é", "\x01", "\u2028"], ids=["accent", "control", "u2028"])
async def test_odd_characters_elsewhere_go_back_with_an_oauth_error(
    federation: Federation, name: str, value: str
) -> None:
    """The redirect URI is the registered one: the error goes back to the partner."""
    query = query_with(federation, quote(REDIRECT), **{name: "x" + value})
    status, headers, _ = await authorize(federation, query)
    assert status == 302
    assert headers["location"].startswith(REDIRECT + "?error=invalid_")


async def test_the_registered_redirect_uri_still_works(federation: Federation) -> None:
    status, headers, _ = await authorize(federation, query_with(federation, quote(REDIRECT)))
    assert status == 302
    assert "/interaction/" in headers["location"]
