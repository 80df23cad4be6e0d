"""The citizen's browser session at the federation: an encrypted cookie, with its CSRF token.

The cookie is a Fernet token (AES-CBC + HMAC) under a key derived from the master secret,
so its content (the pending authorization request, the signed-in SPI) is neither readable
nor forgeable by the browser. It is ``HttpOnly``, ``SameSite=Lax``, ``Secure`` on https.
Forms carry the session's CSRF token in a hidden field (synchronizer token pattern).
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from typing import Any, Final

from cryptography.fernet import Fernet, InvalidToken
from starlette.requests import Request
from starlette.responses import Response

from guichet.clock import Clock
from guichet.federation.keys import derive_key
from guichet.secrets import MasterSecret

COOKIE: Final = "guichet_fc_session"
CSRF_FIELD: Final = "csrf"


class SessionCodec:
    """Reads and writes the session cookie; a cookie past its lifetime reads as empty."""

    def __init__(self, master: MasterSecret, clock: Clock, *, secure: bool, lifetime: int) -> None:
        key = base64.urlsafe_b64encode(derive_key(master, "session-cookie"))
        self._fernet = Fernet(key)
        self._clock = clock
        self._secure = secure
        self._lifetime = lifetime

    def load(self, request: Request) -> dict[str, Any]:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return {}
        try:
            data = json.loads(self._fernet.decrypt(raw.encode()))
        except (InvalidToken, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("exp", 0) <= self._clock.now().timestamp():
            return {}
        return data

    def save(self, response: Response, data: dict[str, Any]) -> None:
        data = {**data, "exp": int(self._clock.now().timestamp()) + self._lifetime}
        token = self._fernet.encrypt(json.dumps(data, separators=(",", ":")).encode())
        response.set_cookie(
            COOKIE,
            token.decode(),
            max_age=self._lifetime,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self._secure,
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=self._secure)


def csrf_token(data: dict[str, Any]) -> str:
    """The session's CSRF token, created on first use."""
    token = data.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        data["csrf"] = token
    return token


def csrf_ok(data: dict[str, Any], submitted: str | None) -> bool:
    expected = data.get("csrf")
    return (
        isinstance(expected, str)
        and isinstance(submitted, str)
        and hmac.compare_digest(expected.encode(), submitted.encode())
    )
